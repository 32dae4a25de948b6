"""Pull the webshop tables (customers, orders, order_items) from SQLite or PostgreSQL into DuckDB, incrementally.

Transport: DuckDB's own `sqlite_scanner` / `postgres_scanner` extensions, loaded from their version-locked PyPI
packages (`pipeline.lib.duckdb_extensions`). Chosen over ADBC (`adbc-driver-postgresql`) because
- one code path and one SQL dialect serve both SQLite and PostgreSQL, and the rows never pass through Python:
  the scanner streams PostgreSQL's binary COPY output straight into DuckDB vectors;
- filters on a native timestamp column are pushed down into the PostgreSQL query (checked with EXPLAIN), so an
  incremental pull reads only the changed rows over the wire;
- no extra driver: the binaries are DuckDB-signed and pinned to the installed DuckDB version.
Credentials go into a temporary DuckDB secret rather than a connection string, because the scanner repeats the
connection string (password included) in its error messages.

Incremental: `customers` and `orders` are read from the start of the day of `high-water mark - lookback` (state in
`raw._extract_state`) onwards. Raw tables are partitioned by the date of `updated_at` and `pipeline.lib.ingest.land`
replaces whole partition windows, so a pull must deliver every row of each day it touches: the lower bound is
rounded down to midnight (shop time, the session's time zone), which re-reads at most one day next to the changed
rows. Late writes (a row committed after the last pull with an `updated_at` up to `lookback` before the mark) are
caught that way.
A row whose `updated_at` is missing or unparseable is delivered by every pull (it belongs to no partition and
`ingest.land` keeps it in quarantine only while it is delivered). `order_items` has no timestamp of its own, so it
follows its orders (the items of the orders in this pull). Column mapping from the config renames the user's columns
onto the contract names; extra columns are kept, missing ones are NULL. Values keep their source types
(raw = as sent; typing and quarantine are `ingest.land`'s job).

SQLite and a pull of a few rows: the scanner pushes no filter into SQLite, so reading whole rows to keep a day's worth
costs the whole table (7.7M orders and 15M lines at 1M customers, every night). A SQLite pull from the mark therefore
picks its rows on a narrow projection (`rowid` and the filter's columns, which the scanner does push down) and fetches
only those rows whole by rowid, through `sqlite_query` with the rowid list bound as a parameter (`_fetch_by_rowid`).
So does a window pull (a backfill or re-run of some days) of a table loaded before, when its rows are at most
`ROWID_FETCH_SHARE` of the table; a first load, or a window holding more, reads through the scanner.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb

from pipeline.lib.duckdb_extensions import load_extension
from pipeline.lib.environment import REPO_ROOT, resolve_secret
from pipeline.lib.ingest import SourceSchemaError, check_names
from pipeline.lib.sources.incremental import (
    local_timestamp_sql,
    read_mark,
    save_mark,
)
from pipeline.lib.sources.registry import RawTable, tables_of
from pipeline.lib.warehouse import quote_identifier as _quote
from pipeline.lib.warehouse import quote_literal as _literal

# Contract table (the source's own table name in the contract) -> its registry entry.
CONTRACT: dict[str, RawTable] = {t.source_table: t for t in tables_of("webshop")}
# Scanner types a SQLite row fetched by rowid is rebuilt in exactly (`_fetch_by_rowid`); a table with another type
# (BLOB, DATE, ...) is read by the scanner alone.
_REBUILT_TYPES = frozenset({"VARCHAR", "BIGINT", "DOUBLE"})
# 2**1000: SQLite's quote() renders a REAL exactly except below ~1e-290; such values travel scaled by this power of
# two (exact both ways) and are scaled back in DuckDB.
_TINY_SCALE = "1.0715086071862673e301"
# A window's rows are fetched by rowid when they are at most this share of the table's rowids. Measured at 1M persons
# (7.7M orders, 15M lines): the scanner reads ~1 us a row, a fetch by rowid costs 2-4 us a picked row; a tenth keeps
# fetching by rowid well inside the break-even (a quarter of orders, a ninth of lines).
ROWID_FETCH_SHARE = 0.1


class SourceUnavailable(RuntimeError):
    """The source database could not be reached or read; nothing was written."""


@dataclass(frozen=True)
class SqlSource:
    """One webshop database as described by `sources.<name>` in cdp.yaml (secrets already resolved)."""

    name: str
    kind: str  # sqlite | postgres
    location: str  # sqlite: file path; postgres: postgresql://host:port/database
    schema: str = "main"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    tables: Mapping[str, str] = field(default_factory=dict)  # contract table -> source table
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # table -> {source column: contract column}
    lookback: timedelta = timedelta(days=7)  # rows written up to a week late (back-dated) still arrive

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> SqlSource:
        kind = cfg.get("kind", "sqlite")
        if kind not in ("sqlite", "postgres"):
            raise ValueError(f"sources.{name}.kind must be sqlite or postgres, not {kind!r}")
        location = str(cfg["location"])  # `{data_dir}` is expanded by the settings
        if kind == "sqlite" and not Path(location).is_absolute():
            location = str(REPO_ROOT / location)
        credentials = cfg.get("credentials") or {}
        return cls(
            name=name,
            kind=kind,
            location=location,
            schema=cfg.get("schema", "main" if kind == "sqlite" else "public"),
            user=resolve_secret(credentials.get("user")),
            password=resolve_secret(credentials.get("password")),
            tables={**{t: t for t in CONTRACT}, **(cfg.get("tables") or {})},
            columns=cfg.get("columns") or {},
            lookback=timedelta(minutes=float((cfg.get("incremental") or {}).get("lookback_minutes", 7 * 24 * 60))),
        )

    def describe(self) -> str:
        """Where the source is, for messages: never includes credentials."""
        return f"{self.kind} database {self.location}"


@dataclass
class Extract:
    """Rows pulled for one contract table, held in a temporary table of the DuckDB connection."""

    table: str
    relation: str
    rows: int
    high_water_mark: datetime | None  # newest updated_at pulled; save with `save_marks` once the rows are landed
    incremental: bool  # False = full pull (no mark yet, full refresh, or a table following a full pull)
    window: tuple[date, date] | None  # partition dates [start, end) this pull covers completely; None = no rows
    by_rowid: bool = False  # the rows were picked on the cursor and fetched by rowid (`_fetch_by_rowid`)


def _without_secrets(message: str, source: SqlSource) -> str:
    for secret in (source.password,):
        if secret:
            message = message.replace(secret, "***")
    return re.sub(r"password=\S+", "password=***", message)


@contextmanager
def attached(con: duckdb.DuckDBPyConnection, source: SqlSource) -> Iterator[str]:
    """Attach the source read-only under a private alias; raise SourceUnavailable when it cannot be reached."""
    alias = f"src_{re.sub(r'[^a-z0-9_]', '_', source.name.lower())}"
    secret = f"{alias}_secret"
    try:
        if source.kind == "sqlite":
            if not Path(source.location).is_file():
                raise SourceUnavailable(f"{source.describe()} does not exist")
            load_extension(con, "sqlite_scanner")
            con.execute(f"attach {_literal(source.location)} as {alias} (type sqlite, read_only)")
        else:
            url = urlsplit(source.location)
            load_extension(con, "postgres_scanner")
            options = {
                "host": url.hostname or "127.0.0.1",
                "port": str(url.port or 5432),
                "database": url.path.lstrip("/") or "postgres",
            }
            if source.user:
                options["user"] = source.user
            if source.password:
                options["password"] = source.password
            body = ", ".join(f"{k} {_literal(v)}" for k, v in options.items())
            con.execute(f"create or replace temporary secret {secret} (type postgres, {body})")
            con.execute(f"attach '' as {alias} (type postgres, secret {secret}, read_only)")
    except SourceUnavailable:
        raise
    except duckdb.Error as exc:
        raise SourceUnavailable(
            f"cannot read the webshop source '{source.name}' ({source.describe()}): "
            f"{_without_secrets(str(exc), source)}"
        ) from None
    try:
        yield alias
    finally:
        con.execute(f"detach database if exists {alias}")
        if source.kind == "postgres":
            con.execute(f"drop temporary secret if exists {secret}")


def source_columns(
    con: duckdb.DuckDBPyConnection, alias: str, source: SqlSource, table: str
) -> list[tuple[str, str, str]]:
    """(source column, contract column after the configured mapping, type) of one contract table of the attached
    source."""
    source_table = source.tables[table]
    try:  # DESCRIBE reads one table's catalog entry; duckdb_columns() lists every table of every database (~2 s)
        found = con.execute(f"describe {alias}.{_quote(source.schema)}.{_quote(source_table)}").fetchall()
    except duckdb.CatalogException:
        raise SourceUnavailable(f"table {source.schema}.{source_table} not found in {source.describe()}") from None
    mapping = source.columns.get(table) or {}
    return [(col, mapping.get(col, col), dtype) for col, dtype, *_ in found]


def _select_list(
    con: duckdb.DuckDBPyConnection, alias: str, source: SqlSource, table: str
) -> tuple[str, str, str | None, str | None]:
    """(select list mapped onto contract names, qualified source table, cursor column's type and source name)."""
    renamed = source_columns(con, alias, source, table)
    source_table = source.tables[table]
    present = {target for _, target, _ in renamed}
    contract = CONTRACT[table]
    where = f"webshop source '{source.name}' ({source.describe()}), table {source.schema}.{source_table}"
    missing = [col for col in contract.required if col not in present]
    if missing:
        raise SourceSchemaError(
            f"{where}: no column {missing[0]!r} (required by the contract of raw.{contract.name}); columns are "
            f"{sorted(present)[:30]}. A renamed column is mapped under sources.{source.name}.columns.{table}."
        )
    check_names([target for _, target, _ in renamed], where)
    order = {name: i for i, name in enumerate(contract.column_names)}
    renamed.sort(key=lambda item: order.get(item[1], len(order)))
    parts = [f"{_quote(col)} as {_quote(target)}" for col, target, _ in renamed]
    cursor_type = next((dtype for _, target, dtype in renamed if target == contract.event_column), None)
    source_cursor = next((col for col, target, _ in renamed if target == contract.event_column), None)
    qualified = f"{alias}.{_quote(source.schema)}.{_quote(source_table)}"
    return ", ".join(parts), qualified, cursor_type, source_cursor


def _between_filter(cursor_column: str, cursor_type: str, start: datetime, end: datetime | None) -> list[str]:
    """WHERE clauses (to be UNIONed) selecting rows with start <= updated_at < end, plus rows without a usable one.

    Native timestamp columns get plain range predicates, which the PostgreSQL scanner pushes into the remote query
    (an OR with IS NULL would not be pushed down, hence a separate clause).
    """
    column = _quote(cursor_column)
    if cursor_type.startswith("TIMESTAMP"):
        # A timestamptz literal without offset is read in the session time zone: the shop's midnight.
        kind = "timestamptz" if cursor_type == "TIMESTAMP WITH TIME ZONE" else "timestamp"
        bounds = [f"{column} >= {kind} '{start.isoformat(sep=' ')}'"]
        if end is not None:
            bounds.append(f"{column} < {kind} '{end.isoformat(sep=' ')}'")
        return [" and ".join(bounds), f"{column} is null"]
    # Text timestamps (SQLite, ISO 8601 with offset or naive shop time): parsed here, the file is local anyway, and
    # once per row (an unparseable value makes the bounds NULL: delivered).
    parsed = local_timestamp_sql(column)
    bounds = [f"{parsed} >= timestamp '{start.isoformat(sep=' ')}'"]
    if end is not None:
        bounds.append(f"{parsed} < timestamp '{end.isoformat(sep=' ')}'")
    return [f"coalesce({' and '.join(bounds)}, true)"]


def _rebuilt(column: str, dtype: str) -> tuple[str, str]:
    """(SQLite expression, DuckDB expression over its text) carrying one column through `sqlite_query` (which returns
    every value as text) so that it arrives as the scanner would read it. A value of another storage class than the
    column's type is passed on as text and fails the DuckDB cast, as it fails the scanner."""
    c = _quote(column)
    if dtype == "BIGINT":
        return f"case when typeof({c}) in ('integer', 'null') then {c} else 'not an integer: ' || typeof({c}) end", (
            f"cast({c} as bigint)"
        )
    if dtype == "DOUBLE":
        return (
            f"case when typeof({c}) = 'real' and {c} <> 0 and abs({c}) < 1e-280 "
            f"then 'x' || quote({c} * {_TINY_SCALE}) when typeof({c}) in ('real', 'integer') then quote({c}) "
            f"else {c} end",
            f"case when starts_with({c}, 'x') then cast(substr({c}, 2) as double) / {_TINY_SCALE} "
            f"else cast({c} as double) end",
        )
    return c, c


def _fetch_by_rowid(
    con: duckdb.DuckDBPyConnection,
    alias: str,
    source: SqlSource,
    table: str,
    picked: str,
    max_share: float | None = None,
) -> str | None:
    """The rows of a SQLite source table whose rowids `picked` (a DuckDB query over the attached table) selects, as a
    temporary table with the source's columns and the scanner's types; None where the table cannot be read by rowid
    (PostgreSQL, a view, a WITHOUT ROWID table, a column named like the rowid, a type not rebuilt exactly) or, with
    `max_share`, where more than that share of the table's rowids is picked, for the scanner to read it. Rows that
    changed between picking and fetching arrive as they are now; the caller filters the fetched rows again."""
    if source.kind != "sqlite":
        return None
    source_table = source.tables[table]
    columns = [(col, dtype) for col, _, dtype in source_columns(con, alias, source, table)]
    definition = con.execute(
        "select sql from sqlite_query(?, 'select sql from sqlite_master where type = ''table'' and name = ?', "
        "params := row(?))",
        [alias, source_table],
    ).fetchone()
    readable = (
        source.schema == "main"
        and definition is not None
        and not re.search(r"\bwithout\s+rowid\b", definition[0] or "", re.IGNORECASE)
        and all(dtype in _REBUILT_TYPES and col.lower() not in ("rowid", "oid", "_rowid_") for col, dtype in columns)
    )
    if not readable:
        return None
    most = None  # the most rows fetched by rowid
    if max_share is not None:
        # The largest rowid bounds the table's rows (SQLite finds it in its b-tree, without a scan; as text).
        (largest,) = con.execute(
            "select * from sqlite_query(?, ?)", [alias, f"select max(rowid) from {_quote(source_table)}"]
        ).fetchone()
        most = int(max_share * int(largest or 0))
    # One query: a temporary table of the picks would be filled on one thread, the parsing of text timestamps is not.
    rowids = con.execute(
        "select case when ?::bigint is null or len(picks) <= ? then to_json(picks)::varchar end "
        f"from (select coalesce(list(rowid order by rowid), []) as picks from ({picked}))",
        [most, most],
    ).fetchone()[0]
    if rowids is None:
        return None
    sqlite_side, duckdb_side = zip(*(_rebuilt(col, dtype) for col, dtype in columns), strict=True)
    query = (
        f"select {', '.join(f'{e} as {_quote(col)}' for e, (col, _) in zip(sqlite_side, columns, strict=True))} "
        f"from {_quote(source_table)} where rowid in (select value from json_each(?))"
    )
    fetched = f"_fetched_{alias.removeprefix('src_')}_{table}"
    con.execute(
        f"create or replace temporary table {fetched} as select "
        + ", ".join(f"{e} as {_quote(col)}" for e, (col, _) in zip(duckdb_side, columns, strict=True))
        + " from sqlite_query(?, ?, params := row(?))",
        [alias, query, rowids],
    )
    return fetched


def extract(
    con: duckdb.DuckDBPyConnection,
    source: SqlSource,
    tables: tuple[str, ...] = tuple(CONTRACT),
    window: tuple[date, date] | None = None,
    full_refresh: bool = False,
    frontier: bool = False,
) -> dict[str, Extract]:
    """Pull rows of `tables` into temporary tables `_extract_<source>_<table>` of `con`, ready for `ingest.land`.

    window=None: incremental from the saved mark (whole days, see module docstring), or everything without a mark
    or with `full_refresh`. window=(start, end): the rows updated on those partition dates (a backfill or a re-run
    of Dagster partitions); with `frontier` (the nightly run, at the newest data) from the start of the day of
    `mark - lookback` if that is earlier, and without an upper bound, so late and updated rows arrive and rows
    dated in the future reach `ingest.land` to be quarantined. The new mark never passes the window's end.
    Each relation carries the contract columns, extra source columns and (except order_items, which
    `ingest.stage_order_items` dates by their order) a NULL `_partition_date`. Order lines are those of the pulled
    orders plus lines whose order does not exist (quarantined by landing, never lost). Nothing outside the
    temporary tables is written: call `save_marks` after the rows are landed.
    A missing required column raises SourceSchemaError naming source, table and column; an unreachable database
    SourceUnavailable, with the password never in the message.
    """
    results: dict[str, Extract] = {}
    until = datetime.combine(window[1], time()) if window else datetime.max
    with attached(con, source) as alias:
        try:
            bodies: dict[str, str] = {}
            for table in (t for t in CONTRACT if t in tables or t == "orders" and "order_items" in tables):
                contract = CONTRACT[table]
                cursor = contract.event_column
                select, qualified, cursor_type, source_cursor = _select_list(con, alias, source, table)
                relation = f"_extract_{alias.removeprefix('src_')}_{table}"  # alias: a sanitised source name
                # Lines get their partition date from their order (ingest.stage_order_items), so no column here.
                partition = ", null::date as _partition_date" if cursor is not None else ""
                body = bodies[table] = f"select {select}{partition} from {qualified}"
                if cursor is not None:
                    saved = None if full_refresh else read_mark(con, source.name, table)
                    mark = saved if window is None or frontier else None
                    starts = [datetime.combine(window[0], time())] if window else []
                    if mark is not None:
                        starts.append(datetime.combine((mark - source.lookback).date(), time()))
                    start = min(starts) if starts and source_cursor is not None else None
                    end = until if window is not None and not frontier else None
                    incremental = start is not None
                    clauses = _between_filter(source_cursor, cursor_type, start, end) if incremental else ["true"]
                    picked = " union all ".join(f"select rowid from {qualified} where {c}" for c in clauses)
                    # From the mark (the nightly run): a few days of rows. A window of a table loaded before (a
                    # backfill): by rowid when it is a small share of the table. A first load reads its window
                    # through the scanner: most of the table, where fetching by rowid would cost more.
                    fetched = None
                    if incremental and saved is not None:
                        share = None if mark is not None else ROWID_FETCH_SHARE
                        fetched = _fetch_by_rowid(con, alias, source, table, picked, share)
                    if fetched is not None:  # the rows picked on the cursor column alone, fetched whole
                        body = f"select {select}{partition} from {fetched}"
                    con.execute(
                        f"create or replace temporary table {relation} as "
                        + " union all ".join(f"{body} where {clause}" for clause in clauses)
                    )
                    if fetched is not None:
                        con.execute(f"drop table {fetched}")
                    parsed = local_timestamp_sql(_quote(cursor))
                    first, new_mark = con.execute(
                        f"select min(cast({parsed} as date)), max({parsed}) filter (where {parsed} < ?) "
                        f"from {relation}",
                        [until],
                    ).fetchone()
                    first_day = start.date() if incremental else first
                    last_day = window[1] if window else (new_mark.date() + timedelta(days=1) if new_mark else None)
                    span = (first_day, last_day) if first_day and last_day else None
                else:
                    parent = results["orders"]
                    pulled = f"order_id in (select order_id from {parent.relation})" if parent.incremental else "true"
                    orphan = (
                        f"order_id is null or order_id not in (select order_id from ({bodies['orders']}) "
                        "where order_id is not null)"
                    )
                    picked = f"select rowid from (select rowid, {select} from {qualified}) where {pulled} or {orphan}"
                    fetched = _fetch_by_rowid(con, alias, source, table, picked) if parent.by_rowid else None
                    if fetched is not None:  # the lines picked on their order ids alone, fetched whole
                        con.execute(f"create or replace temporary table {relation} as select {select} from {fetched}")
                        con.execute(f"drop table {fetched}")
                    else:
                        con.execute(
                            f"create or replace temporary table {relation} as select * from ({body}) "
                            f"where {pulled} or {orphan}"
                        )
                    new_mark, span = None, parent.window
                rows = con.execute(f"select count(*) from {relation}").fetchone()[0]
                window_of = span if rows else None
                results[table] = Extract(table, relation, rows, new_mark, incremental, window_of, fetched is not None)
            results = {t: item for t, item in results.items() if t in tables}
        except duckdb.Error as exc:
            raise SourceUnavailable(
                f"reading the webshop source '{source.name}' ({source.describe()}) failed: "
                f"{_without_secrets(str(exc), source)}"
            ) from None
    return results


def save_marks(con: duckdb.DuckDBPyConnection, source: SqlSource, extracts: Mapping[str, Extract]) -> None:
    """Advance the high-water marks after the extracts were landed."""
    for item in extracts.values():
        save_mark(con, source.name, item.table, item.high_water_mark)
