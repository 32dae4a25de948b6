"""`make run` on a fresh data dir reads like a tool: a few lines, a clean demo, a summary that says where to look."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from pipeline.cli import yesterday

REPO = Path(__file__).resolve().parents[2]
MAX_LINES = 60


@pytest.mark.timeout(3600)
def test_fresh_make_run_is_short_clean_and_ends_with_the_summary(tmp_path):
    data, home = tmp_path / "data", tmp_path / "dagster_home"
    env = {**os.environ, "CDP_DATA_DIR": str(data), "DAGSTER_HOME": str(home)}
    env.pop("CDP_WAREHOUSE", None)
    began = time.monotonic()
    done = subprocess.run(
        ["make", "--no-print-directory", "run", "DEMO_CUSTOMERS=150"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=3500,
    )
    output = done.stdout + done.stderr
    print(f"\nmake run: {len(output.splitlines())} lines in {time.monotonic() - began:.0f} s\n{output}")
    assert done.returncode == 0, output[-4000:]
    lines = output.splitlines()
    assert len(lines) < MAX_LINES, f"{len(lines)} lines:\n{output}"
    # The demo data and the run both end yesterday in the shop's time zone: no empty days, no missing partition.
    end = yesterday()
    assert f"up to {end}" in output and f".. {end} (" in output
    # Clean first demo: no failed check, no warning line from dbt or the pipeline.
    checks = re.search(r"^checks +(\d+) passed, (\d+) warned, (\d+) failed$", output, flags=re.M)
    assert checks and int(checks.group(1)) > 50 and checks.group(3) == "0", output
    assert "dbt_models:" not in output, output
    assert "FAILED" not in output and "Warning" not in output, output
    # The summary says what was built and where to look next.
    assert re.search(r"^profiles +[\d,]+ persons from [\d,]+ source records", output, flags=re.M)
    assert re.search(r"^segments +\w", output, flags=re.M)
    report = data / "reports" / "customer_base_report.html"
    assert f"report      {report}" in output and report.is_file()
    assert f"serving     {data / 'serving' / 'cdp.duckdb'}" in output
    assert "make dev, then http://127.0.0.1:3000" in output
    # The debug log went to a file under the data dir.
    [log] = (data / "logs").glob("run-*.log")
    assert "STEP_SUCCESS" in log.read_text(encoding="utf-8") and str(log) in output
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select max(as_of_date) from marts.customer_profile").fetchone()[0] == end
