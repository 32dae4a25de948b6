"""Dead runs never block the next one.

A run whose process was killed (SIGKILL, OOM killer, power cut) may stay STARTED in Dagster's run storage and keep
its `warehouse` pool slot and the one `cdp/warehouse=writer` run slot: every later run would wait for ever ("blocked
by limit for pool warehouse"). Every way a run starts is covered, with Dagster's public API only:

- daemon path (schedule, sensor, UI): Dagster's default run launcher runs each run in a worker process of the code
  server, which marks the run failed when that process exits without finishing it; run monitoring (on in
  `pipeline/config/dagster.yaml`) then frees the failed run's pool slots (`free_slots_after_run_end_seconds`). Runs
  no code server watches (a killed command-line run, a run whose code server died with it) are failed by the
  `dead_runs` sensor, which the daemon evaluates every DEAD_RUN_POLL_SECONDS;
- command line (`python -m pipeline.cli run`, in process, no daemon needed): `fail_dead_runs` runs before each run,
  failing dead runs and freeing their slots at once.

A run's worker is known by its process id: the code server's run workers report it in their "Started process for
run" event, the CLI tags its runs with WORKER_PID_TAG. A process id is only trusted if that process existed before
the id was recorded (ids are reused). Everything runs on one machine (DuckDB has one writer process on one file), so
a process id is enough.
"""

from __future__ import annotations

import os
import time

import dagster as dg
import psutil

WORKER_PID_TAG = "cdp/worker_pid"
# Runs that may have a live worker; QUEUED runs have none yet, CANCELING ones are timed out by run monitoring.
ACTIVE_STATUSES = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
WORKER_STARTED_MESSAGE = "Started process for run"
CLOCK_SLACK_SECONDS = 1.0  # clocks of the run storage and of /proc, which agree to a clock tick here, may differ
DEAD_RUN_POLL_SECONDS = 30


def worker_tags() -> dict[str, str]:
    """Tags naming this process as the worker of the run it is about to execute in process."""
    return {WORKER_PID_TAG: str(os.getpid())}


def _worker(instance: dg.DagsterInstance, record: dg.RunRecord) -> tuple[int, float] | None:
    """(process id, when it was recorded) of the run's worker, or None when the run never recorded one."""
    tagged = record.dagster_run.tags.get(WORKER_PID_TAG)
    if tagged is not None:
        return int(tagged), record.create_timestamp.timestamp()
    for entry in instance.all_logs(record.dagster_run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        if entry.user_message.startswith(WORKER_STARTED_MESSAGE) and data and "pid" in data.metadata:
            return int(data.metadata["pid"].value), entry.timestamp
    return None


def _started_at(process: psutil.Process) -> float:
    """When the process started, as a Unix time. psutil adds the process's start (clock ticks since boot) to the boot
    time in whole seconds from /proc/stat, and that boot time drifts from the wall clock as NTP corrects it: measured
    a second early on a fresh machine, enough to take a new process for one older than its recorded id. On Linux
    the start is measured against the boot clock now instead."""
    try:
        with open(f"/proc/{process.pid}/stat") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, after the parenthesised command
    except OSError:
        return process.create_time()
    since_start = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    return time.time() - since_start


def _process_alive(pid: int, recorded_at: float) -> bool:
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and _started_at(process) <= recorded_at + CLOCK_SLACK_SECONDS
    except psutil.NoSuchProcess:
        return False


def dead_worker(instance: dg.DagsterInstance, record: dg.RunRecord) -> str | None:
    """Why the run's worker is dead, or None while it runs (a run without a recorded worker is assumed alive)."""
    worker = _worker(instance, record)
    if worker is None or _process_alive(*worker):
        return None
    return f"worker process {worker[0]} is gone (killed or crashed)"


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark every active run whose worker process is gone as failed and free its pool slots; returns their run ids."""
    failed = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=ACTIVE_STATUSES)):
        reason = dead_worker(instance, record)
        if reason is None:
            continue
        instance.report_run_failed(record.dagster_run, f"Marked failed before the next run: {reason}.")
        instance.event_log_storage.free_concurrency_slots_for_run(record.dagster_run.run_id)
        failed.append(record.dagster_run.run_id)
    return failed


@dg.sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=DEAD_RUN_POLL_SECONDS,
    description="Marks runs whose process is gone (killed, crashed) failed and frees their warehouse slots, so they "
    "never block the next run.",
)
def dead_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    failed = fail_dead_runs(context.instance)
    return dg.SkipReason(f"marked {len(failed)} dead run(s) failed: {', '.join(failed)}" if failed else "no dead run")
