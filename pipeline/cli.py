"""Command line of the CDP pipeline (what `make run` calls).

python -m pipeline.cli demo-data [--customers N]   write the embedded demo sources under <data_dir>/demo
python -m pipeline.cli run [--start D] [--end D]    materialize every asset over a window of daily partitions
python -m pipeline.cli summary                      print what the last run built and where to look
python -m pipeline.cli doctor                       read the configured sources and check them against the config
python -m pipeline.cli identity explain --email E | --phone P | --customer-id ID
                                                  a person's identity graph and the decisions behind it

A run prints one line per finished step and a closing summary; Dagster's full debug log goes to
<data_dir>/logs/run-<time>.log.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
import time
import warnings
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from pipeline.settings import (
    config_path,
    connect_memory,
    connect_warehouse,
    data_dir,
    env_path,
    section,
    shop_calendar,
    source_config,
    warehouse_path,
)

DEV_URL = "http://127.0.0.1:3000"
# Dagster reads these switches from the environment only. The Makefile exports them; a direct `python -m pipeline.cli`
# restarts itself with them.
# - One planned-materialization event per asset for the whole range instead of one per asset and day (a 3-year backfill
#   otherwise spends most of its time writing ~27k events before the first step).
# - A step's per-day materialization events go to the event log storage in batches of up to this many, which
#   pipeline/defs/runs/event_log.py writes at once (one event per asset and day still, so per-day status stays).
DAGSTER_ENVIRONMENT = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1", "DAGSTER_EVENT_BATCH_SIZE": "10000"}


def yesterday(timezone: str | None = None) -> date:
    """The last complete day in the shop's time zone: the default end of a run and of the demo data."""
    zone = ZoneInfo(timezone or shop_calendar().timezone)
    return (datetime.now(zone) - timedelta(days=1)).date()


@dataclass
class RunProgress:
    """What a run did, collected from Dagster's structured events while it runs."""

    out: TextIO
    began: float = field(default_factory=time.monotonic)
    materialized: dict[str, set] = field(default_factory=dict)  # step key -> asset keys materialized
    checks: dict[str, list[str]] = field(default_factory=lambda: {"passed": [], "warned": [], "failed": []})
    failed_steps: list[str] = field(default_factory=list)

    def on_event(self, step_key: str | None, event) -> None:
        kind = event.event_type_value
        if kind == "ASSET_MATERIALIZATION":
            self.materialized.setdefault(step_key, set()).add(event.asset_key)
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            outcome = "passed" if evaluation.passed else ("warned" if evaluation.severity.value == "WARN" else "failed")
            self.checks[outcome].append(name)
        elif kind == "STEP_SUCCESS" and step_key in self.materialized:
            count = len(self.materialized[step_key])
            what = f"{count} asset{'s' if count != 1 else ''}"
            seconds = event.event_specific_data.duration_ms / 1000
            print(f"{self._clock()}  {step_key:<38} {what:>10} {seconds:>8.1f}s", file=self.out, flush=True)
        elif kind == "STEP_FAILURE":
            self.failed_steps.append(step_key)
            error = event.event_specific_data.error
            while error is not None and error.cause is not None:  # the user code's error, not Dagster's wrapper
                error = error.cause
            reason = (error.message if error else "failed").strip().splitlines()[0][:160]
            print(f"{self._clock()}  {step_key:<38} FAILED: {reason}", file=self.out, flush=True)

    def _clock(self) -> str:
        elapsed = time.monotonic() - self.began
        return f"{int(elapsed // 60):>3}:{int(elapsed % 60):02d}"


class _ProgressHandler(logging.Handler):
    """Feeds the structured Dagster event of each log record to a RunProgress; prints warnings worth reading."""

    def __init__(self, progress: RunProgress) -> None:
        super().__init__(logging.DEBUG)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is not None:
            self.progress.on_event(meta.get("step_key"), event)
        elif record.levelno >= logging.WARNING:
            step = meta.get("step_key") or "run"
            message = str(meta.get("orig_message") or record.getMessage()).strip().splitlines()[0][:200]
            print(f"         {step}: {message}", file=self.progress.out)


