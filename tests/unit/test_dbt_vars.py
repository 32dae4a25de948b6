"""The dbt vars a Dagster run hands to dbt: the run date is the run's last partition, config sections ride along."""

from datetime import date

from pipeline.defs.dbt.assets import PARTITION_TAG, dbt_vars, last_partition
from pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pipeline.settings import load_settings


def test_run_date_is_the_last_partition_of_the_run():
    backfill = {RANGE_START_TAG: "2024-01-01", RANGE_END_TAG: "2026-11-22"}
    assert last_partition(backfill) == date(2026, 11, 22)
    assert last_partition({PARTITION_TAG: "2026-11-20"}) == date(2026, 11, 20)
    assert last_partition({}) is None
    assert dbt_vars(backfill)["run_date"] == "2026-11-22"
    assert "run_date" not in dbt_vars({})  # outside the partitions dbt falls back to the latest staged day


def test_config_sections_reach_dbt_as_vars():
    values = dbt_vars({})
    for name in ("segments", "clv", "equity"):
        assert values[name] == load_settings().section(name)
    assert values["segments"]["impulsive"]["max_minutes_to_first_purchase"] > 0
