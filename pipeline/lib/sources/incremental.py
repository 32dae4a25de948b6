"""High-water marks for incremental pulls, kept in the warehouse next to the data they describe.

`raw._extract_state` holds one row per (source, table_name): the newest `updated_at` (naive shop-local time) already
landed. A pull asks for rows updated since the start of the day of `mark - lookback`, so rows whose `updated_at` was
written late (long transactions, clock skew, a helpdesk that back-dates edits) are still caught, and every day it
touches is delivered whole, as `pipeline.lib.ingest.land` replaces whole partition days.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from pipeline.lib.warehouse import table_exists

STATE_TABLE = "raw._extract_state"


def session_timezone(con: duckdb.DuckDBPyConnection) -> str:
    """The shop's time zone, as `ingest.prepare_session` set it on the connection."""
    return con.execute("select current_setting('TimeZone')").fetchone()[0]


def local_timestamp_sql(expr: str) -> str:
    """SQL turning an ISO 8601 text (with offset, or naive = shop time) into a naive shop-local TIMESTAMP; NULL if
    unparseable. The shop's time zone is the session's (`ingest.prepare_session`)."""
    text = f"cast({expr} as varchar)"
    return (
        f"(case when regexp_matches({text}, '(Z|[+-]\\d{{2}}(:?\\d{{2}})?)$') "
        f"then cast(try_cast({text} as timestamptz) as timestamp) "
        f"else try_cast({text} as timestamp) end)"
    )


def ensure_state_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists raw")
    con.execute(
        f"create table if not exists {STATE_TABLE} (source varchar, table_name varchar, high_water_mark timestamp, "
        "updated_at timestamp, primary key (source, table_name))"
    )


def read_mark(con: duckdb.DuckDBPyConnection, source: str, table: str) -> datetime | None:
    if not table_exists(con, STATE_TABLE):
        return None
    row = con.execute(
        f"select high_water_mark from {STATE_TABLE} where source = ? and table_name = ?", [source, table]
    ).fetchone()
    return row[0] if row else None


def save_mark(con: duckdb.DuckDBPyConnection, source: str, table: str, mark: datetime | None) -> None:
    """Store a new mark; never moves backwards (a pull that found nothing keeps the old one)."""
    if mark is None:
        return
    ensure_state_table(con)
    con.execute(
        f"insert into {STATE_TABLE} values (?, ?, ?, now()::timestamp) on conflict (source, table_name) do update "
        "set high_water_mark = greatest(high_water_mark, excluded.high_water_mark), updated_at = excluded.updated_at",
        [source, table, mark],
    )
