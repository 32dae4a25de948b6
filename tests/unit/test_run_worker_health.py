"""A run's worker is alive only while the process it recorded runs: a dead or a reused process id is not."""

from __future__ import annotations

import os
import subprocess
import time

import dagster as dg
from dagster._core.launcher import WorkerStatus

from pipeline.defs.runs.monitoring import WORKER_PID_TAG, worker_health


@dg.op
def noop() -> None:
    pass


@dg.job
def one_op_job():
    noop()


def _status(instance: dg.DagsterInstance, pid: int) -> WorkerStatus:
    run = instance.create_run_for_job(one_op_job, tags={WORKER_PID_TAG: str(pid)})
    return worker_health(instance, instance.get_run_record_by_id(run.run_id)).status


def test_worker_health_follows_the_recorded_process():
    instance = dg.DagsterInstance.ephemeral()
    assert _status(instance, os.getpid()) == WorkerStatus.RUNNING
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert _status(instance, gone.pid) == WorkerStatus.FAILED
    # A process started after the run recorded its worker only reuses the id: the worker is gone.
    run = instance.create_run_for_job(one_op_job)
    time.sleep(1.5)
    later = subprocess.Popen(["sleep", "30"])
    try:
        instance.add_run_tags(run.run_id, {WORKER_PID_TAG: str(later.pid)})
        assert worker_health(instance, instance.get_run_record_by_id(run.run_id)).status == WorkerStatus.FAILED
    finally:
        later.kill()
        later.wait()
