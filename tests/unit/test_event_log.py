"""The shipped instance's event log stores a range run's per-partition materializations in batches, and what it stores
reads back exactly as Dagster's own SQLite storage would have it (pipeline/defs/runs/event_log.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from pipeline.defs.runs.event_log import BatchedSqliteEventLogStorage

REPO = Path(__file__).resolve().parents[2]
DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-03-02")  # 60 days


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def landed() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run(), deps=[landed])
def cleaned() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 2})


def _range_run(home: Path, monkeypatch, batch_size: str | None) -> tuple[dg.DagsterInstance, int]:
    """Both assets over all 60 days in one run on an instance at `home`; returns it and how many materializations
    its event log stored one by one."""
    home.mkdir()
    shutil.copy(REPO / "pipeline" / "config" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")  # as the CLI runs: planned ones alike
    if batch_size:
        monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch_size)
    else:
        monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    instance = dg.DagsterInstance.get()
    storage = instance.event_log_storage
    single_writes = []
    original = storage.store_event
    monkeypatch.setattr(storage, "store_event", lambda event: (single_writes.append(event), original(event))[1])
    tags = {"dagster/asset_partition_range_start": "2026-01-01", "dagster/asset_partition_range_end": "2026-03-01"}
    assert dg.materialize([landed, cleaned], instance=instance, tags=tags).success
    return instance, sum(
        event.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION for event in single_writes
    )


def _readback(instance: dg.DagsterInstance) -> dict:
    out = {}
    for key in (dg.AssetKey("landed"), dg.AssetKey("cleaned")):
        records = instance.fetch_materializations(key, limit=1000).records
        latest = instance.get_latest_materialization_event(key)
        out[key.to_user_string()] = {
            "partitions": sorted(instance.get_materialized_partitions(key)),
            "events": sorted(r.partition_key for r in records),
            "latest": latest.dagster_event.partition,
            "metadata": {r.asset_materialization.metadata["rows"].value for r in records},
            "status": instance.get_status_by_partition(key, DAYS.get_partition_keys(), DAYS),
        }
    return out


def test_range_run_materializations_are_batched_and_read_back_alike(tmp_path, monkeypatch):
    batched, batched_writes = _range_run(tmp_path / "batched", monkeypatch, "1000")
    assert isinstance(batched.event_log_storage, BatchedSqliteEventLogStorage)
    assert str(batched.event_log_storage._base_dir).startswith(str(tmp_path / "batched" / "history" / "runs"))
    # Its files commit without an fsync per transaction (WAL, synchronous=NORMAL).
    with batched.event_log_storage.index_connection() as conn:
        assert conn.exec_driver_sql("pragma journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("pragma synchronous").scalar() == 1
    result = _readback(batched)
    assert result["landed"]["partitions"] == DAYS.get_partition_keys() == result["cleaned"]["events"]
    assert result["cleaned"]["latest"] == "2026-03-01"

    plain, plain_writes = _range_run(tmp_path / "plain", monkeypatch, None)
    assert _readback(plain) == result
    # Without batches every one of the 120 materializations is a write of its own; with them, none is.
    assert (plain_writes, batched_writes) == (2 * len(DAYS.get_partition_keys()), 0)


def test_storage_needs_a_home_or_a_directory(monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(ValueError, match="DAGSTER_HOME"):
        BatchedSqliteEventLogStorage.from_config_value(None, {})
