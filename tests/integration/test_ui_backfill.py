"""A backfill launched from the UI is one run: the real dagster-webserver and dagster-daemon on loopback, driven through
the GraphQL API as the UI drives them (launchPartitionBackfill of the cdp_nightly job, every asset, 7 daily
partitions: what "Materialize all" on the job page sends)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from pipeline.lib.demo_data import DemoConfig, generate

REPO = Path(__file__).resolve().parents[2]
DEMO_END = date(2026, 11, 22)
DEMO_START = DEMO_END - timedelta(days=200)  # a short history keeps the test to a few minutes
BACKFILL_DAYS = 7

ASSETS = "{ assetNodes { assetKey { path } isMaterializable jobNames } }"
LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on UnauthorizedError { message }
  }
}"""
BACKFILL = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } ... on PythonError { message } }
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
    ... on Runs { results { runId status startTime endTime } }
  }
}"""
ERRORS = """
query Errors($runId: ID!) {
  logsForRun(runId: $runId, limit: 5000) {
    ... on EventConnection { events { __typename ... on MessageEvent { message level stepKey } } }
  }
}"""
DONE = {"SUCCESS", "FAILURE", "CANCELED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    answer = json.load(urllib.request.urlopen(request, timeout=60))
    assert "errors" not in answer, answer["errors"]
    return answer["data"]


def _mart_state(warehouse: Path) -> tuple:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("select max(as_of_date), count(*) from marts.customer_profile").fetchone()


@pytest.fixture
def loaded_history(tmp_path, monkeypatch):
    """Demo sources, and one in-process run that loaded all but the last 7 days (a shop before its backfill)."""
    data, home = tmp_path / "data", tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "pipeline" / "config" / "dagster.yaml", home / "dagster.yaml")
    generate(DemoConfig(customers=150, start_date=DEMO_START, end_date=DEMO_END), data / "demo")
    monkeypatch.setenv("CDP_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("CDP_WAREHOUSE", raising=False)
    from pipeline.cli import run_pipeline

    assert run_pipeline(DEMO_START, DEMO_END - timedelta(days=BACKFILL_DAYS))
    return data, home


@pytest.mark.webserver
@pytest.mark.timeout(1800)
def test_ui_backfill_of_every_asset_over_seven_days_is_one_run(loaded_history, tmp_path):
    data, home = loaded_history
    warehouse = data / "warehouse.duckdb"
    before = _mart_state(warehouse)
    assert before[0] == DEMO_END - timedelta(days=BACKFILL_DAYS)
    port = _free_port()
    # The daemon and webserver import the pipeline from this checkout.
    env = {**os.environ, "DAGSTER_HOME": str(home), "CDP_DATA_DIR": str(data), "PYTHONPATH": str(REPO)}
    bin_dir = Path(sys.executable).parent
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = [
        subprocess.Popen(
            [str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdout=open(logs / "webserver.log", "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
        subprocess.Popen(
            [str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=REPO,
            env=env,
            stdout=open(logs / "daemon.log", "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
    ]
    try:
        deadline = time.monotonic() + 300
        nodes = None
        while nodes is None:
            assert time.monotonic() < deadline, "the webserver did not answer within 5 minutes"
            assert all(p.poll() is None for p in processes), (logs / "webserver.log").read_text()[-3000:]
            time.sleep(2)
            try:
                nodes = _graphql(port, ASSETS)["assetNodes"]
            except OSError:
                continue
        selection = [{"path": n["assetKey"]["path"]} for n in nodes if n["isMaterializable"]]
        assert len(selection) > 20 and all("cdp_nightly" in n["jobNames"] for n in nodes if n["isMaterializable"])
        days = [(DEMO_END - timedelta(days=n)).isoformat() for n in range(BACKFILL_DAYS - 1, -1, -1)]

        launched = time.monotonic()
        job = {
            "partitionSetName": "cdp_nightly_partition_set",
            "repositorySelector": {"repositoryLocationName": "cdp", "repositoryName": "__repository__"},
        }
        answer = _graphql(
            port, LAUNCH, {"params": {"selector": job, "assetSelection": selection, "partitionNames": days}}
        )
        result = answer["launchPartitionBackfill"]
        assert result["__typename"] == "LaunchBackfillSuccess", result
        deadline = time.monotonic() + 1500
        while True:
            assert time.monotonic() < deadline, "the backfill did not finish within 25 minutes"
            time.sleep(5)
            state = _graphql(port, BACKFILL, {"id": result["backfillId"]})
            runs = state["runsOrError"]["results"]
            status = state["partitionBackfillOrError"]["status"]
            if status not in ("REQUESTED", "CANCELING") and runs and all(r["status"] in DONE for r in runs):
                break
        wall = time.monotonic() - launched
        errors = [
            f"{e.get('stepKey')}: {e['message'][:300]}"
            for run in runs
            if run["status"] != "SUCCESS"
            for e in _graphql(port, ERRORS, {"runId": run["runId"]})["logsForRun"]["events"]
            if e.get("level") in ("ERROR", "CRITICAL")
        ]
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=120)

    assert len(runs) == 1, f"the backfill split into {len(runs)} runs"
    [run] = runs
    assert run["status"] == "SUCCESS", errors
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), status
    after = _mart_state(warehouse)
    assert after[0] == DEMO_END and after[1] >= before[1], (before, after)
    print(
        f"\nUI backfill of {len(selection)} assets x {BACKFILL_DAYS} days: one run of "
        f"{run['endTime'] - run['startTime']:.0f} s, {wall:.0f} s from launch to done"
    )
