"""Shared fixtures of both test layers: the demo data and one complete pipeline run on it, built once per session;
layer and resource markers derived from where a test lives and which fixtures it uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.lib.demo_data import DemoConfig, generate
from tests.support.pipeline_run import PipelineRun, run_on

DEMO_CUSTOMERS = 2000  # the default demo scale of `make run`
INTEGRATION_DIR = Path(__file__).parent / "integration"
# Fixtures both layers share, defined beside the support code they build on.
pytest_plugins = [
    "tests.support.survey_exports",
    "tests.support.report_inputs",
    "tests.support.pg_cluster",
    "tests.support.cli_runs",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)
        fixtures = getattr(item, "fixturenames", ())
        if "postgres_cluster" in fixtures:
            item.add_marker(pytest.mark.postgres)
        if "demo_run" in fixtures or "readme_window_run" in fixtures:
            item.add_marker(pytest.mark.slow)


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
