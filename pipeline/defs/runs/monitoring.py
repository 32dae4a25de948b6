"""Dead runs never block the next one.

A run whose process was killed (SIGKILL, OOM killer, power cut) stays STARTED in Dagster's run storage and keeps
its `warehouse` pool slot and the one `cdp/warehouse=writer` run slot: every later run waits for ever ("blocked by
limit for pool warehouse"). Dagster's run monitoring can only fail such a run when the run launcher can tell whether
the run's worker is alive, which the default launcher cannot. Both ways a run starts are covered here:

- daemon path (schedule, sensor, UI): `LocalRunLauncher` is the default launcher plus a worker health check, so the
  daemon's run monitoring (on in `pipeline/config/dagster.yaml`) fails a run whose worker process is gone and then
  frees its pool slots (`free_slots_after_run_end_seconds`); the launcher also does so before launching a run;
- command line (`python -m pipeline.cli run`, in process, no daemon needed): `fail_dead_runs` runs before each run,
  failing dead runs and freeing their slots at once.

A run's worker is known by its process id: the launcher's run workers report it in their "Started process for run"
event, the CLI tags its runs with WORKER_PID_TAG. A process id is only trusted if that process existed before the
id was recorded (ids are reused). Everything runs on one machine (DuckDB has one writer process on one file), so a
process id is enough.
"""

from __future__ import annotations

import os

import psutil
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.launcher import (
    CheckRunHealthResult,
    DefaultRunLauncher,
    WorkerStatus,
)
from dagster._core.storage.dagster_run import RunRecord

WORKER_PID_TAG = "cdp/worker_pid"
# Runs that may have a live worker; QUEUED runs have none yet, CANCELING ones are timed out by run monitoring.
ACTIVE_STATUSES = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
WORKER_STARTED_MESSAGE = "Started process for run"
CLOCK_SLACK_SECONDS = 1.0  # process start times are rounded by the kernel


def worker_tags() -> dict[str, str]:
    """Tags naming this process as the worker of the run it is about to execute in process."""
    return {WORKER_PID_TAG: str(os.getpid())}


def _worker(instance: DagsterInstance, record: RunRecord) -> tuple[int, float] | None:
    """(process id, when it was recorded) of the run's worker, or None when the run never recorded one."""
    tagged = record.dagster_run.tags.get(WORKER_PID_TAG)
    if tagged is not None:
        return int(tagged), record.create_timestamp.timestamp()
    for entry in instance.all_logs(record.dagster_run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        if entry.user_message.startswith(WORKER_STARTED_MESSAGE) and data and "pid" in data.metadata:
            return int(data.metadata["pid"].value), entry.timestamp
    return None


def _process_alive(pid: int, recorded_at: float) -> bool:
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= recorded_at + CLOCK_SLACK_SECONDS
    except psutil.NoSuchProcess:
        return False


def worker_health(instance: DagsterInstance, record: RunRecord) -> CheckRunHealthResult:
    """RUNNING unless the run's recorded worker process is gone (a run without a recorded worker is left alone)."""
    worker = _worker(instance, record)
    if worker is None:
        return CheckRunHealthResult(WorkerStatus.RUNNING, "no worker process recorded: assumed alive")
    pid, recorded_at = worker
    if _process_alive(pid, recorded_at):
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"worker process {pid} is running")
    return CheckRunHealthResult(WorkerStatus.FAILED, f"worker process {pid} is gone (killed or crashed)")


def fail_dead_runs(instance: DagsterInstance) -> list[str]:
    """Mark every active run whose worker process is gone as failed and free its pool slots; returns their run ids."""
    failed = []
    for record in instance.get_run_records(RunsFilter(statuses=ACTIVE_STATUSES)):
        health = worker_health(instance, record)
        if health.status != WorkerStatus.FAILED:
            continue
        instance.report_run_failed(record.dagster_run, f"Marked failed before the next run: {health.msg}.")
        instance.event_log_storage.free_concurrency_slots_for_run(record.dagster_run.run_id)
        failed.append(record.dagster_run.run_id)
    return failed


class LocalRunLauncher(DefaultRunLauncher):
    """Dagster's default run launcher plus a worker health check, so run monitoring fails runs whose worker died."""

    def launch_run(self, context) -> None:
        # Runs outside the nightly job's queue limit (a UI materialization) would wait on a dead run's pool slot
        # until the next monitoring poll: free it now.
        fail_dead_runs(self._instance)
        super().launch_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        record = self._instance.get_run_record_by_id(run.run_id)
        if record is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "run not found")
        return worker_health(self._instance, record)
