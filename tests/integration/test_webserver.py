"""`make dev` serves the Dagster UI on loopback only, with the whole asset lineage loaded."""

import json
import os
import signal
import subprocess
import time
import urllib.request

import psutil
import pytest

from tests.support.cli_runs import start_detached
from tests.support.pg_cluster import free_port

pytestmark = pytest.mark.webserver

QUERY = '{"query": "{ assetNodes { assetKey { path } dependencyKeys { path } } }"}'


def test_make_dev_serves_the_lineage_on_loopback(tmp_path):
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "CDP_DATA_DIR": str(tmp_path / "data")}
    server = start_detached(["make", "--no-print-directory", "dev", f"DEV_PORT={port}"], env)
    try:
        deadline = time.monotonic() + 240
        nodes = None
        while time.monotonic() < deadline and nodes is None:
            time.sleep(2)
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql",
                    data=QUERY.encode(),
                    headers={"Content-Type": "application/json"},
                )
                nodes = json.load(urllib.request.urlopen(request, timeout=10))["data"]["assetNodes"]
            except OSError:
                assert server.poll() is None, "make dev exited early"
        assert nodes, "the UI did not answer within 4 minutes"
        listening = {
            c.laddr.ip
            for p in psutil.Process(server.pid).children(recursive=True)
            for c in p.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        }
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a code server caught mid-load can outlive the signal: none may stay
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
    assert listening == {"127.0.0.1"}
    keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
    parents = {"/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]} for n in nodes}
    assert {
        "raw/webshop_orders",
        "staging/stg_webshop__orders",
        "marts/customer_profile",
        "marts/customer_segments",
        "marts/customer_clv",
        "marts/customer_equity",
    } <= keys
    assert "raw/webshop_orders" in parents["staging/stg_webshop__orders"]
