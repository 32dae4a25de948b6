"""Build the dbt project on Spark from the landed raw data (README "Scaling out").

    python -m pipeline.spark build [--run-date D] [--engine spark|duckdb] [--nightly]

Landing stays with the Dagster pipeline (`make run` fills the DuckDB warehouse's raw schema). This copies the raw
tables into a Spark warehouse (`<data dir>/spark-warehouse`, or CDP_SPARK_WAREHOUSE) and builds every model there
from scratch: SQL models with dbt-spark in session mode on local[*], Python models (identity, CLV) on the driver
(pipeline.lib.spark). `--engine duckdb` does the same from-scratch build on DuckDB (a new file beside the warehouse),
for comparing results and build times on the same data. `--nightly` builds on top of that engine's previous build
instead, as the nightly run does: the raw tables are copied again and the models pick up what is new.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from pipeline.lib.environment import REPO_ROOT
from pipeline.lib.warehouse import connect, quote_identifier, quote_literal
from pipeline.settings import Settings, load_settings

DBT_DIR = REPO_ROOT / "dbt_project"


def spark_warehouse(settings: Settings) -> Path:
    explicit = os.environ.get("CDP_SPARK_WAREHOUSE")
    return Path(explicit) if explicit else settings.data_dir / "spark-warehouse"


def build_variables(
    settings: Settings, run_date: date, warehouse: Path, spark_dir: Path | None = None, nightly: bool = False
) -> dict:
    """The dbt vars of a build: the pipeline's settings, the run date; a from-scratch build keeps no earlier identity
    ids, a nightly one does."""
    variables = {**settings.dbt_vars(warehouse), "run_date": run_date.isoformat(), "identity_full_rebuild": not nightly}
    if spark_dir is not None:
        variables["spark_warehouse"] = str(spark_dir.resolve())
    return variables


def copy_raw_to_duckdb(settings: Settings, source: Path, target: Path) -> None:
    """The raw tables of source copied into the DuckDB warehouse target (created when missing), replacing its own;
    DuckDB bounded by the settings' limits."""
    limits = {"memory_limit": settings.duckdb.memory_limit, "temp_directory": settings.duckdb_temp_directory(target)}
    with connect(target, **limits) as con:
        con.execute(f"attach {quote_literal(str(source))} as source (read_only)")  # attach takes no parameters
        tables = con.execute(
            "select table_name from information_schema.tables where table_catalog = 'source' "
            "and table_schema = 'raw' and table_type = 'BASE TABLE'"
        ).fetchall()
        con.execute("create schema if not exists raw")
        for (name,) in tables:
            qualified = f"raw.{quote_identifier(name)}"
            con.execute(f"create or replace table {qualified} as select * from source.{qualified}")


def build_duckdb(settings: Settings, run_date: date, target: Path, nightly: bool = False) -> float:
    """Seconds to build every model from the raw tables on DuckDB, into target (a copy of the raw schema): from
    scratch, or on top of target's previous build (nightly).

    dbt runs in its own process: dbt-duckdb keeps its connection open for the life of the process, which would lock
    the warehouse against this process's readers."""
    from pipeline.defs.dbt.resources import DBT_EXECUTABLE

    if not nightly:
        target.unlink(missing_ok=True)
    copy_raw_to_duckdb(settings, settings.warehouse_path, target)
    started = time.perf_counter()
    variables = json.dumps(build_variables(settings, run_date, target, nightly=nightly))
    dbt = [str(DBT_EXECUTABLE), "run", "--vars", variables, "--target", "duckdb", "--quiet"]
    subprocess.run([*dbt, "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)], check=True)
    return time.perf_counter() - started


def build_spark(settings: Settings, run_date: date, spark_dir: Path, nightly: bool = False):
    """(the SparkSession, seconds to copy the raw tables in, the build report): every model built from the raw
    tables on Spark under spark_dir, from scratch or on top of its previous build (nightly)."""
    from pipeline.lib.spark import build_on_spark, copy_raw_tables, start_session

    if not nightly:
        shutil.rmtree(spark_dir, ignore_errors=True)
    spark = start_session(spark_dir, settings.shop_calendar().timezone)
    started = time.perf_counter()
    warehouse = settings.warehouse_path
    copy_raw_tables(warehouse, spark, settings.duckdb.memory_limit, str(settings.duckdb_temp_directory(warehouse)))
    copy_seconds = time.perf_counter() - started
    variables = build_variables(settings, run_date, settings.warehouse_path, spark_dir, nightly=nightly)
    return spark, copy_seconds, build_on_spark(spark, DBT_DIR, variables)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build every model from the landed raw data")
    build.add_argument("--run-date", type=date.fromisoformat, help="the run date (default: yesterday)")
    build.add_argument("--engine", choices=["spark", "duckdb"], default=os.environ.get("CDP_ENGINE", "spark"))
    build.add_argument("--nightly", action="store_true", help="build on top of this engine's previous build")
    sub.add_parser("dbt-vars", help="print the settings' dbt vars as JSON (for dbt run outside the pipeline)")
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.command == "dbt-vars":
        print(json.dumps(settings.dbt_vars()))
        return 0
    run_date = args.run_date or date.fromordinal(date.today().toordinal() - 1)
    kind = "nightly, on the previous build" if args.nightly else "from scratch"
    if args.engine == "duckdb":
        target = settings.data_dir / "warehouse-rebuild.duckdb"
        seconds = build_duckdb(settings, run_date, target, args.nightly)
        print(f"built on DuckDB in {seconds:.1f} s ({kind}, as of {run_date}): {target}")
        return 0
    spark_dir = spark_warehouse(settings)
    spark, copy_seconds, report = build_spark(settings, run_date, spark_dir, args.nightly)
    spark.stop()
    print(f"built on Spark in {report.seconds:.1f} s ({kind}, as of {run_date}): {spark_dir}")
    print(f"  ({copy_seconds:.1f} s before that to copy the raw tables in)")
    for label, seconds in report.steps:
        print(f"  {seconds:7.1f} s  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
