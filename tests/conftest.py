"""Shared fixtures: the demo data and one complete pipeline run on it, built once per test session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from pipeline.lib.demo_data import DEFAULT_END, HISTORY_START, DemoConfig, generate

DEMO_CUSTOMERS = 2000  # the default demo scale of `make run`


@dataclass(frozen=True)
class PipelineRun:
    data_dir: Path
    start: date
    end: date

    @property
    def warehouse(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def truth(self) -> Path:
        return self.data_dir / "demo" / "truth.csv"


def run_on(data_dir: Path, start: date = HISTORY_START, end: date = DEFAULT_END) -> PipelineRun:
    """Run the whole nightly job over [start, end] against the data dir (in process, ephemeral Dagster instance)."""
    from pipeline.cli import run_pipeline

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CDP_DATA_DIR", str(data_dir))
        mp.delenv("CDP_WAREHOUSE", raising=False)
        mp.delenv("DAGSTER_HOME", raising=False)
        assert run_pipeline(start, end), "the pipeline run failed (see the Dagster log above)"
    return PipelineRun(data_dir, start, end)


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory) -> Path:
    """A data dir holding the default demo sources under demo/ (no warehouse yet)."""
    data_dir = tmp_path_factory.mktemp("demo_data")
    generate(DemoConfig(customers=DEMO_CUSTOMERS), data_dir / "demo")
    return data_dir


@pytest.fixture(scope="session")
def demo_run(demo_data_dir) -> PipelineRun:
    """The default demo data after one full pipeline run. Read-only for tests: copy it before changing anything."""
    return run_on(demo_data_dir)


@pytest.fixture
def data_env(monkeypatch, tmp_path) -> Path:
    """An empty data dir for one test, exported as CDP_DATA_DIR."""
    monkeypatch.setenv("CDP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CDP_WAREHOUSE", raising=False)
    return tmp_path
