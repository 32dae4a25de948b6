"""Dagster's SQLite event log with one write per batch of asset events (pipeline/config/dagster.yaml).

A run over a range of daily partitions reports one materialization per asset and day (dagster-io/dagster#31694): the
demo's five raw assets over three years are 5,300 events. The stock SQLite storage writes each event on its own: five
fresh connections, four commits and a freshly compiled statement per event, 60 s of the demo's `make run`. With
`DAGSTER_EVENT_BATCH_SIZE` set (pipeline/cli.py, Makefile), Dagster hands a step's partition events to
`store_event_batch` together, and this class writes them with one statement per shard in one transaction each, storing
exactly what the per-event path stores (tests/integration/test_event_log_storage.py). Events that come one at a time
(step events, dbt's outputs and check results: ~600 in the demo) go through one pooled connection per shard: the stock
storage opened a fresh engine and connection per event and shard, and each close checkpointed the run's file with two
disk syncs (~10 ms each here: 5-6 s of the demo run's wall time). The index shard pooled: a 200-check toy run 35 -> 17 s
at load 6.

Private API, agreed as an exception: the names this class overrides or calls are checked against the installed Dagster
by tests/unit/test_event_log_storage_api.py, which fails when they change.
"""

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from itertools import groupby

import dagster as dg
import sqlalchemy as db
from dagster._core.events import ASSET_EVENTS, DagsterEventType
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` whose `store_event_batch` writes a batch of one run's events at once.

    It keeps the stock layout (`history/runs/` under the instance's directory), so it takes no configuration: the
    instance's directory is known once the instance registers itself, which it does before any use.
    """

    def __init__(self, inst_data: ConfigurableClassData | None = None):
        self._inst_data = inst_data
        self._batch = threading.local()  # the index shard connection of the batch this thread is writing, if any
        self._index_engine: db.Engine | None = None
        self._run_engine: tuple[str, db.Engine] | None = None  # the run shard written last and its pooled engine

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data)

    def register_instance(self, instance: dg.DagsterInstance) -> None:
        base_dir = os.path.join(instance.root_directory, "history", "runs")
        super().__init__(base_dir=base_dir, inst_data=self._inst_data)
        super().register_instance(instance)

    def index_connection(self):
        conn = getattr(self._batch, "index_conn", None)
        return nullcontext(conn) if conn is not None else super().index_connection()

    def _connect(self, shard: str):
        return self._index_connect() if shard == INDEX_SHARD_NAME else self._run_connect(shard)

    @contextmanager
    def _index_connect(self) -> Iterator[db.Connection]:
        """The index shard through one pooled connection instead of a new engine and connection per write (each
        close of the last connection checkpointed the file, fsync included)."""
        with self._db_lock:
            if self._index_engine is None:
                self._index_engine = self._pooled_engine(INDEX_SHARD_NAME)
            with self._index_engine.connect() as conn, conn.begin():
                yield conn

    @contextmanager
    def _run_connect(self, run_id: str) -> Iterator[db.Connection]:
        """A run's shard through one pooled connection, kept for the run written last (a run's events come from its
        own process; the webserver and daemon switch between runs and then close the previous run's connection).

        The stock storage closed a fresh connection after every write, which checkpointed the write into
        <run_id>.db: that file's change is what the webserver's live run log waits for (it watches the file, not its
        write-ahead log). With the connection kept, the write stays in the log, readable by every other connection,
        and touching the file's time tells the watchers instead, without the checkpoint's disk syncs."""
        with self._db_lock:
            if self._run_engine is None or self._run_engine[0] != run_id:
                self._dispose_run_engine()
                self._run_engine = (run_id, self._pooled_engine(run_id))
            with self._run_engine[1].connect() as conn:
                changes = conn.connection.dbapi_connection.total_changes
                with conn.begin():
                    yield conn
                if conn.connection.dbapi_connection.total_changes != changes:  # not after reads: watchers read
                    os.utime(self.path_for_shard(run_id))

    def _pooled_engine(self, shard: str) -> db.Engine:
        """An engine keeping its connection open, initialised as the stock storage initialises a shard; in WAL mode
        `synchronous=NORMAL` syncs at checkpoints instead of at every commit (a power cut may lose the last commits,
        never the file)."""
        engine = db.create_engine(
            self.conn_string_for_shard(shard), connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
        )
        db.event.listen(engine, "connect", _sync_at_checkpoints)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        return engine

    def _dispose_run_engine(self) -> None:
        if self._run_engine is not None:
            self._run_engine[1].dispose()  # closing the last connection checkpoints the run's file
            self._run_engine = None

    def wipe(self) -> None:
        with self._db_lock:
            self._dispose_run_engine()  # the stock wipe deletes the run files
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        with self._db_lock:
            self._dispose_run_engine()
        if self._index_engine is not None:
            self._index_engine.dispose()

    def store_event_batch(self, events: Sequence[dg.EventLogEntry]) -> None:
        # Runs of consecutive events of one run are written together; anything else one at a time, as the stock
        # storage does. The events keep their order, hence their storage ids.
        for (run_id, batched), group in groupby(events, lambda e: (e.run_id, _batched(e))):
            if batched:
                self._store_batch(run_id, list(group))
            else:
                for event in group:
                    self.store_event(event)

    def _store_batch(self, run_id: str, events: list[dg.EventLogEntry]) -> None:
        rows = [self._event_to_row(event) for event in events]
        insert = SqlEventLogStorageTable.insert()
        with self.run_connection(run_id) as conn:
            conn.execute(insert, rows)
        # The index shard mirrors the events; its ids key the asset tags, each asset's latest-event record and the
        # planned check executions.
        returning = insert.returning(SqlEventLogStorageTable.c.id, sort_by_parameter_order=True)
        with self.index_transaction() as conn:
            stored = list(zip(events, conn.execute(returning, rows).scalars(), strict=True))
            assets = [(e, i) for e, i in stored if e.dagster_event_type in ASSET_EVENTS]
            self._store_asset_event_tags(conn, [e for e, _ in assets], [i for _, i in assets])
            # Each asset's row holds the latest event of each kind: storing those in order leaves it as storing all.
            latest = {(e.dagster_event.asset_key, e.dagster_event_type): (e, i) for e, i in assets}
            for event, event_id in sorted(latest.values(), key=lambda pair: pair[1]):
                self._store_asset_event(conn, event, event_id)
            # Planned checks through the stock method, inside this transaction (it asks for an index connection).
            self._batch.index_conn = conn
            try:
                for event, event_id in stored:
                    if event.dagster_event_type == DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED:
                        self.store_asset_check_event(event, event_id)
            finally:
                self._batch.index_conn = None


def _sync_at_checkpoints(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _batched(event: dg.EventLogEntry) -> bool:
    """Whether the event is one this storage writes in a batch: an asset's event, or a check's planned event."""
    if not event.is_dagster_event:
        return False
    kind = event.dagster_event_type
    if kind in ASSET_EVENTS:
        return event.get_dagster_event().asset_key is not None
    return kind == DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED
