"""The pipeline as users run it, for tests: the command line in a subprocess, on a real Dagster instance folder
with the shipped instance settings (pipeline/config/dagster.yaml); the README's example run on a small demo, shared
by the tests that start from it."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pipeline.cli import DAGSTER_ENVIRONMENT
from pipeline.lib.demo_data import DemoConfig, generate
from pipeline.lib.environment import SHIPPED_INSTANCE
from pipeline.settings import DEFAULT_CONFIG

REPO = Path(__file__).resolve().parents[2]
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
        **DAGSTER_ENVIRONMENT,  # as `make dev` gives the daemon and webserver
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


def start_detached(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start a command in the checkout in a process group of its own (kill it with its children through
    `os.killpg`), its output discarded."""
    return subprocess.Popen(
        command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


# The foreign customer of the shared README-window run: a Singapore phone and an email the profile's format warning
# flags, so a data-quality failure example names them during the run (what tests/integration/test_erasure_bytes.py
# erases to the last byte).
FOREIGN_EMAIL = "Tan.Wei!Ming@Example.COM.sg"  # valid, but not the shape the profile's warning expects
FOREIGN_PHONE = "+65 8234 5671"  # a valid Singapore mobile, spelled for people


@dataclass(frozen=True)
class CliRun:
    """A finished command-line run: its data dir, Dagster instance folder and environment, and what it printed.
    The demo sources live outside the data dir (`sources`), named by the run's own cdp.yaml."""

    data: Path
    home: Path
    env: dict[str, str]
    stdout: str
    account: str  # the foreign customer's webshop account
    referring_order: str  # another customer's order carrying the foreign customer's referral code

    def copy(self, target: Path) -> CliRun:
        """A writable copy (data dir and instance folder; the sources are shared, read-only)."""
        data, home = target / "data", target / "dagster_home"
        shutil.copytree(self.data, data, symlinks=True)
        shutil.copytree(self.home, home, symlinks=True)
        env = {**self.env, "CDP_DATA_DIR": str(data), "DAGSTER_HOME": str(home)}
        return CliRun(data, home, env, self.stdout, self.account, self.referring_order)


def _plant_foreign_customer(webshop: Path) -> tuple[str, str]:
    """Give the busiest buyer of the README window the foreign contact details (updated in the window, so the run
    lands them), and put their referral code on someone else's order; returns (account id, that order id)."""
    with sqlite3.connect(webshop) as db:
        (account,) = db.execute(
            "select customer_id from orders where customer_id is not null and ordered_at between ? and ? "
            "group by 1 order by count(*) desc, 1 limit 1",
            [README_WINDOW[0], README_WINDOW[1] + "T23:59:59"],
        ).fetchone()
        db.execute(
            "update customers set email = ?, phone = ?, updated_at = ? where customer_id = ?",
            [FOREIGN_EMAIL, FOREIGN_PHONE, "2026-11-10T10:00:00", account],
        )
        (referring,) = db.execute(
            "select order_id from orders where customer_id <> ? and ordered_at between ? and ? order by order_id "
            "limit 1",
            [account, README_WINDOW[0], README_WINDOW[1]],
        ).fetchone()
        db.execute("update orders set referral_code = ? where order_id = ?", [f"REF-{account}", referring])
    return account, referring


@pytest.fixture(scope="session")
def readme_window_run(tmp_path_factory) -> CliRun:
    """The README's example run (`python -m pipeline.cli run`, three weeks) on a fresh warehouse over a 200-customer
    demo with one foreign customer, on a real DAGSTER_HOME. Read-only for tests: `copy()` it before running again."""
    root = tmp_path_factory.mktemp("readme_window_run")
    sources, data, home = root / "sources", root / "data", dagster_home(root)
    generate(DemoConfig(customers=200), sources)
    account, referring_order = _plant_foreign_customer(sources / "webshop.sqlite")
    config = root / "cdp.yaml"
    config.write_text(DEFAULT_CONFIG.read_text().replace("{data_dir}/demo", str(sources)))
    env = cli_env(home, CDP_DATA_DIR=str(data), CDP_CONFIG=str(config))
    done = run_ok(RUN_README_WINDOW, env)
    return CliRun(data, home, env, done.stdout, account, referring_order)
