"""A digest of every table of schema `marts`: did a refactoring change what the pipeline outputs?

Per table: the row count, the column names, one digest over all rows and one per column. Rows are compared as
sets (sorted canonically), columns by name (their order and integer widths do not matter), floating-point values
at 6 significant digits after snapping to 12 (summation order and float noise do not count as a change),
timestamps as text in UTC.
Columns that record when a run happened rather than what it computed are left out (`VOLATILE_COLUMNS`). The columns
computed from the CLV fits are compared by their sums, within a relative 1e-6 (`FITTED_COLUMNS`).

    uv run python -m tests.integration.mart_digest WAREHOUSE [--out FILE]   digests of a built warehouse
    uv run python -m tests.integration.mart_digest --build [--out FILE]     build the default demo first

print (or write) the digests as JSON. The fixture `mart_digests.json` next to this file is the expected result
for the default demo (`DemoConfig()`: 2,000 customers, partitions 2024-01-01..2026-11-22, what the shared
`demo_run` test fixture builds); regenerate it only when a behaviour change is intended (`make mart-digests`) and
say so in the commit message.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

FIXTURE = Path(__file__).with_name("mart_digests.json")
# Wall-clock columns: the same data gives other values on every run.
VOLATILE_COLUMNS = {
    ("clv_model_params", "fitted_at"),
    # when a record was staged: the nightly watermark of the incremental fact tables
    ("fct_orders", "_loaded_at"),
    # the dbt invocation that wrote the order (what its tests check)
    ("fct_orders", "_invocation_id"),
    ("customer_segment_history", "_invocation_id"),
    ("fct_tickets", "_loaded_at"),
    ("fct_survey_responses", "_loaded_at"),
    # the identity resolution that decided a record's customer (a time stamp): the nightly watermark of identity
    ("fct_orders", "_resolution"),
    ("fct_tickets", "_resolution"),
    ("fct_survey_responses", "_resolution"),
}
# Columns computed from the CLV fits (maximum likelihood by L-BFGS-B). The Gamma-Gamma likelihood of the demo is
# flat along a ridge, so the optimum's last digits follow the CPU's floating-point kernels: on an AMD EPYC the
# predictions differ from those recorded elsewhere by ~2e-8 relative, which flips some values' sixth digit. These
# columns are compared by their sums, within FITTED_TOLERANCE; the other columns of their tables by digest.
FITTED_COLUMNS = {
    "clv_model_params": {"value"},
    "clv_backtest": {"predicted_purchases", "mean_absolute_error", "relative_error"},
    "customer_clv": {
        "p_alive",
        "expected_purchases",
        "expected_purchases_30d",
        "expected_purchases_90d",
        "expected_purchases_365d",
        "discounted_purchases",
        "expected_order_value",
        "expected_cost_to_serve",
        "clv",
        "net_clv",
    },
    "customer_value": {"clv", "future_value", "lifetime_value"},
    "customer_equity": {"future_value", "lifetime_value"},
    "customer_equity_history": {"future_value", "lifetime_value"},
}
FITTED_TOLERANCE = 1e-6
SIGNIFICANT_DIGITS = 6
# Values are snapped to this many digits before rounding to SIGNIFICANT_DIGITS: a sum of rupiah amounts whose 7th
# digit is a 5 (1796775.0) comes out of another summation order as 1796774.9999999998, which rounds the other way.
SNAPPED_DIGITS = 12
FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL", "DECIMAL")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _canonical(column: str, data_type: str) -> str:
    """SQL text rendering one value of the column as canonical text ('∅' for null)."""
    col = _quote(column)
    if data_type.startswith(FLOAT_TYPES):
        text = (
            f"case when {col}::double = 0 then '0' when isnan({col}::double) then 'nan' "
            f"else printf('%.{SIGNIFICANT_DIGITS}g', printf('%.{SNAPPED_DIGITS}g', {col}::double)::double) end"
        )
    else:
        text = f"{col}::varchar"
    return f"coalesce({text}, '∅')"


def table_digest(con: duckdb.DuckDBPyConnection, table: str) -> dict:
    columns = [
        (name, data_type)
        for name, data_type in con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'marts' and table_name = ? order by column_name",
            [table],
        ).fetchall()
        if (table, name) not in VOLATILE_COLUMNS
    ]
    fitted = [name for name, _ in columns if name in FITTED_COLUMNS.get(table, ())]
    columns = [(name, data_type) for name, data_type in columns if name not in fitted]
    rendered = [_canonical(name, data_type) for name, data_type in columns]
    row_text = " || chr(31) || ".join(rendered) if rendered else "''"
    per_column = ", ".join(f"md5(coalesce(string_agg({text}, chr(30) order by {text}), ''))" for text in rendered)
    source = f"marts.{_quote(table)}"
    rows, digest = con.execute(
        f"select count(*), md5(coalesce(string_agg(row_text, chr(30) order by row_text), '')) "
        f"from (select {row_text} as row_text from {source})"
    ).fetchone()
    column_digests = con.execute(f"select {per_column} from {source}").fetchone() if rendered else ()
    digests = {
        "rows": rows,
        "digest": digest,
        "columns": {name: value for (name, _), value in zip(columns, column_digests, strict=True)},
    }
    if fitted:
        sums = con.execute(f"select {', '.join(f'sum({_quote(name)})::double' for name in fitted)} from {source}")
        digests["sums"] = dict(zip(fitted, sums.fetchone(), strict=True))
    return digests


def mart_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The tables of schema marts, by name."""
    return [
        row[0]
        for row in con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' order by table_name"
        ).fetchall()
    ]


