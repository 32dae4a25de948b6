"""The webshop step of a nightly run (raw__webshop), in one process, per phase: what the night's pull costs.

    uv run python -m bench.landing_nightly WORK_DIR SCRATCH [--day 2026-11-22] [--statements]

WORK_DIR holds `warehouse.duckdb` (landed up to the night before, e.g. a `bench.run --keep` work directory) and
`demo/webshop.sqlite` (the sources with the new day). A copy of the warehouse in SCRATCH gets the asset's calls in
its order: `sql_orders.extract` (the day's window at the frontier, from the saved mark less the lookback), `ingest.land`
of customers, orders and lines, the marks, `doctor.unloaded_history`. Prints each phase's wall and process CPU
seconds (DuckDB's threads included), the rows landed and quarantined, and a hash of every raw and quarantine table
of the webshop: two commits compared on the same data must land the same rows. `--statements` lists every statement
that took 50 ms of CPU or more. Run another commit's code with `PYTHONPATH=<its worktree>`.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

from pipeline.lib import doctor, ingest, warehouse
from pipeline.lib.sources import sql_orders
from pipeline.lib.sources.registry import tables_of
from pipeline.settings import load_settings

LANDED = ("raw.webshop_customers", "raw.webshop_orders", "raw.webshop_order_items")
QUARANTINED = ("quarantine.webshop_orders", "quarantine.webshop_order_items")


class TimedConnection:
    """A DuckDB connection that prints the statements costing `threshold` CPU seconds or more."""

    def __init__(self, con, threshold: float) -> None:
        self._con, self._threshold = con, threshold

    def __getattr__(self, name: str):
        return getattr(self._con, name)

    def execute(self, sql: str, *args):
        began, cpu = time.perf_counter(), time.process_time()
        result = self._con.execute(sql, *args)
        spent = time.process_time() - cpu
        if spent >= self._threshold:
            statement = " ".join(sql.split())[:140]
            print(f"    statement CPU {spent:6.2f} s, wall {time.perf_counter() - began:6.2f} s: {statement}")
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("scratch", type=Path)
    parser.add_argument("--day", type=date.fromisoformat, default=date(2026, 11, 22), help="the night's new day")
    parser.add_argument("--statements", action="store_true", help="list the statements of 50 ms CPU or more")
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    copy = args.scratch / "warehouse.duckdb"
    shutil.copyfile(args.work / "warehouse.duckdb", copy)
    settings = load_settings()
    config = {**settings.source_config("webshop"), "location": str(args.work / "demo" / "webshop.sqlite")}
    source = sql_orders.SqlSource.from_config("webshop", config)
    window = (args.day, args.day + timedelta(days=1))
    phases: dict[str, tuple[float, float]] = {}

    def timed(name: str, call, *call_args, **kwargs):
        began, cpu = time.perf_counter(), time.process_time()
        result = call(*call_args, **kwargs)
        phases[name] = (time.perf_counter() - began, time.process_time() - cpu)
        return result

    began, cpu = time.perf_counter(), time.process_time()
    with warehouse.connect(copy, memory_limit="4GB", temp_directory=args.scratch / "tmp") as plain:
        con = TimedConnection(plain, 0.05 if args.statements else float("inf"))
        ingest.prepare_session(con, settings.shop_calendar().timezone)
        pulled = timed("extract", sql_orders.extract, con, source, window=window, frontier=True)
        for table in tables_of("webshop"):
            extract = pulled[table.source_table]
            relation = ingest.stage_order_items(con, extract.relation) if table.parent else extract.relation
            pulled_days = pulled["orders"].window if table.parent else extract.window
            landed_window = (min(window[0], pulled_days[0]), window[1]) if pulled_days else window
            spec = ingest.spec(table.name, settings.contract_limits())
            result = timed(
                f"land {table.name}",
                ingest.land,
                con,
                spec,
                relation,
                landed_window,
                source.kind,
                frontier=True,
                identity_rules=settings.identity_rules(),
            )
            print(
                f"{table.name}: {extract.rows:,} pulled, {result.loaded:,} landed, {result.quarantined:,} quarantined"
            )
            con.execute(f"drop table {extract.relation}")
        timed("save marks", sql_orders.save_marks, con, source, pulled)
        timed("doctor.unloaded_history", doctor.unloaded_history, con, source, window[0])
        phases["total"] = (time.perf_counter() - began, time.process_time() - cpu)
        for name in (*LANDED, *QUARANTINED):
            columns = [c for c, *_ in plain.execute(f"describe {name}").fetchall() if c != "_loaded_at"]
            rows, digest = plain.execute(f"select count(*), sum(hash({', '.join(columns)})) from {name}").fetchone()
            print(f"{name}: {rows:,} rows, hash {digest}")
    for name, (wall, spent) in phases.items():
        print(f"{name:32} wall {wall:7.2f} s   CPU {spent:7.2f} s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")
    shutil.rmtree(args.scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
