"""A backfill launched from the UI is one run: the real dagster-webserver and dagster-daemon on loopback, driven through
the GraphQL API as the UI drives them: launchPartitionBackfill of every asset over 7 daily partitions ("Materialize
all" on the job page), then of a hand-picked selection over the next 7 ("Materialize selected" in the asset graph,
sent the way the UI sends it for the job it picks)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from pipeline.defs.jobs import nightly_job
from pipeline.lib.demo_data import DemoConfig, generate
from pipeline.lib.environment import SHIPPED_INSTANCE
from tests.support.pg_cluster import free_port

REPO = Path(__file__).resolve().parents[2]
DEMO_END = date(2026, 11, 22)
DEMO_START = DEMO_END - timedelta(days=200)  # a short history keeps the test to a few minutes
BACKFILL_DAYS = 7
# Picked in the asset graph: two partitioned raw assets and everything downstream of them (the unpartitioned models,
# marts, report and serving copy, and their checks), not the webshop's raw assets.
PICKED_ROOTS = [["raw", "helpdesk_tickets"], ["raw", "survey_responses"]]

ASSETS = "{ assetNodes { assetKey { path } isMaterializable jobNames dependedByKeys { path } } }"
PICKED = """
query Picked($keys: [AssetKeyInput!]!) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    jobNames
    partitionDefinition { type }
    repository { name location { name } }
    assetPartitionStatuses { ... on TimePartitionStatuses { ranges { status startKey endKey } } }
  }
}"""
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
    """Demo sources, and one in-process run that loaded all but the last 14 days (a shop before its backfills)."""
    data, home = tmp_path / "data", tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(SHIPPED_INSTANCE, home / "dagster.yaml")
    generate(DemoConfig(customers=150, start_date=DEMO_START, end_date=DEMO_END), data / "demo")
    monkeypatch.setenv("CDP_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("CDP_WAREHOUSE", raising=False)
    from pipeline.cli import DAGSTER_ENVIRONMENT, run_pipeline

    for name, value in DAGSTER_ENVIRONMENT.items():  # as `make run` and `make dev` have it, daemon and webserver too
        monkeypatch.setenv(name, value)

    assert run_pipeline(DEMO_START, DEMO_END - timedelta(days=2 * BACKFILL_DAYS))
    return data, home


def _days(last: date) -> list[str]:
    return [(last - timedelta(days=n)).isoformat() for n in range(BACKFILL_DAYS - 1, -1, -1)]


def _with_downstream(nodes: list[dict], roots: list[list[str]]) -> list[list[str]]:
    """The roots and every materializable asset downstream of them (the UI's "select downstream")."""
    children = {
        tuple(n["assetKey"]["path"]): [tuple(k["path"]) for k in n["dependedByKeys"]]
        for n in nodes
        if n["isMaterializable"]
    }
    picked, todo = set(), [tuple(root) for root in roots]
    while todo:
        key = todo.pop()
        if key in children and key not in picked:
            picked.add(key)
            todo += children[key]
    return sorted(list(key) for key in picked)


def _ui_backfill_params(port: int, keys: list[list[str]], days: list[str]) -> dict:
    """The launchPartitionBackfill params the UI sends for assets picked in the asset graph: it backfills through
    the first job, by name, that holds every picked asset; a hidden asset job (`__ASSET_JOB`) gets a pure asset
    backfill, any other job its partition set."""
    nodes = _graphql(port, PICKED, {"keys": [{"path": key} for key in keys]})["assetNodes"]
    assert sorted(n["assetKey"]["path"] for n in nodes) == sorted(keys)
    assert any(n["partitionDefinition"] for n in nodes) and not all(n["partitionDefinition"] for n in nodes)
    job = next(name for name in nodes[0]["jobNames"] if all(name in n["jobNames"] for n in nodes))
    params = {"assetSelection": [{"path": key} for key in keys], "partitionNames": days, "fromFailure": False}
    if job.startswith("__ASSET_JOB"):
        return params
    repository = nodes[0]["repository"]
    selector = {"repositoryLocationName": repository["location"]["name"], "repositoryName": repository["name"]}
    return {**params, "selector": {"partitionSetName": f"{job}_partition_set", "repositorySelector": selector}}


def _missing_days(port: int, keys: list[list[str]], days: list[str]) -> dict[str, list[str]]:
    """Requested days not materialized, per partitioned asset of the selection (from the UI's partition status)."""
    missing = {}
    for node in _graphql(port, PICKED, {"keys": [{"path": key} for key in keys]})["assetNodes"]:
        if not node["partitionDefinition"]:
            continue
        done = {
            day
            for span in node["assetPartitionStatuses"]["ranges"]
            if span["status"] == "MATERIALIZED"
            for day in days
            if span["startKey"] <= day <= span["endKey"]
        }
        missing["/".join(node["assetKey"]["path"])] = sorted(set(days) - done)
    assert missing, "no partitioned asset in the selection"
    return missing


def _backfill(port: int, params: dict) -> tuple[list[dict], str, float, list[str]]:
    """Launch a backfill and wait for it: its runs, its status, the wall time from launch to done, run errors."""
    launched = time.monotonic()
    result = _graphql(port, LAUNCH, {"params": params})["launchPartitionBackfill"]
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
    return runs, status, wall, errors


def _assert_one_successful_run(runs: list[dict], status: str, errors: list[str], what: str) -> dict:
    assert len(runs) == 1, f"the backfill of {what} split into {len(runs)} runs"
    [run] = runs
    assert run["status"] == "SUCCESS", errors
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), status
    return run


