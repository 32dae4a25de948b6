"""A run's worker is alive only while the process it recorded runs: a dead or a reused process id is not."""

from __future__ import annotations

import os
import subprocess
import time

import dagster as dg

from pipeline.defs.runs.monitoring import WORKER_PID_TAG, dead_worker


@dg.op
def noop() -> None:
    pass


@dg.job
def one_op_job():
    noop()


def _dead(instance: dg.DagsterInstance, pid: int) -> str | None:
    run = instance.create_run_for_job(one_op_job, tags={WORKER_PID_TAG: str(pid)})
    return dead_worker(instance, instance.get_run_record_by_id(run.run_id))


def test_dead_worker_follows_the_recorded_process():
    instance = dg.DagsterInstance.ephemeral()
    assert _dead(instance, os.getpid()) is None
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert _dead(instance, gone.pid) == f"worker process {gone.pid} is gone (killed or crashed)"
    # A run without a recorded worker is left alone.
    unknown = instance.create_run_for_job(one_op_job)
    assert dead_worker(instance, instance.get_run_record_by_id(unknown.run_id)) is None
    # A process started after the run recorded its worker only reuses the id: the worker is gone.
    run = instance.create_run_for_job(one_op_job)
    time.sleep(1.5)
    later = subprocess.Popen(["sleep", "30"])
    try:
        instance.add_run_tags(run.run_id, {WORKER_PID_TAG: str(later.pid)})
        assert dead_worker(instance, instance.get_run_record_by_id(run.run_id)) is not None
    finally:
        later.kill()
        later.wait()
