"""Command line of the CDP pipeline (what `make run` calls).

    python -m pipeline.cli demo-data [--customers N]   write the embedded demo sources under <data_dir>/demo
    python -m pipeline.cli run [--start D] [--end D]    materialize every asset over a window of daily partitions
    python -m pipeline.cli summary                      print the row counts of the output tables
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, timedelta

from pipeline.lib.config import data_dir, section, warehouse_path

# Partition-range tags understood by single-run backfills.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def run_pipeline(start: date, end: date) -> bool:
    """Run the nightly job once over the partitions [start, end] (both inclusive); True when it succeeded."""
    import dagster as dg

    from pipeline.definitions import defs
    from pipeline.defs.runs.monitoring import fail_dead_runs, worker_tags

    # One planned-materialization event per asset for the whole range instead of one per asset and day
    # (a 3-year backfill otherwise spends most of its time writing ~27k events before the first step).
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    job = defs.resolve_job_def("cdp_nightly")
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    # A killed earlier run would hold the warehouse pool slot for ever: fail it and free its slots first.
    for run_id in fail_dead_runs(instance):
        print(f"run {run_id}: its process is gone, marked failed and its warehouse slot freed")
    tags = {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat(), **worker_tags()}
    result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    return result.success


def print_summary() -> None:
    from pipeline.lib.warehouse import connect

    with connect(read_only=True) as con:
        rows = con.execute("""
            select schema_name, table_name, estimated_size
            from duckdb_tables() where schema_name in ('raw', 'quarantine', 'staging', 'intermediate', 'marts')
            order by schema_name, table_name
        """).fetchall()
        print(f"warehouse: {warehouse_path()}")
        for schema, table, _ in rows:
            count = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
            print(f"  {schema + '.' + table:<45} {count:>10,} rows")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.cli", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo-data", help="generate the embedded demo sources")
    demo.add_argument("--customers", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=42)
    run = sub.add_parser("run", help="materialize all assets over a window of daily partitions")
    run.add_argument("--start", type=date.fromisoformat, default=date.fromisoformat(
        str(section("calendar").get("partitions_start", "2024-01-01"))))
    run.add_argument("--end", type=date.fromisoformat, default=None, help="last partition (default: yesterday)")
    sub.add_parser("summary", help="print the output tables")
    args = parser.parse_args(argv)

    if args.command == "demo-data":
        from pipeline.lib.demo_data import DemoConfig, generate

        counts = generate(DemoConfig(customers=args.customers, seed=args.seed), data_dir() / "demo")
        print("demo data:", " ".join(f"{k}={v}" for k, v in counts.items()))
    elif args.command == "run":
        end = args.end or date.today() - timedelta(days=1)
        began = time.monotonic()
        ok = run_pipeline(args.start, end)
        print(f"run {args.start}..{end}: {'succeeded' if ok else 'FAILED'} in {time.monotonic() - began:.1f}s")
        if not ok:
            return 1
        print_summary()
    elif args.command == "summary":
        print_summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
