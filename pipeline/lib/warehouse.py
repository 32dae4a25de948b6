"""Connections to the DuckDB warehouse file, and set-wise reads/writes of whole tables.

DuckDB lets one process write a database file at a time. Every writer in the pipeline goes through `connect()`, which
waits (tenacity, exponential backoff) for a lock held by another process instead of failing at once, and bounds the
connection's memory (`memory_limit`, spilling to `temp_directory`) as the settings say. In-memory DuckDB (work on
frames, reading sources) goes through `in_memory()`, bounded the same way.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential

LOCK_WAIT_SECONDS = 300.0


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    locked = "lock" in text and ("conflicting" in text or "could not set lock" in text)
    return isinstance(exc, duckdb.IOException) and locked


@retry(
    retry=retry_if_exception(_is_lock_error),
    wait=wait_exponential(multiplier=0.1, max=5.0),
    stop=stop_after_delay(LOCK_WAIT_SECONDS),
    reraise=True,
)
def _open(path: Path, read_only: bool, config: dict[str, str]) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=read_only, config=config)


@contextmanager
def connect(
    path: Path | str,
    read_only: bool = False,
    *,
    memory_limit: str | None = None,
    temp_directory: Path | str | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse file, waiting while another process holds the write lock; closed on exit."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    con = _open(target, read_only, _limits(memory_limit, temp_directory))
    try:
        yield con
    finally:
        con.close()


def in_memory(memory_limit: str | None = None, temp_directory: Path | str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB bounded like the warehouse connections: its buffer pool by memory_limit (DuckDB's default
    is 80 % of RAM per instance), spilling beside the warehouse's temp_directory, into `<temp_directory>.memory/` in a
    directory of its own that DuckDB creates on the first spill and removes on close. Of its own, because DuckDB
    instances spilling into one directory overwrite each other's files, and the one that created the directory
    deletes it, with what is in it, when it closes (the warehouse connection's `temp_directory` included)."""
    spill = None
    if temp_directory:
        root = Path(f"{temp_directory}.memory")
        root.mkdir(parents=True, exist_ok=True)
        spill = root / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    return duckdb.connect(config=_limits(memory_limit, spill))


def _limits(memory_limit: str | None, temp_directory: Path | str | None) -> dict[str, str]:
    """The config bounding a DuckDB instance's memory. Besides the limit, the allocator's background thread: without
    it DuckDB's allocator keeps the memory a finished query freed (1.5 of 2.7 GiB after a 20M-row sort in a 4 GB
    instance, against 0.4 GiB with it, within 3 s), and a long process (dbt's, running model after model) grows by
    what each large model freed, on top of what the next one takes."""
    config = {"allocator_background_threads": "true"}
    if memory_limit:
        config["memory_limit"] = memory_limit
    if temp_directory:
        config["temp_directory"] = str(temp_directory)
    return config


# The units of a memory size (cdp.yaml's duckdb.memory_limit), as DuckDB reads them.
SIZE_UNITS = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip
MEMORY_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(" + "|".join(SIZE_UNITS) + ")", re.IGNORECASE)


def size_bytes(text: str) -> int:
    """Bytes of a memory size as configured ('4GB', '3.5 GiB', '512MB')."""
    match = MEMORY_SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a memory size: {text!r}")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).lower()])


# What DuckDB 1.5.5 holds in memory for a table with deleted rows (a nightly's delete+insert) once the table was read
# or the database checkpointed, until the database closes: its per-vector delete marks, about 8 bytes a row (README,
# "Memory"; DuckDB 1.5.6 does not).
DELETED_ROW_BYTES = 8


def deleted_row_pins_fit(con: duckdb.DuckDBPyConnection, memory_limit: str) -> bool:
    """Whether one process may hold the warehouse `con` has open through many statements (dbt's `keep_open`) without
    the delete marks it pins crowding out the work: at most half of `memory_limit`, counting 8 bytes for every row of
    every table, as if each had deleted rows. Measured at 1M persons (156M rows: 1.25 GB of marks), the nightly's
    dbt held open succeeds at a 4 GB and a 2.5 GB limit and fails at 1.4 GB; at 3M (3.7 GB) it failed at 4 GB."""
    rows = con.execute(
        "select coalesce(sum(estimated_size), 0) from duckdb_tables() where database_name = current_database()"
    ).fetchone()[0]
    return rows * DELETED_ROW_BYTES <= size_bytes(memory_limit) / 2


@contextmanager
def memory_share(con: duckdb.DuckDBPyConnection, memory_limit: str | None, share: float) -> Iterator[None]:
    """Within the block, the DuckDB database of `con` keeps `share` of its `memory_limit` (the limit it was opened
    with, e.g. dbt's from the profile); it is set back to `memory_limit` on exit. For Python work holding large frames
    beside the database: lowering the limit moves what the buffer pool holds over it (temporary tables, cached
    blocks) to its temp_directory or out, so the process holds at most the share plus the frames, not the full limit
    plus the frames. memory_limit is one setting of the whole database (every cursor of it). Without a
    `memory_limit` (DuckDB's default of 80 % of RAM) nothing changes."""
    if not memory_limit:
        yield
        return
    con.execute(f"set memory_limit = {quote_literal(f'{int(size_bytes(memory_limit) * share)}B')}")
    try:
        yield
    finally:
        con.execute(f"set memory_limit = {quote_literal(memory_limit)}")


def quote_identifier(name: str) -> str:
    """A name as a quoted SQL identifier (embedded quotes doubled): safe for any text, never interpreted."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A text as a SQL string literal, for the few places DuckDB takes no parameter (ATTACH, SET, secrets)."""
    return "'" + value.replace("'", "''") + "'"


def literal_list(values) -> str:
    """Texts as the list inside a SQL `in (...)`, each a string literal; `null` when there are none (no value is in
    it). For the names a query is built around (identifier types, source names), not for data: data is bound."""
    return ", ".join(quote_literal(value) for value in values) or "null"


def read_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pl.DataFrame:
    """Run a query and return it as a polars frame (zero-copy through Arrow)."""
    return con.execute(sql, params or []).pl()


def table_exists(con: duckdb.DuckDBPyConnection, qualified_name: str) -> bool:
    schema, _, table = qualified_name.rpartition(".")
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema or "main", table],
        ).fetchone()[0]
    )


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All statements inside commit together or not at all (a failure rolls back and re-raises)."""
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def replace_table(con: duckdb.DuckDBPyConnection, qualified_name: str, frame: pl.DataFrame) -> int:
    """Replace a table with the frame's rows in one transaction (readers see the old or the new table, never half)."""
    schema = qualified_name.split(".")[0] if "." in qualified_name else "main"
    con.execute(f"create schema if not exists {schema}")
    con.register("_replace_frame", frame.to_arrow())
    try:
        with transaction(con):
            con.execute(f"create or replace table {qualified_name} as select * from _replace_frame")
    finally:
        con.unregister("_replace_frame")
    return frame.height


def ensure_table(con: duckdb.DuckDBPyConnection, table: str, shape_sql: str) -> None:
    """Create the table with the query's columns on first use; later add any column the query has gained."""
    schema = table.split(".")[0] if "." in table else "main"
    con.execute(f"create schema if not exists {schema}")
    con.execute(f"create table if not exists {table} as {shape_sql} limit 0")
    existing = {row[0] for row in con.execute(f"describe {table}").fetchall()}
    for name, dtype, *_ in con.execute(f"describe {shape_sql}").fetchall():
        if name not in existing:
            con.execute(f"alter table {table} add column {quote_identifier(name)} {dtype}")
