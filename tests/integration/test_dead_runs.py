"""A killed run never blocks the next one: the command line and the daemon both fail a run whose process is gone and
free its `warehouse` pool slot (pipeline/defs/runs/monitoring.py, pipeline/config/dagster.yaml).

Each test SIGKILLs a real run process holding the slot in a real Dagster instance (sqlite storage on disk)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psutil
import yaml

from pipeline.defs.runs.monitoring import fail_dead_runs
from tests.support.cli_runs import REPO, RUN_README_WINDOW, cli_env, dagster_home, run_ok, start_detached
from tests.support.serving import table_digests

JOB_FILE = Path(__file__).with_name("dead_run_job.py")
# The CLI's way of running: in process, tagged with the worker's process id.
IN_PROCESS_RUN = (
    "import runpy, dagster as dg\n"
    "from pipeline.defs.runs.monitoring import worker_tags\n"
    f"job = runpy.run_path({str(JOB_FILE)!r})['defs'].resolve_job_def('held_job')\n"
    "assert job.execute_in_process(instance=dg.DagsterInstance.get(), tags=worker_tags()).success\n"
)


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _slot_holders(instance: dg.DagsterInstance) -> set[str]:
    return instance.event_log_storage.get_concurrency_info("warehouse").active_run_ids


def test_cli_fails_a_killed_run_and_frees_its_slot(tmp_path):
    home, worker_file = dagster_home(tmp_path), tmp_path / "worker.pid"
    env = cli_env(home, CDP_TEST_WORKER_FILE=str(worker_file))
    holder = subprocess.Popen([sys.executable, "-c", IN_PROCESS_RUN], env=env, cwd=REPO, start_new_session=True)
    try:
        _wait_for(worker_file.exists, 180, "the first run to take the warehouse slot")
        instance = dg.DagsterInstance.from_config(str(home))
        (run,) = instance.get_runs()
        assert fail_dead_runs(instance) == [], "a live run must be left alone"
        assert _slot_holders(instance) == {run.run_id}
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED  # what used to block for ever

    assert fail_dead_runs(instance) == [run.run_id]
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert _slot_holders(instance) == set()
    run_ok([sys.executable, "-c", IN_PROCESS_RUN], env, timeout=180)


def _start_killed_in_process_run(env: dict[str, str], worker_file: Path) -> None:
    """A run started the CLI's way (in process) that takes the warehouse slot and is then SIGKILLed."""
    holder = subprocess.Popen([sys.executable, "-c", IN_PROCESS_RUN], env=env, cwd=REPO, start_new_session=True)
    try:
        _wait_for(worker_file.exists, 180, "the in-process run to take the warehouse slot")
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()


def test_daemon_fails_killed_runs_and_frees_their_slots(tmp_path):
    """Under the daemon, with the default run launcher: a killed command-line run is failed by the `dead_runs`
    sensor, a launched run whose worker process is SIGKILLed by its code server; run monitoring frees the slots and
    the next launched run succeeds."""
    home, cli_worker, worker_file = (
        dagster_home(tmp_path, poll_interval_seconds=2, free_slots_after_run_end_seconds=1),
        tmp_path / "cli_pid",
        tmp_path / "pid",
    )
    _start_killed_in_process_run(cli_env(home, CDP_TEST_WORKER_FILE=str(cli_worker)), cli_worker)
    instance = dg.DagsterInstance.from_config(str(home))
    (dead_cli_run,) = instance.get_runs()
    assert dead_cli_run.status == dg.DagsterRunStatus.STARTED and _slot_holders(instance) == {dead_cli_run.run_id}

    env = cli_env(home, CDP_TEST_WORKER_FILE=str(worker_file))
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "python_file": {
                            "relative_path": str(JOB_FILE),
                            "working_directory": str(REPO),
                            "location_name": "dead_runs",
                        }
                    }
                ]
            }
        )
    )
    launch = ["dagster", "job", "launch", "-w", str(workspace), "-j", "held_job"]
    daemon = start_detached(["dagster-daemon", "run", "-w", str(workspace)], env)
    try:
        run_ok(launch, env, timeout=180)
        # The queued run waits for the dead command-line run until the sensor fails it, then the daemon launches it
        # into a run worker process of the code server.
        pid = int(_wait_for(lambda: worker_file.exists() and worker_file.read_text(), 300, "the launched run"))
        assert instance.get_run_by_id(dead_cli_run.run_id).status == dg.DagsterRunStatus.FAILURE
        run = instance.get_runs(limit=1)[0]
        assert _slot_holders(instance) == {run.run_id}
        os.kill(pid, signal.SIGKILL)

        failed = _wait_for(
            lambda: instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE,
            60,
            "the killed run to be marked failed",
        )
        assert failed
        _wait_for(lambda: not _slot_holders(instance), 60, "its warehouse slot to be freed")
        run_ok(launch, env, timeout=180)
        _wait_for(
            lambda: instance.get_runs(limit=1)[0].status == dg.DagsterRunStatus.SUCCESS, 240, "the next run to succeed"
        )
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)


def _dbt_running(pid: int) -> bool:
    try:
        return any("dbt" in " ".join(c.cmdline()) for c in psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return False


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_readme_window_on_a_fresh_warehouse_then_a_killed_run_neither_blocks_nor_damages(readme_window_run, tmp_path):
    """The README's `run --start 2026-11-01 --end 2026-11-22` on a fresh warehouse succeeds (CLV backtest skipped);
    the same run again, SIGKILLed with its dbt child while dbt writes, leaves the published copy as it was; the next
    run is not blocked by the dead run's warehouse slot and rebuilds the same tables."""
    clean = readme_window_run
    # The skipped backtest is visible: its check warns in the run summary (the backtest itself is a dbt model).
    assert "warned: " in clean.stdout and "marts/clv_backtest:clv_backtest_ran" in clean.stdout
    run = clean.copy(tmp_path)
    data, env = run.data, run.env
    summary = run_ok([sys.executable, "-m", "pipeline.cli", "summary"], env, timeout=300)
    assert "persons from" in summary.stdout and "warehouse" in summary.stdout
    clean_tables, published = table_digests(data / "warehouse.duckdb"), _sha256(data / "serving" / "cdp.duckdb")

    killed = start_detached(RUN_README_WINDOW, env)
    try:
        # Raw has landed once dbt (a child process) runs; kill when it has begun writing (the warehouse has a WAL).
        _wait_for(lambda: _dbt_running(killed.pid) or killed.poll() is not None, 600, "dbt to start")
        _wait_for(lambda: (data / "warehouse.duckdb.wal").exists() or killed.poll() is not None, 120, "dbt writing")
        assert killed.poll() is None and _dbt_running(killed.pid), "the run ended before it could be killed"
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
    assert _sha256(data / "serving" / "cdp.duckdb") == published  # the last good copy is untouched

    began = time.monotonic()
    rerun = run_ok(RUN_README_WINDOW, env)
    assert "its process is gone, marked failed and its warehouse slot freed" in rerun.stdout
    logs = "".join(log.read_text(errors="replace") for log in (data / "logs").glob("*.log"))  # Dagster's own log
    assert "blocked by limit" not in rerun.stdout + rerun.stderr + logs
    print(f"re-run after the kill: {time.monotonic() - began:.0f}s")
    assert table_digests(data / "warehouse.duckdb") == clean_tables
