"""The dbt project on Spark: a local (or cluster) SparkSession, the raw tables copied in, and the dbt Python models run
beside dbt-spark's session mode, which cannot run them itself (dbt-labs/dbt-spark#415).

The build walks the project in stages: every SQL model whose Python ancestors are built goes to dbt in one `dbt run`,
then the Python models they unblock run here, in this process, on the same SparkSession. A Python model runs exactly
as dbt-duckdb runs it: its `model(dbt, session)` gets its refs as DuckDB relations (the Spark tables pulled to the
driver through Arrow into an in-memory DuckDB) and `session` is that DuckDB; what it returns is written back as a
Spark table. The numeric and graph steps (identity, CLV) therefore compute on the driver, as they do on one machine;
everything relational runs on Spark.

pyspark is an optional dependency (`uv sync --group spark`); importing this module does not need it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.lib.warehouse import connect, in_memory, quote_identifier

RAW_SCHEMA = "raw"


def spark_identifier(*parts: str) -> str:
    """A Spark SQL (multi-part) identifier, each part quoted in backticks."""
    return ".".join("`" + part.replace("`", "``") + "`" for part in parts)


def start_session(warehouse_dir: Path, timezone: str, master: str = "local[*]"):
    """A SparkSession with its warehouse and Derby metastore under warehouse_dir (what dbt-spark's session mode then
    picks up with getOrCreate). An already running session is returned as it is."""
    from pyspark.sql import SparkSession

    warehouse_dir = warehouse_dir.resolve()
    warehouse_dir.mkdir(parents=True, exist_ok=True)
    session = (
        SparkSession.builder.master(master)
        .appName("cdp")
        .config("spark.sql.warehouse.dir", str(warehouse_dir))
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={warehouse_dir / 'metastore_db'};create=true",
        )
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={warehouse_dir}")
        .config("spark.sql.session.timeZone", timezone)
        # The warehouse's timestamps are wall-clock times without zone (DuckDB TIMESTAMP): TIMESTAMP_NTZ, not instants.
        .config("spark.sql.timestampType", "TIMESTAMP_NTZ")
        .config("spark.sql.ansi.enabled", "false")  # dbt-spark forces it off too
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .enableHiveSupport()
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def _spark_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """All-null columns (Arrow type null, which parquet cannot store) as strings; unsigned integers, which Spark has
    not, as bigint (a 64-bit hash keeps its bits, wrapped to negative)."""
    if pa.types.is_null(column.type):
        return column.cast(pa.string())
    if pa.types.is_unsigned_integer(column.type):
        return column.cast(pa.int64(), safe=not pa.types.is_uint64(column.type))
    return column


def _spark_types(table: pa.Table) -> pa.Table:
    """The Arrow table with the column types Spark stores (_spark_column)."""
    return pa.Table.from_arrays([_spark_column(column) for column in table.itercolumns()], names=table.column_names)


def _spark_frame(spark, table: pa.Table):
    """A Spark DataFrame of an Arrow table (columns as _spark_column makes them)."""
    return spark.createDataFrame(_spark_types(table))


def write_table(spark, schema: str, name: str, table: pa.Table) -> None:
    """Replace the Spark table schema.name (parquet) with an Arrow table."""
    spark.sql(f"create database if not exists {spark_identifier(schema)}")
    _spark_frame(spark, table).write.mode("overwrite").format("parquet").saveAsTable(spark_identifier(schema, name))


def read_table(spark, schema: str, name: str) -> pa.Table:
    return spark.table(spark_identifier(schema, name)).toArrow()


def copy_raw_tables(warehouse: Path, spark, memory_limit: str | None = None, temp_directory: str | None = None) -> dict:
    """Copy every table of the DuckDB warehouse's raw schema into Spark's raw database; rows per table. DuckDB is
    bounded by memory_limit, spilling to temp_directory (the settings' DuckDB limits)."""
    copied = {}
    with connect(warehouse, read_only=True, memory_limit=memory_limit, temp_directory=temp_directory) as con:
        names = [
            row[0]
            for row in con.execute(
                "select table_name from information_schema.tables where table_schema = ? and table_type = 'BASE TABLE'"
                " order by table_name",
                [RAW_SCHEMA],
            ).fetchall()
        ]
        for name in names:
            table = con.table(f"{quote_identifier(RAW_SCHEMA)}.{quote_identifier(name)}").to_arrow_table()
            write_table(spark, RAW_SCHEMA, name, table)
            copied[name] = table.num_rows
    return copied


@dataclass
class _ModelConfig:
    """`dbt.config` inside a Python model: config(...) declares (already resolved by dbt's parse), get(...) reads."""

    values: dict[str, Any]

    def __call__(self, **_: Any) -> None:
        return None

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


@dataclass
class _This:
    schema: str
    identifier: str
    database: str | None = None

    def __str__(self) -> str:
        return f"{quote_identifier(self.schema)}.{quote_identifier(self.identifier)}"


@dataclass
class _ModelContext:
    """The `dbt` argument of a Python model: ref, source, config, this."""

    relations: dict[tuple[str, ...], duckdb.DuckDBPyRelation]
    config: _ModelConfig
    this: _This
    is_incremental: bool = False

    def ref(self, name: str, *_: Any, **__: Any) -> duckdb.DuckDBPyRelation:
        return self.relations[(name,)]

    def source(self, source_name: str, table_name: str) -> duckdb.DuckDBPyRelation:
        return self.relations[(source_name, table_name)]


def _relation_name(node) -> tuple[str, str]:
    return node.schema, node.alias or node.name


def run_python_model(spark, manifest, node, memory_limit: str | None = None, temp_directory: str | None = None) -> int:
    """Run one dbt Python model against the Spark tables and write its result back; rows written. The model works
    in an in-memory DuckDB bounded by memory_limit, spilling beside temp_directory (warehouse.in_memory)."""
    local = in_memory(memory_limit, temp_directory)
    try:
        relations: dict[tuple[str, ...], duckdb.DuckDBPyRelation] = {}

        def load(schema: str, name: str) -> duckdb.DuckDBPyRelation:
            local.execute(f"create schema if not exists {quote_identifier(schema)}")
            local.register("__incoming", read_table(spark, schema, name))
            target = f"{quote_identifier(schema)}.{quote_identifier(name)}"
            local.execute(f"create or replace table {target} as select * from __incoming")
            local.unregister("__incoming")
            return local.table(target)

        for unique_id in node.depends_on.nodes:
            parent = manifest.nodes.get(unique_id) or manifest.sources[unique_id]
            key = (parent.source_name, parent.name) if unique_id.startswith("source.") else (parent.name,)
            relations[key] = load(*_relation_name(parent))
        schema, name = _relation_name(node)
        exists = spark.catalog.tableExists(spark_identifier(schema, name))
        if exists:  # models read their previous version (stable ids, parsed phones)
            load(schema, name)
        config = node.config.to_dict()
        context = _ModelContext(relations, _ModelConfig(config), _This(schema, name), is_incremental=exists)
        namespace: dict[str, Any] = {}
        exec(compile(node.raw_code, node.original_file_path, "exec"), namespace)  # noqa: S102 (the project's code)
        result = namespace["model"](context, local)
        # a model returns an Arrow table, a polars frame, or a relation of the DuckDB it was given (kept in SQL)
        if isinstance(result, duckdb.DuckDBPyRelation):
            table = result.to_arrow_table()
        else:
            table = result if isinstance(result, pa.Table) else result.to_arrow()
        if config.get("materialized") == "incremental" and exists:
            table = _delete_insert(local, _This(schema, name), table, config)
        write_table(spark, schema, name, table)
        return table.num_rows
    finally:
        local.close()


# The identity models' post-hook (dbt_project/macros/delete_identity_tombstones.sql): dbt-spark's session mode runs no
# hooks, so _delete_insert deletes the tombstones itself.
_TOMBSTONE_HOOK = re.compile(r"delete_identity_tombstones\(\s*'(\w+)'\s*\)")


def _delete_insert(local: duckdb.DuckDBPyConnection, this: _This, new_rows: pa.Table, config: dict) -> pa.Table:
    """The previous table with the rows of the new rows' keys replaced (dbt's delete+insert strategy), less the
    tombstone rows (a null marker column) when the model's post-hook deletes them."""
    if config.get("incremental_strategy") != "delete+insert":
        raise ValueError(f"{this}: only the delete+insert strategy runs for Python models on Spark")
    keys = config["unique_key"]
    keys = [keys] if isinstance(keys, str) else list(keys)
    local.register("__new_rows", _spark_types(new_rows))  # as the previous rows came back from Spark
    matches = " and ".join(f"previous.{quote_identifier(k)} = __new_rows.{quote_identifier(k)}" for k in keys)
    local.execute(f"delete from {this} as previous where exists (select 1 from __new_rows where {matches})")
    local.execute(f"insert into {this} by name select * from __new_rows")
    local.unregister("__new_rows")
    for hook in config.get("post-hook") or []:
        for marker in _TOMBSTONE_HOOK.findall(hook.get("sql", "")):
            local.execute(f"delete from {this} where {quote_identifier(marker)} is null")
    return local.table(str(this)).to_arrow_table()


def build_stages(manifest) -> list[tuple[list[str], list[str]]]:
    """The models in stages of (SQL model names, Python model unique ids): a stage's SQL models need only models of
    earlier stages or its own SQL models; its Python models need them."""
    models = {uid: node for uid, node in manifest.nodes.items() if node.resource_type == "model"}
    level: dict[str, int] = {}

    def level_of(uid: str) -> int:
        if uid not in level:
            parents = [p for p in models[uid].depends_on.nodes if p in models]
            level[uid] = max((level_of(p) + (models[p].language == "python") for p in parents), default=0)
        return level[uid]

    stages: dict[int, tuple[list[str], list[str]]] = {}
    for uid in sorted(models):
        sql, python = stages.setdefault(level_of(uid), ([], []))
        (python if models[uid].language == "python" else sql).append(uid)
    return [([models[uid].name for uid in sql], python) for _, (sql, python) in sorted(stages.items())]


@dataclass
class BuildReport:
    """What a build did: seconds per step and rows per Python model."""

    steps: list[tuple[str, float]] = field(default_factory=list)
    python_rows: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(seconds for _, seconds in self.steps)


def _timed(report: BuildReport, label: str, step: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = step()
    report.steps.append((label, time.perf_counter() - started))
    return result


def dbt_invoke(project_dir: Path, args: Iterable[str], variables: dict, target: str):
    """dbt in this process (so session mode shares this process's SparkSession); raises on failure."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(
        [
            *args,
            "--vars",
            json.dumps(variables),
            "--target",
            target,
            "--project-dir",
            str(project_dir),
            "--profiles-dir",
            str(project_dir),
            "--quiet",
        ]
    )
    if not result.success:
        raise RuntimeError(f"dbt {' '.join(args)[:200]} failed on {target}: {result.exception or result.result}")
    return result.result


def build_on_spark(spark, project_dir: Path, variables: dict) -> BuildReport:
    """Build every model of the dbt project on Spark, stage by stage (see build_stages); the Python models' DuckDB
    has the limits of the dbt vars (duckdb_memory_limit, duckdb_temp_directory), as dbt-duckdb's has."""
    report = BuildReport()
    limits = variables.get("duckdb_memory_limit"), variables.get("duckdb_temp_directory")
    manifest = _timed(report, "parse", lambda: dbt_invoke(project_dir, ["parse"], variables, "spark"))
    for number, (sql_models, python_models) in enumerate(build_stages(manifest), start=1):
        if sql_models:
            _timed(
                report,
                f"stage {number}: dbt run ({len(sql_models)} SQL models)",
                lambda names=sql_models: dbt_invoke(project_dir, ["run", "--select", *names], variables, "spark"),
            )
        for uid in python_models:
            node = manifest.nodes[uid]
            report.python_rows[node.name] = _timed(
                report,
                f"stage {number}: {node.name} (Python)",
                lambda n=node: run_python_model(spark, manifest, n, *limits),
            )
    return report
