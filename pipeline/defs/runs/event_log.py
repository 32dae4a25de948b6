"""Dagster's SQLite event log, writing a step's per-partition materializations in one transaction per batch.

A run over a range of daily partitions (a backfill, `make run` over three years) records one materialization per
asset and partition: ~1,000 events per raw asset. Dagster hands them to the storage as one batch when the environment
sets DAGSTER_EVENT_BATCH_SIZE (the CLI and the Makefile do), but its SQLite storage stores a batch event by event:
two connections and two committed (fsynced) transactions per event, ~0.2-0.6 s each on a busy disk. This storage
writes the batch as one insert into the run's shard and one transaction on the index shard, with the same rows.
Anything that is not a batch of one run's asset events goes through Dagster's own path.

Every other event (step starts, dbt models' materializations, check evaluations: hundreds per run) is still a
transaction of its own; the storage's SQLite files run in WAL mode, where `synchronous=NORMAL` makes a commit skip the
fsync (the WAL is synced at checkpoints): an application crash loses nothing, a power cut at most the last events,
and the file stays consistent. Dagster's default (FULL) syncs every commit, ~0.1-0.5 s each on a busy disk.

Configured in pipeline/config/dagster.yaml (`event_log_storage`); the files stay where Dagster's default SQLite
storage keeps them (<DAGSTER_HOME>/history/runs), so an existing instance keeps its history.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence

import dagster as dg
import sqlalchemy
from dagster._core.events import ASSET_EVENTS
from dagster._core.storage.event_log import SqliteEventLogStorage


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage whose `store_event_batch` commits a batch of asset events at once."""

    @classmethod
    def config_type(cls):
        return {"base_dir": dg.Field(dg.StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> BatchedSqliteEventLogStorage:
        base_dir = config_value.get("base_dir")
        if not base_dir:
            home = os.environ.get("DAGSTER_HOME")
            if not home:
                raise ValueError("BatchedSqliteEventLogStorage needs base_dir in its config or DAGSTER_HOME set")
            base_dir = os.path.join(home, "history", "runs", "")
        return cls(base_dir=base_dir, inst_data=inst_data)

    def __init__(self, base_dir: str, inst_data=None) -> None:
        super().__init__(base_dir=base_dir, inst_data=inst_data)
        folder = os.path.realpath(base_dir)
        if folder not in _NORMAL_SYNC_FOLDERS:
            _NORMAL_SYNC_FOLDERS.add(folder)
            if not sqlalchemy.event.contains(sqlalchemy.engine.Engine, "connect", _normal_sync):
                sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", _normal_sync)

    def store_event_batch(self, events: Sequence[dg.EventLogEntry]) -> None:
        run_ids = {event.run_id for event in events}
        if len(run_ids) != 1 or not all(
            event.is_dagster_event and event.dagster_event_type in ASSET_EVENTS and event.dagster_event.asset_key
            for event in events
        ):
            super().store_event_batch(events)
            return
        with self.run_connection(run_ids.pop()) as conn:
            conn.execute(self.prepare_insert_event_batch(events))
        # The index shard mirrors the events (cross-run asset queries), their tags and each asset's latest event.
        with self.index_transaction() as conn:
            event_ids = [conn.execute(self.prepare_insert_event(event)).inserted_primary_key[0] for event in events]
            self._store_asset_event_tags(conn, events, event_ids)
            latest = {
                event.dagster_event.asset_key: (event, event_id)
                for event, event_id in zip(events, event_ids, strict=True)
            }
            for event, event_id in latest.values():
                self._store_asset_event(conn, event, event_id)


# Event log folders whose SQLite files commit without fsync (WAL + synchronous=NORMAL); Dagster opens a new engine per
# write, so the setting goes on every new connection to a file in one of them.
_NORMAL_SYNC_FOLDERS: set[str] = set()


def _normal_sync(dbapi_connection, _record) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    path = next((file for _, name, file in dbapi_connection.execute("pragma database_list") if name == "main"), "")
    if path and os.path.dirname(os.path.realpath(path)) in _NORMAL_SYNC_FOLDERS:
        dbapi_connection.execute("pragma synchronous=NORMAL")
