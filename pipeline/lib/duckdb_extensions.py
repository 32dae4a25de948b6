"""Load DuckDB extensions from their PyPI packages (`duckdb-extension-*`), since DuckDB cannot download them here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb

_PACKAGES = {
    "sqlite_scanner": "duckdb_extension_sqlite_scanner",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
    "httpfs": "duckdb_extension_httpfs",
}


def extension_file(name: str) -> Path:
    """Path of the extension binary shipped in the PyPI package for this DuckDB version."""
    spec = importlib.util.find_spec(_PACKAGES[name])
    if spec is None or spec.origin is None:
        raise RuntimeError(f"DuckDB extension package {_PACKAGES[name]} is not installed")
    folder = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}"
    path = folder / f"{name}.duckdb_extension"
    if not path.exists():
        raise RuntimeError(f"{path} missing: the {name} extension package must match duckdb {duckdb.__version__}")
    return path


def load_extension(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute(f"load '{extension_file(name)}'")
