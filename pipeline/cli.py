"""Command line of the CDP pipeline (what `make run` calls).

python -m pipeline.cli demo-data [--customers N]   write the embedded demo sources under <data_dir>/demo
python -m pipeline.cli run [--start D] [--end D]    materialize every asset over a window of daily partitions
python -m pipeline.cli summary                      print the row counts of the output tables
python -m pipeline.cli doctor                       read the configured sources and check them against the config
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from pipeline.lib.config import (
    config_path,
    data_dir,
    env_path,
    section,
    shop_calendar,
    source_config,
    warehouse_path,
)

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
    instance = dg.DagsterInstance.get() if env_path("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
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


def window_problem(start: date, end: date) -> str | None:
    """Why a run over [start, end] cannot start, naming the setting to change; None when it can."""
    first = shop_calendar().partitions_start
    if start < first:
        return (
            f"the run starts on {start}, before calendar.partitions_start = {first}: no partition exists for "
            f'those days. Set calendar.partitions_start: "{start}" in {config_path()} (or start on {first}).'
        )
    if end < start:
        return f"the run ends on {end}, before its start {start}"
    return None


def unloaded_history(start: date) -> str | None:
    """A warning when the webshop holds orders from before `start` that the warehouse does not hold yet."""
    import duckdb

    from pipeline.lib import doctor, ingest
    from pipeline.lib.sources import sql_orders
    from pipeline.lib.warehouse import quote_literal

    source = sql_orders.SqlSource.from_config("webshop", source_config("webshop"))
    with duckdb.connect() as con:
        ingest.prepare_session(con, shop_calendar().timezone)
        try:
            if warehouse_path().exists():
                con.execute(f"attach {quote_literal(str(warehouse_path()))} as warehouse (read_only)")
                con.execute("use warehouse")
            first = doctor.unloaded_history(con, source, start)
        except (sql_orders.SourceUnavailable, duckdb.Error):
            # An unreachable source is the run's to report; a warehouse in use is not worth waiting for here.
            return None
    return f"warning: {doctor.unloaded_history_warning(first, start)}." if first else None


def doctor() -> int:
    """Read every configured source into memory and print what it holds against the contract and the calendar."""
    import duckdb

    from pipeline.lib import doctor as checkup
    from pipeline.lib import ingest
    from pipeline.lib.sources import helpdesk_api, registry, sql_orders, survey_files

    calendar = shop_calendar()
    region = str(section("identity").get("default_region") or "ZZ")
    print(
        f"doctor: {config_path()}\n  time zone {calendar.timezone} · currency {calendar.currency} · "
        f"phone region {region} · partitions from {calendar.partitions_start}"
    )
    findings: list[checkup.TableFindings] = []
    money = {"currency": calendar.currency, "phone_region": region}
    tickets = registry.table("helpdesk_tickets")
    with duckdb.connect() as con:
        ingest.prepare_session(con, calendar.timezone)
        for name in ("webshop", "helpdesk", "survey"):
            cfg = source_config(name)
            if cfg is None:
                print(f"{name}: not configured (off)")
                continue
            try:
                if name == "webshop":
                    source = sql_orders.SqlSource.from_config(name, cfg)
                    where = source.describe()
                    found = checkup.inspect_webshop(con, source, **money)
                elif name == "helpdesk" and cfg.get("kind") == "http":
                    api = helpdesk_api.HelpdeskSource.from_config(name, cfg)
                    where = f"helpdesk API {api.base_url}"
                    pulled = helpdesk_api.extract(con, api, full_refresh=True)
                    found = [checkup.inspect(con, tickets, pulled.relation, **money)]
                else:
                    files_source = survey_files.SurveySource.from_config(name, cfg)
                    files = [f.path for f in survey_files.list_files(con, files_source)]
                    where = f"{len(files)} files at {files_source.location}"
                    with ingest.export_files(files) as (readable, _):
                        staged = (
                            ingest.stage_tickets_jsonl(con, readable)
                            if name == "helpdesk"
                            else ingest.stage_survey_files(con, readable)
                        )
                        # inside the block: re-encoded copies of the exports live as long as it lasts
                        found = [checkup.inspect(con, registry.tables_of(name)[0], staged, **money)]
            except (
                sql_orders.SourceUnavailable,
                helpdesk_api.HelpdeskUnavailable,
                duckdb.Error,
                OSError,
                KeyError,
                ValueError,
            ) as exc:
                where, found = "", [checkup.TableFindings(source=name, table=name, error=str(exc).splitlines()[0])]
            print(f"{name}: {where}".rstrip(": "))
            for item in found:
                print("\n".join(checkup.format_findings(item)))
            findings += found
    covered, advice = checkup.history_advice(findings, calendar.partitions_start, config_path())
    print(advice)
    return 0 if covered and all(item.ok for item in findings) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.cli", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo-data", help="generate the embedded demo sources")
    demo.add_argument("--customers", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=42)
    run = sub.add_parser("run", help="materialize all assets over a window of daily partitions")
    run.add_argument(
        "--start", type=date.fromisoformat, default=None, help="first partition (default: calendar.partitions_start)"
    )
    run.add_argument(
        "--end", type=date.fromisoformat, default=None, help="last partition (default: yesterday, shop time)"
    )
    sub.add_parser("summary", help="print the output tables")
    sub.add_parser("doctor", help="read the configured sources and check them against the configuration")
    args = parser.parse_args(argv)
    try:  # settings every command needs: refuse them with their hint before anything starts
        for name in ("DAGSTER_HOME", "CDP_DATA_DIR", "CDP_WAREHOUSE"):
            env_path(name)
        shop_calendar()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.command == "demo-data":
        from pipeline.lib.demo_data import DemoConfig, generate

        counts = generate(DemoConfig(customers=args.customers, seed=args.seed), data_dir() / "demo")
        print("demo data:", " ".join(f"{k}={v}" for k, v in counts.items()))
    elif args.command == "run":
        start = args.start or shop_calendar().partitions_start
        end = args.end or datetime.now(ZoneInfo(shop_calendar().timezone)).date() - timedelta(days=1)
        problem = window_problem(start, end)
        if problem:
            print(f"run {start}..{end}: not started: {problem}", file=sys.stderr)
            return 2
        warning = unloaded_history(start)
        if warning:
            print(warning, file=sys.stderr)
        began = time.monotonic()
        ok = run_pipeline(start, end)
        print(f"run {start}..{end}: {'succeeded' if ok else 'FAILED'} in {time.monotonic() - began:.1f}s")
        if not ok:
            return 1
        print_summary()
    elif args.command == "summary":
        print_summary()
    elif args.command == "doctor":
        return doctor()
    return 0


if __name__ == "__main__":
    sys.exit(main())
