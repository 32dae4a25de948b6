"""The pipeline as users run it, for tests: the command line in a subprocess, on a real Dagster instance folder
with the shipped instance settings (pipeline/config/dagster.yaml)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SHIPPED_INSTANCE = REPO / "pipeline" / "config" / "dagster.yaml"
README_WINDOW = ("2026-11-01", "2026-11-22")  # the README's example: three weeks, shorter than the CLV holdout
RUN_README_WINDOW = [
    sys.executable,
    "-m",
    "pipeline.cli",
    "run",
    "--start",
    README_WINDOW[0],
    "--end",
    README_WINDOW[1],
]


def dagster_home(tmp_path: Path, **run_monitoring) -> Path:
    """A DAGSTER_HOME under tmp_path with the shipped settings (`run_monitoring` values overridden)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    settings = yaml.safe_load(SHIPPED_INSTANCE.read_text())
    settings["run_monitoring"].update(run_monitoring)
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    return home


def cli_env(home: Path, **variables: str) -> dict[str, str]:
    """The environment of a command run against the instance in `home` (this interpreter's tools first on PATH; the
    daemon and webserver import the run launcher from the installed package)."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        **variables,
    }
    env.pop("CDP_WAREHOUSE", None)
    return env


def run_ok(command: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a command to completion in the checkout; fails the test with its output's tail unless it exits 0."""
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, (
        f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    )
    return done
