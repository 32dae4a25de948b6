"""The code location loads, shows the whole lineage, and schedules the nightly run at 02:00 Asia/Jakarta."""

import dagster as dg

from pipeline.definitions import defs


def _graph():
    return defs.get_repository_def().asset_graph


def test_definitions_load_and_every_dependency_is_defined():
    graph = _graph()
    keys = graph.get_all_asset_keys()
    materializable = {k for k in keys if graph.get(k).is_materializable}
    missing = sorted(k.to_user_string() for k in keys - materializable)
    assert missing == [], f"assets referenced but not defined: {missing}"


def test_lineage_runs_raw_to_staging_to_marts():
    graph = _graph()
    profile = dg.AssetKey(["marts", "customer_profile"])
    upstream = {k.path[0] for k in graph.get(profile).parent_keys}
    assert "intermediate" in upstream or "staging" in upstream
    staging = dg.AssetKey(["staging", "stg_webshop__orders"])
    assert dg.AssetKey(["raw", "webshop_orders"]) in graph.get(staging).parent_keys


def test_nightly_schedule_at_two_in_jakarta():
    schedule = defs.get_schedule_def("cdp_nightly_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Asia/Jakarta"
    job = defs.get_job_def("cdp_nightly")
    assert job.partitions_def is not None


def test_raw_assets_are_daily_partitioned_with_single_run_backfills():
    graph = _graph()
    for name in ("webshop_orders", "helpdesk_tickets", "survey_responses"):
        node = graph.get(dg.AssetKey(["raw", name]))
        assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition)
        assert node.partitions_def.timezone == "Asia/Jakarta"
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
