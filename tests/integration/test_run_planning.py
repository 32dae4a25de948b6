"""Creating a run of the whole graph over the whole history plans each asset check once, not once per partition.

Dagster 1.13 gives every asset check of a run the run's stored partition subset, which it takes from the last asset
step of the plan; with a partitioned last step a 3-year run planned 244k check rows (~95 s) before its first step.
The time itself is the benchmark's to measure (bench/run.py: run creation -> RUN_START); this test pins the cause.
"""

from __future__ import annotations

import dagster as dg

from pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG, daily_partitions


def test_a_run_over_every_partition_plans_each_check_once(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    from pipeline.definitions import defs
    from pipeline.defs.jobs import nightly_job

    job = defs.resolve_job_def(nightly_job.name)
    keys = daily_partitions.get_partition_keys()
    assert len(keys) > 300  # the configured history: the per-partition cost would show
    checks = job.asset_layer.asset_graph.asset_check_keys
    raw_check = next(k for k in checks if k.asset_key == dg.AssetKey(["raw", "webshop_orders"]))
    mart_check = next(k for k in checks if k.asset_key == dg.AssetKey(["marts", "customer_profile"]))
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        run = instance.create_run_for_job(job_def=job, tags={RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]})
        for check in (raw_check, mart_check):
            planned = instance.event_log_storage.get_asset_check_execution_history(check, limit=len(keys))
            assert [record.run_id for record in planned] == [run.run_id], check
        materializations = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    # One planned event per asset (carrying its partition subset), whatever the number of days.
    assert len(materializations) == len(job.asset_layer.asset_graph.get_all_asset_keys())