def _run_loggers(log_file: Path, progress: RunProgress):
    """Loggers of a command-line run: everything to the debug file, step lines and warnings to the terminal."""
    import dagster as dg

    @dg.logger(description="Debug log to a file under the data dir; one line per finished step on the terminal.")
    def cli_logger(_init_context) -> logging.Logger:
        logger = logging.getLogger(f"cdp.run.{id(progress)}")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.handlers = [file_handler, _ProgressHandler(progress)]
        return logger

    return {"cli": cli_logger}


def _quiet_warnings() -> None:
    """Dagster's beta/preview notices are about APIs the project chose on purpose: nothing a user can act on."""
    import dagster as dg

    for category in (dg.BetaWarning, dg.PreviewWarning):
        warnings.filterwarnings("ignore", category=category)


def run_pipeline(start: date, end: date, progress: RunProgress | None = None, log_file: Path | None = None) -> bool:
    """Run the nightly job once over the partitions [start, end] (both inclusive); True when it succeeded.

    With a `progress`, Dagster's log goes to `log_file` and the terminal gets one line per step instead.
    """
    _quiet_warnings()
    import dagster as dg

    from pipeline.definitions import defs
    from pipeline.defs.jobs import nightly_job
    from pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
    from pipeline.defs.runs.monitoring import fail_dead_runs, worker_tags

    job = defs.resolve_job_def(nightly_job.name)
    run_config = {}
    if progress is not None:
        loggers = _run_loggers(log_file, progress)
        job, run_config = job.with_logger_defs(loggers), {"loggers": {name: {} for name in loggers}}
    instance = dg.DagsterInstance.get() if env_path("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    # A killed earlier run would hold the warehouse pool slot for ever: fail it and free its slots first.
    for run_id in fail_dead_runs(instance):
        print(f"run {run_id}: its process is gone, marked failed and its warehouse slot freed", file=sys.__stdout__)
    tags = {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat(), **worker_tags()}
    result = job.execute_in_process(run_config=run_config, instance=instance, tags=tags, raise_on_error=False)
    return result.success


def _rows(con, table: str, sql: str) -> list[tuple]:
    from pipeline.lib.warehouse import table_exists

    return con.execute(sql).fetchall() if table_exists(con, table) else []


def print_summary(progress: RunProgress | None = None, out: TextIO = sys.stdout) -> None:
    """What the warehouse now holds, how the checks went, and where to look next."""
    from pipeline.lib.report import report_texts, segment_label
    from pipeline.lib.serving import PARQUET_LINK, SERVING_FILE, serving_dir

    with connect_warehouse(read_only=True) as con:
        [(profiles,)] = _rows(con, "marts.customer_profile", "select count(*) from marts.customer_profile") or [(0,)]
        identity = _rows(
            con,
            "marts.identity_summary",
            "select records, persons from marts.identity_summary order by snapshot_date desc limit 1",
        )
        sizes = _rows(
            con,
            "marts.customer_segments",
            "select primary_segment, count(*) from marts.customer_segments group by 1 order by 2 desc, 1",
        )
    line = f"profiles    {profiles:,} persons"
    if identity:
        records, persons = identity[0]
        line += f" from {records:,} source records ({records - persons:,} records merged)"
    print(line, file=out)
    if sizes:
        names = report_texts()["en"]
        print("segments    " + ", ".join(f"{segment_label(code, names)} {count:,}" for code, count in sizes), file=out)
    if progress is not None:
        checks = progress.checks
        print(
            f"checks      {len(checks['passed'])} passed, {len(checks['warned'])} warned, "
            f"{len(checks['failed'])} failed",
            file=out,
        )
        for outcome in ("failed", "warned"):
            if checks[outcome]:
                print(f"  {outcome}: " + ", ".join(sorted(checks[outcome])), file=out)
    print(f"report      {data_dir() / 'reports' / 'customer_base_report.html'}", file=out)
    served = serving_dir(data_dir())
    print(f"serving     {served / SERVING_FILE} (DuckDB, open read-only) and {served / PARQUET_LINK}/", file=out)
    print(f"warehouse   {warehouse_path()}", file=out)
    print(f"UI          make dev, then {DEV_URL}", file=out)


def _log_file() -> Path:
    folder = data_dir() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"run-{datetime.now().strftime('%Y%m%d-%H%M%S')}.log"


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
    with connect_memory() as con:
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
    with connect_memory() as con:
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
    demo.add_argument("--end", type=date.fromisoformat, default=None, help="last day of data (default: yesterday)")
    run = sub.add_parser("run", help="materialize all assets over a window of daily partitions")
    run.add_argument(
        "--start", type=date.fromisoformat, default=None, help="first partition (default: calendar.partitions_start)"
    )
    run.add_argument(
        "--end", type=date.fromisoformat, default=None, help="last partition (default: yesterday, shop time)"
    )
    sub.add_parser("summary", help="print what the warehouse holds and where to look")
    sub.add_parser("doctor", help="read the configured sources and check them against the configuration")
    identity = sub.add_parser("identity", help="inspect identity resolution").add_subparsers(
        dest="action", required=True
    )
    explain = identity.add_parser("explain", help="a person's identity graph and the decisions behind it")
    who = explain.add_mutually_exclusive_group(required=True)
    who.add_argument("--email")
    who.add_argument("--phone")
    who.add_argument("--customer-id", help="a CDP customer id (C…) or a webshop account id")
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

        end = args.end or yesterday()
        counts = generate(DemoConfig(customers=args.customers, seed=args.seed, end_date=end), data_dir() / "demo")
        print(
            f"demo data   {counts.get('persons', 0):,} persons, {counts.get('orders', 0):,} orders, "
            f"{counts.get('tickets', 0):,} tickets, {counts.get('survey_responses', 0):,} survey responses "
            f"up to {end}, in {data_dir() / 'demo'}"
        )
    elif args.command == "run":
        start = args.start or shop_calendar().partitions_start
        end = args.end or yesterday()
        problem = window_problem(start, end)
        if problem:
            print(f"run {start}..{end}: not started: {problem}", file=sys.stderr)
            return 2
        warning = unloaded_history(start)
        if warning:
            print(warning, file=sys.stderr)
        log_file = _log_file()
        print(f"run         {start} .. {end} ({(end - start).days + 1:,} days); debug log: {log_file}", flush=True)
        progress = RunProgress(out=sys.stdout)
        # dbt's and the libraries' own console output belongs in the debug log too.
        with open(log_file, "a", encoding="utf-8") as log, redirect_stdout(log), redirect_stderr(log):
            ok = run_pipeline(start, end, progress=progress, log_file=log_file)
        print(f"run         {'succeeded' if ok else 'FAILED'} in {time.monotonic() - progress.began:.0f}s", flush=True)
        if not ok:
            print(f"            see {log_file}; the last good serving copy and report stay in place")
            return 1
        print_summary(progress)
    elif args.command == "summary":
        print_summary()
    elif args.command == "doctor":
        return doctor()
    elif args.command == "identity":
        return explain_identity(args.email, args.phone, args.customer_id)
    return 0


def explain_identity(email: str | None, phone: str | None, customer_id: str | None) -> int:
    """Print the identity graph and decisions of the person holding the email, phone or id."""
    from pipeline.lib.identity import IdentityRules
    from pipeline.lib.identity_explain import explain, find_customer

    rules = IdentityRules.from_config(section("identity"))
    with connect_warehouse(read_only=True) as con:
        try:
            customers = find_customer(con, email=email, phone=phone, customer_id=customer_id, rules=rules)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not customers:
            print("no person holds that identifier", file=sys.stderr)
            return 1
        print("\n\n".join(explain(con, customer) for customer in customers))
    return 0


def _with_dagster_environment() -> None:
    """Re-execute this command (same process id) with DAGSTER_ENVIRONMENT added to its environment when missing."""
    missing = {name: value for name, value in DAGSTER_ENVIRONMENT.items() if name not in os.environ}
    if missing:
        os.execve(sys.executable, [sys.executable, "-m", "pipeline.cli", *sys.argv[1:]], {**os.environ, **missing})


def _leave_without_teardown(status: list[int]) -> None:
    """The last exit handler: end the process once every library's exit handler has run, without the interpreter's
    teardown of Dagster's, dbt's and DuckDB's modules, which took 4-10 s after a run's last line on a busy machine
    (9.6 s at load 19). Nothing is lost: output and logs are flushed and closed here."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status[0])


if __name__ == "__main__":
    _with_dagster_environment()
    exit_status = [1]  # an exception escaping main() exits 1, after Python has printed it
    atexit.register(_leave_without_teardown, exit_status)  # registered first, so it runs after every other handler
    try:
        exit_status[0] = main()
    except SystemExit as exc:  # argparse's usage errors (2) and the like
        exit_status[0] = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        raise
    sys.exit(exit_status[0])
