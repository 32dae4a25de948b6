"""Compile the dbt project against its `databricks` target without a workspace, then check the SQL with Spark's parser.

    make check-databricks
    (uv run --frozen --project .ci/databricks python .ci/databricks/check.py "$(python -m pipeline.spark dbt-vars)")

dbt-databricks opens its connection lazily (for a SQL warehouse path), but `dbt compile` still asks the workspace
which relations exist (is_incremental(), the identity step's settled_resolution); `--no-introspect` only leaves out
the connection dbt names around each node, and `--no-populate-cache` makes every such question a query (tried: the
connector retries an unreachable host for minutes). Here the answer is "none": every model compiles as for
a first build into an empty workspace, and any other query fails the check at once, naming the model. The one model
whose compilation runs queries by design (int_identity_components: its connected components are computed while it
compiles) is left out; the Spark equality test runs it.

dbt compile only renders the Jinja; so each compiled SQL model and data test is then parsed by Spark's own SQL
parser, and every function it calls must exist in Spark's function registry: a DuckDB-only construct (a struct
literal {...}, first(x order by y), list_sort(...), a `varchar` without length) fails the check. Types and arities
are not checked (that needs the tables; the Spark equality test builds them).
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from dbt.adapters.databricks.connections import DatabricksConnectionManager
from dbt.adapters.databricks.impl import DatabricksAdapter
from dbt.cli.main import dbtRunner
from dbt_common.exceptions import DbtRuntimeError

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
NEEDS_WORKSPACE = ["int_identity_components"]
# An unresolved function call in a parsed plan's tree string: 'name(
UNRESOLVED_FUNCTION = re.compile(r"'([A-Za-z_]\w*)\(")


def _empty_workspace(self, relation):
    return []


def _no_connection(cls, connection):
    raise DbtRuntimeError("compile-only check: there is no workspace, and compiling this model runs a query")


def compile_models(target_path: Path, variables: str) -> dict[str, str]:
    """The compiled SQL of every SQL model and data test (unique id -> SQL) for the databricks target; exits when dbt
    fails."""
    DatabricksAdapter.get_relations_without_caching = _empty_workspace
    DatabricksConnectionManager.open = classmethod(_no_connection)
    result = dbtRunner().invoke(
        [
            "compile",
            "--vars",
            variables,
            "--target",
            "databricks",
            "--project-dir",
            str(PROJECT_DIR),
            "--profiles-dir",
            str(PROJECT_DIR),
            "--target-path",
            str(target_path),
            "--select",
            "resource_type:model",
            "--exclude",
            *NEEDS_WORKSPACE,
            "--quiet",
        ]
    )
    if not result.success:
        sys.exit(f"dbt compile failed on the databricks target: {result.exception or 'see the errors above'}")
    return {r.node.unique_id: r.node.compiled_code for r in result.result.results if r.node.language == "sql"}


def spark_problems(compiled: dict[str, str]) -> list[str]:
    """What Spark's parser and function registry refuse in the compiled models (empty when nothing)."""
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("cdp-databricks-check")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.debug.maxToStringFields", "100000")  # no "... more fields" in plan strings
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("OFF")
    parser = spark._jsparkSession.sessionState().sqlParser()  # parsing without analysis has no public API
    problems = []
    try:
        for name, sql in sorted(compiled.items()):
            try:
                plan = parser.parsePlan(sql).treeString()
            except Exception as error:  # py4j wraps Spark's ParseException
                message = getattr(error, "java_exception", error)
                problems.append(f"{name}: Spark cannot parse it: {str(message).strip().splitlines()[0]}")
                continue
            unknown = sorted({f for f in UNRESOLVED_FUNCTION.findall(plan) if not spark.catalog.functionExists(f)})
            if unknown:
                problems.append(f"{name}: functions Spark does not have: {', '.join(unknown)}")
    finally:
        spark.stop()
    return problems


def main(variables: str) -> int:
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as target_path:
        compiled = compile_models(Path(target_path), variables)
    problems = spark_problems(compiled)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(
        f"databricks target: {len(compiled)} SQL models and tests compiled, {len(problems)} refused by Spark"
        f" (left out, they need a workspace to compile: {', '.join(NEEDS_WORKSPACE)})"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
