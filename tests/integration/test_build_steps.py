"""int_customer_traits is built in steps on DuckDB (macros/portable/ctes.sql, build_step): each CTE its own statement,
so that no query holds every per-customer result at once (as one query a full build at 3M customers ran out of
memory), and no step outlives the model. Read from the statements dbt itself logged while it built the model."""

from __future__ import annotations

import json
import re
import shutil

import duckdb

from pipeline.settings import load_settings
from tests.support.dbt_cli import run_dbt

STEP = re.compile(r"create or replace temporary (table|view) (__step_int_customer_traits__\w+) as ")
DROP = re.compile(r"drop (table|view) if exists (__step_int_customer_traits__\w+);")


def test_traits_are_built_in_steps_that_are_dropped_after(demo_run, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(demo_run.warehouse, warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        built = con.execute("select * exclude (_model_checksum) from intermediate.int_customer_traits").pl()
    variables = json.dumps({**load_settings().dbt_vars(warehouse), "run_date": demo_run.end.isoformat()})
    logs = tmp_path / "dbt-logs"
    build = ["run", "--full-refresh", "--select", "int_customer_traits", "--vars", variables, "--log-path", str(logs)]
    result = run_dbt(warehouse, *build)
    assert result.returncode == 0, result.stdout[-3000:]

    log = (logs / "dbt.log").read_text(encoding="utf-8")
    steps = STEP.findall(log)
    names = [name for _, name in steps]
    # Every CTE of the model became a statement of its own, the per-customer results as tables.
    assert len(names) == len(set(names)) >= 15
    assert {"__step_int_customer_traits__purchases", "__step_int_customer_traits__attributes"} <= {
        name for kind, name in steps if kind == "table"
    }
    # The post-hook dropped each of them after the model's own statement read them.
    dropped = DROP.findall(log)
    assert sorted(dropped) == sorted(steps)
    assert log.index("int_customer_traits__dbt_tmp") < log.index("drop table if exists __step_int_customer_traits__")
    # The same customers as the pipeline's build of the same sources.
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rebuilt = con.execute("select * exclude (_model_checksum) from intermediate.int_customer_traits").pl()
    assert rebuilt.sort("customer_id").equals(built.sort("customer_id"))
