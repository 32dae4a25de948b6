"""A real Dagster instance folder for tests: the shipped instance settings (pipeline/config/dagster.yaml) on disk."""

from __future__ import annotations

from pathlib import Path

import yaml

SHIPPED_INSTANCE = Path(__file__).resolve().parents[2] / "pipeline" / "config" / "dagster.yaml"


def dagster_home(tmp_path: Path, **run_monitoring) -> Path:
    """A DAGSTER_HOME under tmp_path with the shipped settings (`run_monitoring` values overridden)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    settings = yaml.safe_load(SHIPPED_INSTANCE.read_text())
    settings["run_monitoring"].update(run_monitoring)
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    return home
