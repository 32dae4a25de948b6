"""The dbt `unit_tests:` of the project (customer_profile survivorship, segment rules, value and equity models) run
against a copy of the demo warehouse, which gives dbt the column types of every model's inputs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.defs.dbt.assets import dbt_vars
from pipeline.defs.dbt.resources import DBT_DIR


def test_dbt_unit_tests_pass(demo_run, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(demo_run.warehouse, warehouse)
    target = tmp_path / "target"
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            "test",
            "--select",
            "test_type:unit",
            "--vars",
            json.dumps(dbt_vars({})),
            "--target-path",
            str(target),
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
    assert result.returncode == 0, result.stdout[-4000:]
    outcomes = {
        r["unique_id"].split(".")[-1]: r["status"]
        for r in json.loads((target / "run_results.json").read_text())["results"]
    }
    assert {
        "profile_survivorship_rules",
        "primary_segment_follows_the_precedence",
        "base_shape_of_a_known_distribution",
        "customer_value_parts_and_dimensions",
        "equity_rolls_up_every_dimension",
    } <= outcomes.keys()
    assert set(outcomes.values()) == {"pass"}
