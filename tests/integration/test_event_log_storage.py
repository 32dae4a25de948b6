"""The batched event log (pipeline/defs/runs/event_log.py) stores what Dagster's stock SQLite event log stores.

The same two runs go to two instances: a daily-partitioned asset with a check, materialized over a range of days in one
run, then over part of that range again. One instance has Dagster's default settings and writes one event at a time;
the other has the shipped settings (pipeline/config/dagster.yaml) and DAGSTER_EVENT_BATCH_SIZE as `make run` sets it,
so each step's per-day events reach the storage in one batch. Everything the instance's API says about the asset
(per-day status, materializations with their storage ids, planned events, the asset's latest-event record, indexed
tags, check history, each run's log) must be the same.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import dagster as dg

from pipeline.cli import DAGSTER_ENVIRONMENT
from pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pipeline.defs.runs.event_log import BatchedSqliteEventLogStorage
from pipeline.lib.environment import SHIPPED_INSTANCE

DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-03-02")  # 60 days
KEY = dg.AssetKey(["raw", "orders"])


@dg.asset(key=KEY, partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def orders(context) -> dg.MaterializeResult:
    first, last = context.partition_key_range
    return dg.MaterializeResult(metadata={"days": len(context.partition_keys), "first": first, "last": last})


@dg.asset_check(asset=orders)
def orders_have_rows() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


JOB = dg.Definitions(
    assets=[orders],
    asset_checks=[orders_have_rows],
    jobs=[dg.define_asset_job("orders_job", selection=[KEY], partitions_def=DAYS)],
).resolve_job_def("orders_job")
RANGES = [("2026-01-01", "2026-03-01"), ("2026-02-10", "2026-02-20")]


def _run_both_ranges(instance: dg.DagsterInstance) -> None:
    for start, end in RANGES:
        assert JOB.execute_in_process(instance=instance, tags={RANGE_START_TAG: start, RANGE_END_TAG: end}).success


def _dagster_events(instance: dg.DagsterInstance, run_id: str) -> list[tuple]:
    records = instance.get_records_for_run(run_id, limit=10_000).records
    return [
        (r.storage_id, r.event_log_entry.dagster_event_type, r.event_log_entry.dagster_event.partition)
        for r in records
        if r.event_log_entry.is_dagster_event
    ]


def _what_the_instance_says(instance: dg.DagsterInstance) -> dict:
    storage = instance.event_log_storage
    runs = {run.run_id: index for index, run in enumerate(reversed(instance.get_runs()))}
    materializations = instance.fetch_materializations(KEY, limit=1000).records
    planned = instance.get_event_records(
        dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, asset_key=KEY)
    )
    entry = instance.get_asset_records([KEY])[0].asset_entry
    check_key = dg.AssetCheckKey(KEY, "orders_have_rows")
    return {
        "materialized": instance.get_materialized_partitions(KEY),
        "status": instance.get_status_by_partition(KEY, DAYS.get_partition_keys(), DAYS),
        "latest_by_day": storage.get_latest_storage_id_by_partition(KEY, dg.DagsterEventType.ASSET_MATERIALIZATION),
        "materializations": [
            (
                r.storage_id,
                runs[r.run_id],
                r.partition_key,
                {k: v.value for k, v in r.asset_materialization.metadata.items()},
            )
            for r in materializations
        ],
        "planned": [(r.storage_id, runs[r.run_id], r.partition_key) for r in planned],
        "latest": (
            entry.last_materialization_record.storage_id,
            entry.last_materialization_record.partition_key,
            runs[entry.last_run_id],
            entry.last_materialization.dagster_event.partition,
            entry.last_planned_materialization_storage_id,
            runs.get(entry.last_planned_materialization_run_id),
        ),
        "tag_keys": sorted(sorted(tags) for tags in instance.get_event_tags_for_asset(KEY)),
        "checks": [(runs[r.run_id], r.status) for r in storage.get_asset_check_execution_history(check_key, 10)],
        "logs": {index: _dagster_events(instance, run_id) for run_id, index in runs.items()},
    }


def test_batched_storage_stores_what_the_stock_storage_stores(tmp_path, monkeypatch):
    stock_home, batched_home = tmp_path / "stock", tmp_path / "batched"
    stock_home.mkdir()
    batched_home.mkdir()
    (stock_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    shutil.copy(SHIPPED_INSTANCE, batched_home / "dagster.yaml")
    monkeypatch.delenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", raising=False)  # planned events per day too

    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    stock = dg.DagsterInstance.from_config(str(stock_home))
    assert type(stock.event_log_storage).__name__ == "SqliteEventLogStorage"
    _run_both_ranges(stock)

    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", DAGSTER_ENVIRONMENT["DAGSTER_EVENT_BATCH_SIZE"])
    batched = dg.DagsterInstance.from_config(str(batched_home))
    storage = batched.event_log_storage
    assert isinstance(storage, BatchedSqliteEventLogStorage)
    assert Path(storage._base_dir) == batched_home / "history" / "runs"  # the stock layout, under this instance
    batch_sizes = []  # what Dagster hands the storage at once (recorded, then stored by the storage's own method)
    store_batch = storage.store_event_batch
    monkeypatch.setattr(
        storage, "store_event_batch", lambda events: batch_sizes.append(len(events)) or store_batch(events)
    )
    _run_both_ranges(batched)

    # Per run: the planned days with the planned check, then the materialized days.
    assert sorted(batch_sizes) == [11, 12, 60, 61]
    expected, got = _what_the_instance_says(stock), _what_the_instance_says(batched)
    assert len(expected["materializations"]) == 71 and len(expected["materialized"]) == 60
    for part in expected:
        assert got[part] == expected[part], part


def test_a_watcher_sees_each_event_as_it_is_written(tmp_path):
    """The webserver's live run log watches the run's file: every write must reach it while the writer's connection
    stays open (the write sits in SQLite's write-ahead log, the storage touches the file)."""
    shutil.copy(SHIPPED_INSTANCE, tmp_path / "dagster.yaml")
    writer = dg.DagsterInstance.from_config(str(tmp_path)).event_log_storage  # the run's process
    watcher = dg.DagsterInstance.from_config(str(tmp_path)).event_log_storage  # the webserver's
    run_id = "0" * 8 + "-0000-0000-0000-" + "0" * 12

    def message(text: str) -> dg.EventLogEntry:
        return dg.EventLogEntry(
            error_info=None, level=logging.INFO, user_message=text, run_id=run_id, timestamp=time.time()
        )

    writer.store_event(message("first"))  # the run's file exists before anyone watches it
    seen: list[str] = []
    watcher.watch(run_id, None, lambda entry, _cursor: seen.append(entry.user_message))
    try:
        for text in ("second", "third"):
            writer.store_event(message(text))
            deadline = time.monotonic() + 10
            while text not in seen and time.monotonic() < deadline:
                time.sleep(0.05)
            assert text in seen, f"the watcher did not see {text!r}: {seen}"
    finally:
        watcher.dispose()
        writer.dispose()
    assert seen == ["first", "second", "third"]  # read from the start of the run, in order, once each
