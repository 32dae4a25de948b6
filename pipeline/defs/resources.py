"""The Dagster resources every concern shares: the validated settings and the warehouse.

Assets and checks take them as parameters instead of reading globals, so a test (or another deployment) hands in its
own: `dg.materialize(assets, resources=resources_for(settings_file, warehouse))`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from pipeline.lib import warehouse
from pipeline.settings import Settings, load_settings


class SettingsResource(dg.ConfigurableResource):
    """cdp.yaml, loaded and validated once per process (`config_file` default: CDP_CONFIG or the shipped file)."""

    config_file: str | None = None

    def get(self) -> Settings:
        return load_settings(self.config_file)


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file: connections wait for another writer's lock and are bounded by the DuckDB limits of
    the settings (dbt opens the same file with the same limits: Settings.dbt_vars -> profiles.yml).

    `path` comes from the CDP_WAREHOUSE variable (the one profiles.yml reads) when it is set; left empty, the
    settings' warehouse is looked up when a run opens it (`<data_dir>/warehouse.duckdb` or storage.warehouse).
    """

    settings: SettingsResource
    path: str | None = None

    def file(self) -> Path:
        return Path(self.path) if self.path else self.settings.get().warehouse_path

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        settings, file = self.settings.get(), self.file()
        with warehouse.connect(
            file,
            read_only,
            memory_limit=settings.duckdb.memory_limit,
            temp_directory=settings.duckdb_temp_directory(file),
        ) as con:
            yield con


def resources_for(config_file: str | Path | None = None, warehouse_file: str | Path | None = None) -> dict:
    """The shared resources for a settings file (default: CDP_CONFIG or the shipped cdp.yaml) and a warehouse file
    (default: CDP_WAREHOUSE when set, else the settings' warehouse at run time): for the definitions and tests."""
    settings = SettingsResource(config_file=str(config_file) if config_file else None)
    if warehouse_file is not None:
        path = str(warehouse_file)
    else:
        path = dg.EnvVar("CDP_WAREHOUSE") if os.environ.get("CDP_WAREHOUSE") else None
    return {"settings": settings, "warehouse": WarehouseResource(settings=settings, path=path)}
