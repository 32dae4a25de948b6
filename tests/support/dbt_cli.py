"""For tests that build dbt models on planted tables: frames written into a DuckDB file, the dbt CLI run on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl

from pipeline.defs.dbt.resources import DBT_DIR


def plant_tables(warehouse: Path, tables: dict[str, pl.DataFrame]) -> None:
    """Create or replace each `schema.table` of the warehouse with the frame's rows."""
    with duckdb.connect(str(warehouse)) as con:
        for name, frame in tables.items():
            con.execute(f"create schema if not exists {name.split('.')[0]}")
            con.register("planted", frame.to_arrow())
            con.execute(f"create or replace table {name} as select * from planted")
            con.unregister("planted")


def run_dbt(warehouse: Path, *args: str) -> subprocess.CompletedProcess:
    """`dbt <args>` on the warehouse, run inside dbt_project/ as the pipeline runs it; its target folder sits beside
    the warehouse, so tests share no parse state."""
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            *args,
            "--target-path",
            str(warehouse.parent / "dbt-target"),
            "--project-dir",
            str(DBT_DIR),
            "--profiles-dir",
            str(DBT_DIR),
        ],
        env={**os.environ, "CDP_WAREHOUSE": str(warehouse)},
        cwd=DBT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
