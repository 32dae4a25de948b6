"""The same dbt project on DuckDB and on Spark (local mode) gives the same marts from the same raw data.

Both builds start from the raw tables of the shared demo run and build every model from scratch for the demo's last
day (python -m pipeline.spark build, --engine duckdb and spark). Every table of schema marts must hold the same rows:
same columns, same keys, floating-point values equal within a relative 1e-6 (summation order differs between
engines). Needs the `spark` dependency group and a JDK (.ci/run installs both).
"""

from __future__ import annotations

import math

import duckdb
import polars as pl
import pytest

from pipeline.lib.demo_data import DEFAULT_END
from tests.integration.mart_digest import VOLATILE_COLUMNS, mart_tables

pytest.importorskip("pyspark", reason="the Spark extras: uv sync --group spark")

pytestmark = pytest.mark.spark

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


@pytest.fixture(scope="module")
def both_builds(demo_run, tmp_path_factory):
    """(DuckDB warehouse, SparkSession) after building the project from the demo's raw tables on each engine."""
    from pipeline.settings import load_settings
    from pipeline.spark import build_duckdb, build_spark

    folder = tmp_path_factory.mktemp("engines")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CDP_WAREHOUSE", str(demo_run.warehouse))
        mp.setenv("CDP_DATA_DIR", str(folder))
        settings = load_settings()
        duckdb_warehouse = folder / "duckdb-build.duckdb"
        duckdb_seconds = build_duckdb(settings, DEFAULT_END, duckdb_warehouse)
        spark, _, report = build_spark(settings, DEFAULT_END, folder / "spark-warehouse")
    print(f"build from raw: DuckDB {duckdb_seconds:.1f} s, Spark {report.seconds:.1f} s")
    yield duckdb_warehouse, spark
    spark.stop()


def test_every_mart_is_equal_on_duckdb_and_spark(both_builds):
    duckdb_warehouse, spark = both_builds
    with duckdb.connect(str(duckdb_warehouse), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        tables = mart_tables(con)
        duck_frames = {table: con.table(f'marts."{table}"').pl() for table in tables}
    spark_tables = sorted(row.tableName for row in spark.sql("show tables in marts").collect())
    assert spark_tables == tables
    assert "customer_profile" in tables and "customer_clv" in tables
    problems = []
    for table in tables:
        spark_frame = pl.from_arrow(spark.table(f"marts.`{table}`").toArrow())
        problems += table_differences(table, duck_frames[table], spark_frame)
    assert not problems, "\n".join(problems)
    # the comparison is not vacuous: the demo's profile has rows on both engines
    assert duck_frames["customer_profile"].height > 100
