"""The private Dagster names that pipeline/defs/runs/event_log.py relies on, pinned (an agreed exception to "no private
API"). When an upgrade of Dagster renames, re-signs or rewrites one of them, this fails and names it: read the new
code, adapt the batched storage, then update what is pinned here. What the storage stores is compared with the stock
storage by tests/integration/test_event_log_storage.py."""

from __future__ import annotations

import hashlib
import inspect

import pytest
from dagster._core.events import ASSET_EVENTS, DagsterEventType
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData

from pipeline.defs.runs.event_log import BatchedSqliteEventLogStorage

# Overridden or called by the batched storage: name -> parameters.
SIGNATURES = {
    "__init__": ["self", "base_dir", "inst_data"],
    "register_instance": ["self", "instance"],
    "store_event_batch": ["self", "events"],
    "_event_to_row": ["self", "event"],
    "run_connection": ["self", "run_id"],
    "index_transaction": ["self"],
    "index_connection": ["self"],
    "store_asset_check_event": ["self", "event", "event_id"],
    "_store_asset_event_tags": ["self", "conn", "events", "event_ids"],
    "_store_asset_event": ["self", "conn", "event", "event_id"],
    # the shards' pooled connections: opened, initialised and closed as the stock storage does
    "conn_string_for_shard": ["self", "shard_name"],
    "path_for_shard": ["self", "run_id"],
    "_initdb": ["self", "engine", "for_index_shard"],
    "wipe": ["self"],
    "dispose": ["self"],
}

# The per-event path a batch must reproduce, and the stock connection handling: SHA-256 of each method's source in
# Dagster 1.13.27 (uv.lock).
PER_EVENT_PATH = {
    "store_event": "f89aed40602438b9bbbc885d4dca38ef3fcf6f067db70fca22dd40eca8a6e03c",
    "_store_asset_event": "fdb9340b9eef1c9bdbf159bcc9aaa334a029167764bc74d9cfd57c0a7d7a36af",
    "_store_asset_event_tags": "85d6f17ef04b926f1714e8ea8824966230ffdd3a89e55b61a66b8ca3db0eaa2e",
    "_get_asset_entry_values": "bb3b9df2c6c371fea1c6537e35a65d8836d4e16c5094c79df357c11d57bae1c3",
    "store_asset_check_event": "6d148295fa69bb45416fedc187397512e6c349a18c969d2425b000480277f9b3",
    "_store_asset_check_evaluation_planned": "bbecef7ab5ce9d01c1bcf3f46067c9067bfe855601181eb77a6910b8483b4674",
    # How a shard is opened: the index shard's pooled connection replaces it (initialised as it does).
    "_connect": "b8435f2665689760a1e1d98e17b78ceef5a48256dc11b562a20c840abc37d170",
}


@pytest.mark.parametrize(("name", "parameters"), SIGNATURES.items())
def test_the_private_methods_used_keep_their_signatures(name, parameters):
    assert list(inspect.signature(getattr(SqliteEventLogStorage, name)).parameters) == parameters, name


@pytest.mark.parametrize(("name", "digest"), PER_EVENT_PATH.items())
def test_the_per_event_path_the_batch_reproduces_is_unchanged(name, digest):
    source = inspect.getsource(getattr(SqliteEventLogStorage, name))
    assert hashlib.sha256(source.encode()).hexdigest() == digest, f"SqliteEventLogStorage.{name} changed"


def test_the_names_imported_still_mean_what_they_meant():
    assert issubclass(BatchedSqliteEventLogStorage, SqliteEventLogStorage)
    assert DagsterEventType.ASSET_MATERIALIZATION in ASSET_EVENTS
    assert DagsterEventType.ASSET_MATERIALIZATION_PLANNED in ASSET_EVENTS
    assert SqlEventLogStorageTable.c.id.primary_key
    assert INDEX_SHARD_NAME == "index" and SQLITE_BUSY_TIMEOUT_SECONDS > 0
    assert set(inspect.signature(ConfigurableClassData).parameters) >= {"module_name", "class_name", "config_yaml"}
