"""The pipeline's configuration: one YAML file (`pipeline/config/cdp.yaml`) plus environment variables.

`CDP_CONFIG` points at another YAML file; `CDP_DATA_DIR` and `CDP_WAREHOUSE` override storage paths.
Values written as `env:NAME` are resolved from the environment at read time, so secrets stay out of files.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "pipeline" / "config" / "cdp.yaml"


@lru_cache(maxsize=4)
def _read_yaml(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def load_config() -> dict[str, Any]:
    """The parsed configuration file (cached per path; treat as read-only)."""
    return _read_yaml(os.environ.get("CDP_CONFIG", str(DEFAULT_CONFIG)))


def section(name: str) -> dict[str, Any]:
    """One top-level section of the configuration, `{}` when absent."""
    return load_config().get(name) or {}


def resolve_secret(value: Any) -> Any:
    """Turn `env:NAME` into the value of environment variable NAME (error if unset)."""
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise KeyError(f"environment variable {name} is not set (needed by the source configuration)")
        return os.environ[name]
    return value


def _repo_path(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else REPO_ROOT / path


def data_dir() -> Path:
    return _repo_path(os.environ.get("CDP_DATA_DIR") or section("storage").get("data_dir", "data"))


def warehouse_path() -> Path:
    """The DuckDB warehouse file; by default `warehouse.duckdb` inside the data directory."""
    explicit = os.environ.get("CDP_WAREHOUSE")
    if explicit:
        return _repo_path(explicit)
    if os.environ.get("CDP_DATA_DIR"):
        return data_dir() / "warehouse.duckdb"
    return _repo_path(section("storage").get("warehouse", "data/warehouse.duckdb"))
