"""The dbt vars a Dagster run hands to dbt: config sections ride along, the run date (the run's last partition) does
not: it goes in the run-context table, so the vars stay the same from night to night and dbt reuses its parse. And
what the dbt steps leave in the project's target/ stays bounded."""

import os
import subprocess
import sys
from argparse import Namespace
from datetime import date
from pathlib import Path

from pipeline.defs.dbt.assets import PARTITION_TAG, last_partition, prune_invocations
from pipeline.defs.dbt.resources import DBT_DIR, RUN_CONTEXT, dbt_vars, expected_run_vars
from pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pipeline.settings import load_settings

WAREHOUSE = Path("/tmp/warehouse.duckdb")


def test_run_date_is_the_last_partition_of_the_run():
    backfill = {RANGE_START_TAG: "2024-01-01", RANGE_END_TAG: "2026-11-22"}
    assert last_partition(backfill) == date(2026, 11, 22)
    assert last_partition({PARTITION_TAG: "2026-11-20"}) == date(2026, 11, 20)
    assert last_partition({}) is None


def test_vars_are_the_same_on_every_run():
    values = dbt_vars(load_settings(), WAREHOUSE)
    assert "run_date" not in values and values["run_context"] == RUN_CONTEXT


def test_config_sections_reach_dbt_as_vars():
    settings = load_settings()
    values = dbt_vars(settings, WAREHOUSE)
    assert values["warehouse_path"] == str(WAREHOUSE)
    for name in ("segments", "clv", "equity"):
        assert values[name] == settings.section(name)
    assert values["segments"]["impulsive"]["max_minutes_to_first_purchase"] > 0


def test_the_profile_takes_keep_open_from_the_vars_and_closes_by_default():
    """dbt-duckdb's own default keeps the database open; by hand (no var) the profile closes it after every model."""
    from dbt.config.profile import Profile, read_profile
    from dbt.config.renderer import ProfileRenderer
    from dbt.flags import set_from_args
    from dbt_common.context import set_invocation_context

    set_invocation_context({})
    set_from_args(Namespace(), {})
    profiles = read_profile(str(DBT_DIR))
    for variables, expected in (({}, False), (dbt_vars(load_settings(), WAREHOUSE, keep_open=True), True)):
        profile = Profile.from_raw_profiles(profiles, "cdp", ProfileRenderer(variables), target_override="duckdb")
        assert profile.credentials.keep_open is expected


def test_only_the_newest_invocation_directories_stay_in_the_target(tmp_path):
    """Each dbt step leaves a directory (its dbt.log, compiled SQL); a nightly schedule makes two a day. The newest
    ones stay for debugging, older ones go; the project's manifest, partial parse and other folders stay."""
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "partial_parse.msgpack").write_bytes(b"parse")
    (tmp_path / "compiled").mkdir()
    for night in range(6):
        for step in ("dbt_models", "dbt_customer_marts"):
            folder = tmp_path / f"{step}-run{night:04d}-abc{night}"
            folder.mkdir()
            (folder / "dbt.log").write_text("{}")
            os.utime(folder, (1_000_000 + night * 86_400, 1_000_000 + night * 86_400))
    removed = prune_invocations(tmp_path, keep=4)
    assert sorted(f.name for f in removed) == sorted(
        f"{step}-run{night:04d}-abc{night}" for night in range(4) for step in ("dbt_models", "dbt_customer_marts")
    )
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "compiled",
        "dbt_customer_marts-run0004-abc4",
        "dbt_customer_marts-run0005-abc5",
        "dbt_models-run0004-abc4",
        "dbt_models-run0005-abc5",
        "manifest.json",
        "partial_parse.msgpack",
    ]


def test_a_run_on_a_new_warehouse_is_expected_to_pass_the_vars_of_its_settings(tmp_path, monkeypatch):
    """What ensure_manifest parses with: the vars a run's dbt steps will pass, so its first step reuses that parse."""
    monkeypatch.setenv("CDP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CDP_WAREHOUSE", raising=False)
    warehouse = tmp_path / "warehouse.duckdb"
    assert expected_run_vars() == dbt_vars(load_settings(), warehouse, keep_open=True)
    assert not warehouse.exists()  # looked at, not created


def test_no_vars_are_expected_while_another_process_holds_the_warehouse(tmp_path, monkeypatch):
    """A running pipeline holds the warehouse: definitions loading beside it parses without vars, never waits."""
    monkeypatch.setenv("CDP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CDP_WAREHOUSE", raising=False)
    warehouse = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys; c = duckdb.connect({str(warehouse)!r}); print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert expected_run_vars() is None
    finally:
        holder.communicate("")
    assert expected_run_vars() == dbt_vars(load_settings(), warehouse, keep_open=True)
