"""The dbt vars a Dagster run hands to dbt: the run date is the run's last partition, config sections ride along."""

from datetime import date
from pathlib import Path

from pipeline.defs.dbt.assets import PARTITION_TAG, dbt_vars, last_partition
from pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pipeline.settings import load_settings

WAREHOUSE = Path("/tmp/warehouse.duckdb")


def test_run_date_is_the_last_partition_of_the_run():
    backfill = {RANGE_START_TAG: "2024-01-01", RANGE_END_TAG: "2026-11-22"}
    assert last_partition(backfill) == date(2026, 11, 22)
    assert last_partition({PARTITION_TAG: "2026-11-20"}) == date(2026, 11, 20)
    assert last_partition({}) is None
    assert dbt_vars(load_settings(), WAREHOUSE, backfill)["run_date"] == "2026-11-22"
    # outside the partitions dbt falls back to the latest staged day
    assert "run_date" not in dbt_vars(load_settings(), WAREHOUSE, {})


def test_config_sections_reach_dbt_as_vars():
    settings = load_settings()
    values = dbt_vars(settings, WAREHOUSE, {})
    assert values["warehouse_path"] == str(WAREHOUSE)
    for name in ("segments", "clv", "equity"):
        assert values[name] == settings.section(name)
    assert values["segments"]["impulsive"]["max_minutes_to_first_purchase"] > 0