def mart_digests(warehouse: Path) -> dict[str, dict]:
    """Digest of every table of schema marts in the warehouse, by table name."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        return {table: table_digest(con, table) for table in mart_tables(con)}


def _sums_differing(old: dict[str, float | None], new: dict[str, float | None]) -> list[str]:
    """The fitted columns whose sums differ beyond FITTED_TOLERANCE (relative), or that were added or removed."""
    lines = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if name not in new or name not in old:
            lines.append(f"{name} " + ("removed" if name not in new else "added"))
        elif before is None or after is None:
            if before != after:
                lines.append(f"{name} sum {before} -> {after}")
        elif not math.isclose(before, after, rel_tol=FITTED_TOLERANCE, abs_tol=1e-9):
            lines.append(f"{name} sum {before:.9g} -> {after:.9g}")
    return lines


def differences(expected: dict[str, dict], actual: dict[str, dict]) -> list[str]:
    """What differs between two digest sets, one line per table (and per differing column)."""
    lines = []
    for table in sorted(expected.keys() | actual.keys()):
        if table not in actual:
            lines.append(f"{table}: missing")
            continue
        if table not in expected:
            lines.append(f"{table}: new table")
            continue
        old, new = expected[table], actual[table]
        sums = _sums_differing(old.get("sums", {}), new.get("sums", {}))
        if old["digest"] == new["digest"] and not sums:
            continue
        detail = [f"rows {old['rows']} -> {new['rows']}"] if old["rows"] != new["rows"] else []
        columns = old["columns"].keys() | new["columns"].keys()
        detail += [
            f"{name} "
            + ("removed" if name not in new["columns"] else "added" if name not in old["columns"] else "differs")
            for name in sorted(columns)
            if old["columns"].get(name) != new["columns"].get(name)
        ]
        detail += sums
        lines.append(f"{table}: " + (", ".join(detail) or "same columns, rows differ"))
    return lines


def build_demo(data_dir: Path) -> Path:
    """Generate the default demo under data_dir and run the pipeline over all its days; the warehouse path."""
    from pipeline.lib.demo_data import DEFAULT_END, HISTORY_START, DemoConfig, generate

    generate(DemoConfig(), data_dir / "demo")
    env = {key: value for key, value in os.environ.items() if key not in ("CDP_WAREHOUSE", "DAGSTER_HOME")}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "run",
            "--start",
            HISTORY_START.isoformat(),
            "--end",
            DEFAULT_END.isoformat(),
        ],
        env={**env, "CDP_DATA_DIR": str(data_dir)},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return data_dir / "warehouse.duckdb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("warehouse", type=Path, nargs="?", help="a built warehouse (or --build)")
    parser.add_argument("--build", action="store_true", help="build the default demo in a temporary folder")
    parser.add_argument("--out", type=Path, help="write the JSON here instead of printing it")
    args = parser.parse_args(argv)
    if args.build == bool(args.warehouse):
        parser.error("give a WAREHOUSE or --build")
    if args.build:
        with tempfile.TemporaryDirectory(prefix="mart-digests-") as folder:
            digests = mart_digests(build_demo(Path(folder)))
    else:
        digests = mart_digests(args.warehouse)
    text = json.dumps(digests, indent=1, sort_keys=True) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
