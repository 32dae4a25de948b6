"""One whole nightly run of the pipeline on a data dir, in process, as the integration tests need it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from pipeline.lib.demo_data import DEFAULT_END, HISTORY_START


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
