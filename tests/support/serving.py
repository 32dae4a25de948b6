"""Helpers shared by tests/test_serving.py and tests/test_privacy.py: writable copies of the demo run, table digests."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

OUTPUT_SCHEMAS = ("raw", "quarantine", "staging", "intermediate", "marts")
# Load-time stamps: they differ between any two runs by design and say nothing about the data.
# Stamps of when (and by which dbt invocation) a row was written, not of what was computed.
VOLATILE_COLUMNS = frozenset(
    {
        "_loaded_at",
        "_loaded_through",
        "loaded_at",
        "computed_at",
        "published_at",
        "run_started_at",
        "fitted_at",
        "staged_until",
        "_invocation_id",
        "_resolution",
    }
)
VOLATILE_TABLE_COLUMNS = {"raw._extract_state": frozenset({"updated_at"})}  # when a high-water mark was saved


def copy_run(run_dir: Path, target: Path) -> Path:
    """A writable copy of a finished run's data dir (the session's demo_run is read-only for tests)."""
    shutil.copytree(run_dir, target)
    return target


def ensure_marts(warehouse: Path) -> list[str]:
    """Give the warehouse a customer profile and an order fact when the mart models are not in this checkout yet.

    Serving and erasure work on whatever marts exist; these two minimal tables (built from staging, per the shared
    contract's column names) only make sure there is something audience-like to publish. Returns what was built.
    """
    built = []
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema if not exists marts")
        present = {
            r[0] for r in con.execute("select table_name from duckdb_tables() where schema_name = 'marts'").fetchall()
        }
        if "customer_profile" not in present:
            con.execute("""
                create table marts.customer_profile as
                select customer_id, concat_ws(' ', first_name, last_name) as full_name, lower(trim(email)) as email,
                       phone, city, province, customer_type, coalesce(marketing_opt_in, false) as marketing_consent
                from staging.stg_webshop__customers
            """)
            built.append("marts.customer_profile")
        if "fct_orders" not in present:
            con.execute("""
                create table marts.fct_orders as
                select order_id, customer_id, guest_email, ordered_at, cast(ordered_at as date) as order_date, status,
                       net_amount
                from staging.stg_webshop__orders where customer_id is not null
            """)
            built.append("marts.fct_orders")
    return built


def _rounded(column: str) -> str:
    decimals = f"least(6, 9 - cast(floor(log10(abs({column}))) as integer))"
    return f"case when {column} = 0 or not isfinite({column}) then {column} else round({column}, {decimals}) end"


def table_digests(database: Path, schemas: tuple[str, ...] = OUTPUT_SCHEMAS) -> dict[str, tuple[int, str]]:
    """ "schema.table" -> (rows, md5 of the sorted rows) for every table of the schemas, volatile stamps left out.

    Doubles are rounded to 6 decimals or 10 significant digits, whichever is coarser: parallel sums may differ in
    the last bit between two identical runs, and a last bit of a sum of billions of rupiah is past the 6th decimal.
    """
    digests = {}
    with duckdb.connect(str(database), read_only=True) as con:
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() where schema_name in (select unnest(?)) order by 1, 2",
            [list(schemas)],
        ).fetchall()
        for schema, table in tables:
            columns = con.execute(
                "select column_name, data_type from duckdb_columns() where schema_name = ? "
                "and table_name = ? order by column_index",
                [schema, table],
            ).fetchall()
            parts = [
                _rounded(f'"{c}"') if t in ("DOUBLE", "FLOAT") else f'"{c}"'
                for c, t in columns
                if c not in VOLATILE_COLUMNS | VOLATILE_TABLE_COLUMNS.get(f"{schema}.{table}", frozenset())
            ]
            rows, digest = con.execute(
                f"select count(*), md5(coalesce(string_agg(r, chr(10) order by r), '')) from "
                f'(select cast(row({", ".join(parts)}) as varchar) as r from "{schema}"."{table}")'
            ).fetchone()
            digests[f"{schema}.{table}"] = (rows, digest)
    return digests
