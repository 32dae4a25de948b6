"""The same dbt project on DuckDB and on Spark (local mode) gives the same marts from the same raw data, built from
scratch and then by a nightly run.

A small demo is landed by the pipeline up to the day before its last; both engines build every model from those raw
tables for that day (python -m pipeline.spark build, --engine duckdb and spark). Then the pipeline lands the last day
and both engines run nightly on top of their first build (--nightly): the identity step keeps its earlier persons and
propagates only the new records, dated snapshots gain a date. After each step every table of schema marts must hold
the same rows on both engines: same columns, same keys, floating-point values equal within a relative 1e-6
(summation order differs between engines). Needs the `spark` dependency group and a JDK (.ci/run installs both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.lib.demo_data import DemoConfig, generate
from tests.integration.mart_digest import VOLATILE_COLUMNS, mart_tables
from tests.support.pipeline_run import run_on

pytest.importorskip("pyspark", reason="the Spark extras: uv sync --group spark")

pytestmark = pytest.mark.spark

# A small demo (Spark pays per statement, so a larger one only makes the test slower, not stronger).
CUSTOMERS = 300
START, END = date(2025, 6, 1), date(2026, 3, 10)
FIRST_DAY = END - timedelta(days=1)

# The mart digests' precision (6 significant digits): sums in another order, and the CLV fit on rows in another
# order, move the last digits.
RELATIVE_TOLERANCE = 1e-6
ABSOLUTE_TOLERANCE = 1e-9


def _normalised(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """Columns by name, without wall-clock ones; integers as Int64, decimals and floats as Float64, timestamps in
    UTC without zone (the engines store the same instant with other types)."""
    columns = []
    for name in sorted(frame.columns):
        if (table, name) in VOLATILE_COLUMNS:
            continue
        dtype = frame.schema[name]
        column = pl.col(name)
        if dtype.is_integer():
            column = column.cast(pl.Int64)
        elif dtype.is_decimal() or dtype.is_float():
            column = column.cast(pl.Float64)
        elif isinstance(dtype, pl.Datetime):
            zoned = column if dtype.time_zone else column.dt.replace_time_zone("UTC")
            column = zoned.dt.convert_time_zone("UTC").dt.replace_time_zone(None).dt.cast_time_unit("us")
        columns.append(column)
    frame = frame.select(columns)
    exact = [name for name, dtype in frame.schema.items() if dtype != pl.Float64 and not isinstance(dtype, pl.List)]
    return frame.sort([*exact, *[n for n in frame.columns if n not in exact and frame.schema[n] == pl.Float64]])


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE, abs_tol=ABSOLUTE_TOLERANCE)


def table_differences(table: str, duck: pl.DataFrame, spark: pl.DataFrame) -> list[str]:
    """What differs between the two versions of one mart (empty when they are equal)."""
    duck, spark = _normalised(duck, table), _normalised(spark, table)
    if duck.columns != spark.columns:
        return [f"{table}: columns {duck.columns} (DuckDB) vs {spark.columns} (Spark)"]
    if duck.height != spark.height:
        return [f"{table}: {duck.height} rows (DuckDB) vs {spark.height} (Spark)"]
    problems = []
    for name, dtype in duck.schema.items():
        left, right = duck.get_column(name).to_list(), spark.get_column(name).to_list()
        same = (lambda a, b: _close(a, b)) if dtype == pl.Float64 else (lambda a, b: a == b)
        wrong = [i for i, (a, b) in enumerate(zip(left, right, strict=True)) if not same(a, b)]
        if wrong:
            problems.append(f"{table}.{name}: {len(wrong)} rows differ, e.g. {left[wrong[0]]!r} vs {right[wrong[0]]!r}")
    return problems


@dataclass
class Builds:
    """The landed data dir, the pipeline's settings for it, and each engine's build of it."""

    data_dir: Path
    settings: object
    duckdb_warehouse: Path
    spark_dir: Path
    spark: object


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """Both engines' from-scratch builds of the demo as landed up to FIRST_DAY."""
    from pipeline.settings import load_settings
    from pipeline.spark import build_duckdb, build_spark

    data_dir = tmp_path_factory.mktemp("spark_demo")
    generate(DemoConfig(customers=CUSTOMERS, start_date=START, end_date=END), data_dir / "demo")
    run_on(data_dir, START, FIRST_DAY)
    folder = tmp_path_factory.mktemp("engines")
    with pytest.MonkeyPatch.context() as mp:  # the settings read these paths when asked, so for the module's life
        mp.setenv("CDP_WAREHOUSE", str(data_dir / "warehouse.duckdb"))
        mp.setenv("CDP_DATA_DIR", str(folder))
        settings = load_settings()
        duckdb_warehouse, spark_dir = folder / "duckdb-build.duckdb", folder / "spark-warehouse"
        duckdb_seconds = build_duckdb(settings, FIRST_DAY, duckdb_warehouse)
        spark, _, report = build_spark(settings, FIRST_DAY, spark_dir)
        print(f"build from raw: DuckDB {duckdb_seconds:.1f} s, Spark {report.seconds:.1f} s")
        yield Builds(data_dir, settings, duckdb_warehouse, spark_dir, spark)
        spark.stop()


def assert_same_marts(duckdb_warehouse: Path, spark) -> None:
    with duckdb.connect(str(duckdb_warehouse), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        tables = mart_tables(con)
        duck_frames = {table: con.table(f'marts."{table}"').pl() for table in tables}
    # (an incremental run leaves its session's temporary views, <model>__dbt_tmp, in the listing)
    listing = spark.sql("show tables in marts").collect()
    spark_tables = sorted(row.tableName for row in listing if not row.isTemporary)
    assert spark_tables == tables
    assert "customer_profile" in tables and "customer_clv" in tables
    problems = []
    for table in tables:
        spark_frame = pl.from_arrow(spark.table(f"marts.`{table}`").toArrow())
        problems += table_differences(table, duck_frames[table], spark_frame)
    assert not problems, "\n".join(problems)
    # the comparison is not vacuous: the demo's profile has rows on both engines
    assert duck_frames["customer_profile"].height > 100


def test_every_mart_is_equal_on_duckdb_and_spark(builds):
    assert_same_marts(builds.duckdb_warehouse, builds.spark)


def test_a_nightly_run_on_top_gives_equal_marts(builds):
    from pipeline.spark import build_duckdb, build_spark

    run_on(builds.data_dir, END, END)  # the pipeline lands the last day
    duckdb_seconds = build_duckdb(builds.settings, END, builds.duckdb_warehouse, nightly=True)
    spark, _, report = build_spark(builds.settings, END, builds.spark_dir, nightly=True)
    print(f"nightly build: DuckDB {duckdb_seconds:.1f} s, Spark {report.seconds:.1f} s")
    # the nightly run kept the first build's dated snapshots and added its own
    dates = spark.sql("select distinct snapshot_date from marts.customer_segment_history").collect()
    assert sorted(row.snapshot_date for row in dates) == [FIRST_DAY, END]
    assert_same_marts(builds.duckdb_warehouse, spark)
