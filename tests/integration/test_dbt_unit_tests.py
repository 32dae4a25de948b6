"""The dbt `unit_tests:` of the project (customer_profile survivorship, segment rules, value and equity models) run
against a copy of the demo warehouse, which gives dbt the column types of every model's inputs."""

import json
import shutil

from pipeline.settings import load_settings
from tests.support.dbt_cli import run_dbt


def test_dbt_unit_tests_pass(demo_run, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(demo_run.warehouse, warehouse)
    result = run_dbt(
        warehouse, "test", "--select", "test_type:unit", "--vars", json.dumps(load_settings().dbt_vars(warehouse))
    )
    assert result.returncode == 0, result.stdout[-4000:]
    outcomes = {
        r["unique_id"].split(".")[-1]: r["status"]
        for r in json.loads((tmp_path / "dbt-target" / "run_results.json").read_text())["results"]
        if r["unique_id"].startswith("unit_test.")  # not the on-run-end hook
    }
    assert {
        "profile_survivorship_rules",
        "primary_segment_follows_the_precedence",
        "value_percentile_averages_ties",
        "base_shape_of_a_known_distribution",
        "customer_value_parts_and_dimensions",
        "equity_rolls_up_every_dimension",
    } <= outcomes.keys()
    assert set(outcomes.values()) == {"pass"}