@pytest.mark.webserver
@pytest.mark.timeout(2700)
def test_ui_backfills_of_every_asset_and_of_a_hand_picked_selection_are_one_run_each(loaded_history, tmp_path):
    data, home = loaded_history
    warehouse = data / "warehouse.duckdb"
    before = _mart_state(warehouse)
    assert before[0] == DEMO_END - timedelta(days=2 * BACKFILL_DAYS)
    port = free_port()
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
        assert len(selection) > 20 and all(nightly_job.name in n["jobNames"] for n in nodes if n["isMaterializable"])

        # "Materialize all" on the job page: the job's partition set, every asset, 7 days.
        first_days = _days(DEMO_END - timedelta(days=BACKFILL_DAYS))
        job = {
            "partitionSetName": f"{nightly_job.name}_partition_set",
            "repositorySelector": {"repositoryLocationName": "cdp", "repositoryName": "__repository__"},
        }
        every = _backfill(port, {"selector": job, "assetSelection": selection, "partitionNames": first_days})
        middle = _mart_state(warehouse)
        every_missing = _missing_days(port, [s["path"] for s in selection], first_days)

        # "Materialize selected" on assets picked in the asset graph, the next 7 days.
        last_days = _days(DEMO_END)
        hand_picked = _with_downstream(nodes, PICKED_ROOTS)
        assert len(PICKED_ROOTS) < len(hand_picked) < len(selection)
        picked = _backfill(port, _ui_backfill_params(port, hand_picked, last_days))
        picked_missing = _missing_days(port, hand_picked, last_days)
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=120)

    run = _assert_one_successful_run(*every[:2], every[3], "every asset")
    assert middle[0] == DEMO_END - timedelta(days=BACKFILL_DAYS) and middle[1] >= before[1], (before, middle)
    assert all(days == [] for days in every_missing.values()), every_missing
    _assert_one_successful_run(*picked[:2], picked[3], "a hand-picked selection")
    assert all(days == [] for days in picked_missing.values()), picked_missing
    after = _mart_state(warehouse)
    assert after[0] == DEMO_END and after[1] >= middle[1], (middle, after)
    print(
        f"\nUI backfill of {len(selection)} assets x {BACKFILL_DAYS} days: one run of "
        f"{run['endTime'] - run['startTime']:.0f} s, {every[2]:.0f} s from launch to done; "
        f"{len(hand_picked)} hand-picked assets x {BACKFILL_DAYS} days: one run, {picked[2]:.0f} s"
    )
