"""The serving publish (pipeline/lib/serving.py) at a scale the demo generator takes long to reach.

    uv run python -m bench.serving_scale WAREHOUSE --factor 10 [--work DIR]

Copies the marts of a built warehouse `factor` times into a scratch warehouse (customer and record ids suffixed per
copy, so 100k built customers give 1M with the same shapes, value distributions and list columns), publishes it once
(the first publish, everything written), then applies one night's change as a nightly run leaves it (the run date's
columns of the per-customer marts move for everyone, a day of new orders, tickets and responses, one new snapshot
date in the history tables) and times the second publish: what a nightly run pays.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from pipeline.lib import serving

KEYS = ("customer_id", "order_id", "ticket_id", "response_id", "old_customer_id", "new_customer_id")
DATE_COLUMNS = ("as_of_date", "snapshot_date", "run_date")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def scale_marts(source: Path, target: Path, factor: int) -> dict[str, int]:
    """marts.* of `source` repeated `factor` times into `target`, keys suffixed per copy; returns rows per table."""
    rows = {}
    with duckdb.connect(str(target)) as con:
        con.execute("set preserve_insertion_order = false")
        con.execute(f"attach '{source}' as source_db (read_only)")
        con.execute("create schema marts")
        tables = [
            r[0]
            for r in con.execute(
                "select table_name from duckdb_tables() where database_name = 'source_db' and schema_name = 'marts'"
            ).fetchall()
        ]
        for table in tables:
            columns = con.execute(
                "select column_name from duckdb_columns() where database_name = 'source_db' and schema_name = 'marts' "
                "and table_name = ? order by column_index",
                [table],
            ).fetchall()
            exprs = [
                f"case when copy = 0 then {_quote(c)} else {_quote(c)} || '-' || copy end as {_quote(c)}"
                if c in KEYS
                else _quote(c)
                for (c,) in columns
            ]
            per_customer = any(c in KEYS for (c,) in columns)
            copies = factor if per_customer else 1
            con.execute(
                f"create table marts.{_quote(table)} as select {', '.join(exprs)} "
                f"from source_db.marts.{_quote(table)}, range({copies}) as r(copy)"
            )
            comment = con.execute(
                "select comment from duckdb_tables() where database_name = 'source_db' and schema_name = 'marts' "
                "and table_name = ?",
                [table],
            ).fetchone()[0]
            if comment:
                con.execute(f"comment on table marts.{_quote(table)} is '{comment.replace(chr(39), chr(39) * 2)}'")
            rows[table] = con.execute(f"select count(*) from marts.{_quote(table)}").fetchone()[0]
    return rows


def one_night(warehouse: Path) -> None:
    """What a nightly run changes: the run date moves for every per-customer row, a day of new facts, a new snapshot."""
    with duckdb.connect(str(warehouse)) as con:
        for (table,) in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'marts' order by 1"
        ).fetchall():
            columns = {
                c
                for (c,) in con.execute(
                    "select column_name from duckdb_columns() where schema_name = 'marts' and table_name = ?", [table]
                ).fetchall()
            }
            target = f"marts.{_quote(table)}"
            if "snapshot_date" in columns:  # history: one more snapshot date
                con.execute(
                    f"insert into {target} select * replace (snapshot_date + 1 as snapshot_date) from {target} "
                    f"where snapshot_date = (select max(snapshot_date) from {target})"
                )
            elif "as_of_date" in columns:  # the run date's columns move for everyone
                con.execute(f"update {target} set as_of_date = as_of_date + 1")
            elif table in ("fct_orders", "fct_tickets", "fct_survey_responses"):  # a day of new records (0.1 %)
                key = {"fct_orders": "order_id", "fct_tickets": "ticket_id"}.get(table, "response_id")
                con.execute(
                    f"insert into {target} select * replace ({key} || '-new' as {key}) from {target} "
                    f"using sample 0.1 percent (bernoulli, 7)"
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cdp-serving-", dir=args.work))
    warehouse = work / "warehouse.duckdb"
    try:
        began = time.perf_counter()
        rows = scale_marts(args.warehouse, warehouse, args.factor)
        print(f"scaled marts x{args.factor} in {time.perf_counter() - began:.1f} s:")
        for table, count in sorted(rows.items(), key=lambda kv: -kv[1]):
            print(f"  {table:32} {count:>12,}")
        out = work / "serving"
        for label in ("first publish", "nightly publish (no change)"):
            began, cpu = time.perf_counter(), time.process_time()
            result = serving.publish(warehouse, out)
            print(
                f"{label}: {time.perf_counter() - began:.2f} s wall, {time.process_time() - cpu:.2f} s CPU, "
                f"{len(result.rewritten)} of {len(result.tables)} tables written"
            )
        one_night(warehouse)
        began, cpu = time.perf_counter(), time.process_time()
        result = serving.publish(warehouse, out)
        print(
            f"nightly publish (one night's change): {time.perf_counter() - began:.2f} s wall, "
            f"{time.process_time() - cpu:.2f} s CPU, rewrote {sorted(result.rewritten)}"
        )
        print(f"load average {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
