"""Publishing the marts to BI tools: Parquet files plus a read-only serving DuckDB file of views over them, swapped
in atomically.

BI tools must never see a half-built table and must never hold the warehouse's write lock, so they read a separate
copy: each table's Parquet files in a new version directory (`<serving>/parquet-v<ns>/<table>/`) and a small DuckDB
file (`<serving>/cdp.duckdb.tmp-<pid>`) whose views (`marts.<table>`) read those files, with the manifest. Only when
everything is written is it swapped in: `os.replace` of the DuckDB file (a rename, atomic on POSIX) and `os.replace`
of the `parquet` symlink onto the new version directory. A client that still has the old file open keeps reading the
old inode, whose views name the old version's files (a consistent snapshot): a superseded version stays on disk for
SUPERSEDED_KEPT_SECONDS. A publish that fails or is killed leaves the last good copy in place; its leftovers (tmp
files of dead processes) are removed by the next publish.

The data is written once, as Parquet (DuckDB tables in the serving file would write it a second time), and only what
changed: every served table carries a change marker in the manifest (a hash of its served rows, taken in one scan,
plus its column list and descriptions; the consent joined from the profile enters as one hash of all consents).
Parquet files of tables whose marker did not move are hard links into the new version directory. A dated history
table (a `snapshot_date` column, the one history mechanism, or a log's `run_date`) has a marker per date and one
Parquet file per date: a nightly run adds one date, so a publish writes that date's file, whatever the length of the
history. An
erasure (`keep_previous_parquet=False`) builds everything afresh and keeps no older version, so no copy of the erased
person survives.

Made for BI clients: every table and column keeps the description dbt documented (table and column comments in the
DuckDB file, field and schema metadata `description` in the Parquet files); each table is one folder
`parquet/<table>/` (so `read_parquet(folder)` never glues tables together); unsigned and 128-bit integers are served as
BIGINT; every list column also gets a bridge table `<table>__<column>` (the table's key, one row per element); a
model's bookkeeping columns (named `_...`: `_loaded_at`, `_resolution`, `_invocation_id`) are not served.

Privacy on the way out:
  * every published table that holds `customer_id` carries `marketing_consent` (joined from marts.customer_profile
    when the table lacks it; customers without a profile row count as not consenting). A dated history table's
    Parquet files hold its rows as they are and its view joins today's consent from the profile's files, so a
    consent change does not rewrite every date of the history;
  * with `serving.pseudonymise: true` the direct identifiers (email, phone, names) are replaced by
    sha256(salt || value), the salt coming from the environment (never from a file).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from pipeline.lib.environment import secret
from pipeline.lib.warehouse import connect

SERVING_FILE = "cdp.duckdb"
PARQUET_LINK = "parquet"
MANIFEST_TABLE = "main.serving_manifest"
# Change markers of the dated tables per date (a history's snapshot_date, a log's run_date).
SNAPSHOTS_TABLE = "main.serving_snapshots"
# Columns dating a table's rows for good, in the order one is chosen: such a table is served as one Parquet file per
# date, and a publish writes only the dates whose rows moved (identity_changes gains one run date a night).
DATE_COLUMNS = ("snapshot_date", "run_date")
# Direct identifiers besides every column whose name mentions email or phone.
NAME_COLUMNS = frozenset({"full_name", "first_name", "last_name", "requester_name", "customer_name"})
_CONTACT_PATTERN = re.compile(r"email|phone")
_TMP_PID = re.compile(r"\.tmp-(\d+)$")
STRING_TYPES = ("VARCHAR", "VARCHAR[]")
# Integer types many BI drivers cannot map (ODBC/JDBC/Arrow consumers): served as BIGINT.
BIGINT_TYPES = frozenset({"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "HUGEINT", "UHUGEINT"})
# A column named so is a model's bookkeeping (dbt_project: "model state, no business meaning"): not served.
MODEL_STATE_PREFIX = "_"
# Columns that identify a row of a published table, in the order a bridge table's key is chosen.
BRIDGE_KEYS = ("customer_id", "order_id", "ticket_id", "response_id")
MANIFEST_DESCRIPTION = {
    "": "What this serving copy holds: one row per published table.",
    "table_name": "Published table as schema.table.",
    "row_count": "Rows published.",
    "pseudonymised": "Whether emails, phones and names are served as salted sha256 hashes.",
    "published_at": "When this copy was built (UTC).",
    "change_marker": "Hash of the table's served rows, columns and descriptions: a publish rewrites the table only "
    "when it moves.",
}
SNAPSHOTS_DESCRIPTION = {
    "": "Change markers of the dated tables per date (snapshot_date or run_date): a publish rewrites only the dates "
    "that moved.",
    "table_name": "Published table as schema.table.",
    "snapshot_date": "A date the table holds (its snapshot_date or run_date).",
    "row_count": "Rows of that date.",
    "change_marker": "Hash of that date's served rows, the table's columns and descriptions.",
}
# Bumped when the served form of a table changes for the same warehouse rows (forces one full rewrite).
SERVED_FORM_VERSION = 3
# How long a superseded Parquet version stays on disk for readers that still hold an older serving file (its views
# name that version's files); the version just before the current one stays regardless, unless an erasure publishes.
SUPERSEDED_KEPT_SECONDS = 24 * 3600
# Parquet dictionaries only for columns with few distinct values per row group: a high-cardinality column (ids,
# amounts) builds a dictionary and then throws it away. Measured at 1M: 10-20 % less CPU and 15-45 % smaller files than
# DuckDB's default limit (fct_orders 4.96 -> 4.02 CPU s, 63.7 -> 39.9 MB).
PARQUET_DICTIONARY_LIMIT = 1000
# zstd's fastest level: measured at 100k on the five largest served tables, 27 % less CPU than the default level (3)
# for 4 % larger files; the nightly publish rewrites most of its bytes, so the encoding is its largest cost.
PARQUET_ZSTD_LEVEL = 1
CONSENT_DESCRIPTION = (
    "Whether the customer agreed to marketing (from marts.customer_profile; no profile counts as no consent)."
)


class ServingConfigError(ValueError):
    """The serving options cannot be honoured (e.g. pseudonymisation without a salt)."""


@dataclass(frozen=True)
class ServingOptions:
    schemas: tuple[str, ...] = ("marts",)
    pseudonymise: bool = False
    salt: str | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ServingOptions:
        """Options from the `serving:` config section; the salt is the secret in the variable named by `salt_env`."""
        pseudonymise = bool(cfg.get("pseudonymise", False))
        salt_env = str(cfg.get("salt_env", "CDP_PSEUDONYM_SALT"))
        salt = secret(salt_env)
        if pseudonymise and salt is None:
            raise ServingConfigError(
                f"serving.pseudonymise is on but the salt variable {salt_env} is not set (or empty): export a long "
                f"random secret as {salt_env}, or set serving.pseudonymise: false in pipeline/config/cdp.yaml"
            )
        return cls(schemas=tuple(cfg.get("schemas", ("marts",))), pseudonymise=pseudonymise, salt=salt)


@dataclass
class PublishResult:
    serving_file: Path
    parquet_dir: Path
    tables: dict[str, int] = field(default_factory=dict)  # "schema.table" -> rows published
    pseudonymised: bool = False
    rewritten: list[str] = field(default_factory=list)  # tables written by this publish (the others were kept)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def serving_dir(data_dir: Path) -> Path:
    """Where the BI copy of a data directory lives."""
    return data_dir / "serving"


def is_identifier_column(name: str, dtype: str) -> bool:
    """A string column holding a direct identifier: email/phone-like names and personal names."""
    return dtype in STRING_TYPES and (name.lower() in NAME_COLUMNS or bool(_CONTACT_PATTERN.search(name.lower())))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _CatalogTable:
    """A warehouse table to publish as the catalog describes it, its model-state columns left out."""

    schema: str
    table: str
    description: str | None  # the table's comment (what dbt's persist_docs wrote)
    columns: list[tuple[str, str]]  # (name, type) of the served columns, in the table's order
    comments: dict[str, str]  # served column -> its comment


def _published_tables(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...]) -> list[_CatalogTable]:
    """The tables of `schemas` with their served columns and descriptions, from one read of the catalog's tables and
    one of its columns. A column named with MODEL_STATE_PREFIX is a model's bookkeeping (a watermark, the build that
    wrote the row) and is not served."""
    tables = con.execute(
        "select schema_name, table_name, comment from duckdb_tables() where database_name = current_database() "
        "and schema_name in (select unnest(?)) order by 1, 2",
        [list(schemas)],
    ).fetchall()
    columns: dict[tuple[str, str], list[tuple[str, str, str | None]]] = {}
    for schema, table, name, dtype, comment in con.execute(
        "select schema_name, table_name, column_name, data_type, comment from duckdb_columns() "
        "where database_name = current_database() and schema_name in (select unnest(?)) "
        "order by schema_name, table_name, column_index",
        [list(schemas)],
    ).fetchall():
        if not name.startswith(MODEL_STATE_PREFIX):
            columns.setdefault((schema, table), []).append((name, dtype, comment))
    return [
        _CatalogTable(
            schema,
            table,
            comment,
            [(name, dtype) for name, dtype, _ in columns.get((schema, table), [])],
            {name: text for name, _, text in columns.get((schema, table), []) if text is not None},
        )
        for schema, table, comment in tables
    ]


def _columns(con: duckdb.DuckDBPyConnection, database: str, qualified: str) -> list[tuple[str, str]]:
    """(name, type) of a table of the attached `database` ([] when it has no such table): DESCRIBE reads that one
    table's catalog entry, where duckdb_columns() would list every column of every attached database."""
    try:
        return con.execute(f"select column_name, column_type from (describe {database}.{qualified})").fetchall()
    except duckdb.CatalogException:
        return []


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _comment(
    con: duckdb.DuckDBPyConnection,
    target: str,
    table_comment: str | None,
    columns: Mapping[str, str],
    kind: str = "table",
) -> None:
    """COMMENT ON the published table (or view) and its columns (DuckDB binds no parameters in COMMENT: quoted)."""
    if table_comment:
        con.execute(f"comment on {kind} {target} is {_sql_string(table_comment)}")
    for column, text in columns.items():
        con.execute(f"comment on column {target}.{_quote(column)} is {_sql_string(text)}")


def _bi_type(name: str, dtype: str, expr: str) -> str:
    return f"cast({expr} as bigint) as {_quote(name)}" if dtype in BIGINT_TYPES else expr


def _write_parquet(
    con: duckdb.DuckDBPyConnection,
    source: str,
    path: Path,
    table_comment: str | None,
    columns: Mapping[str, str],
    params: Mapping[str, Any] | None = None,
) -> int:
    """`source` (a table or a parenthesised SELECT taking `params`) as one Parquet file whose schema carries the table
    and column descriptions; returns the rows written.

    DuckDB writes the file (in parallel, streaming); the descriptions travel as the file's `ARROW:schema` key, the
    Arrow schema that Arrow-based readers (pyarrow, pandas, Spark, polars) restore field metadata from, plus a plain
    `description` key for other readers."""
    import pyarrow as pa

    arrow = con.execute(f"select * from {source} limit 0", params or {}).to_arrow_reader().schema
    fields = [f.with_metadata({"description": columns[f.name]}) if columns.get(f.name) else f for f in arrow]
    schema = pa.schema(fields, metadata={"description": table_comment} if table_comment else None)
    encoded = base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")
    metadata = {"ARROW:schema": encoded, **({"description": table_comment} if table_comment else {})}
    # COPY options take no parameters: the values are quoted as SQL strings (the schema is base64).
    options = ", ".join(f"{_sql_string(k)}: {_sql_string(v)}" for k, v in metadata.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    return con.execute(
        f"copy (select * from {source}) to {_sql_string(str(path))} "
        f"(format parquet, compression zstd, compression_level {PARQUET_ZSTD_LEVEL}, "
        f"dictionary_size_limit {PARQUET_DICTIONARY_LIMIT}, "
        f"kv_metadata {{{options}}})",
        params or {},
    ).fetchone()[0]


def _bridge_tables(
    target: str, table: str, columns: list[tuple[str, str]], comments: Mapping[str, str]
) -> list[tuple[str, str, str, dict[str, str]]]:
    """(name, SELECT, table description, column descriptions) of a bridge table per list column of a served table:
    the table's key and one row per list element, for BI tools that cannot read list types."""
    names = [c for c, _ in columns]
    key = next((k for k in BRIDGE_KEYS if k in names), None)
    bridges = []
    for name, dtype in columns:
        if key is None or not dtype.endswith("[]"):
            continue
        select = f"select {_quote(key)}, unnest({_quote(name)}) as {_quote(name)} from {target}"
        described = {c: comments[c] for c in (key, name) if comments.get(c)}
        if name in described:
            described[name] = f"One element of {table}.{name}: {described[name]}"
        bridges.append(
            (f"{table}__{name}", select, f"{table}.{name} as rows: one per {key} and list element.", described)
        )
    return bridges


def published_select(
    schema: str,
    table: str,
    columns: list[tuple[str, str]],
    options: ServingOptions,
    consent_source: str | None,
    with_consent: bool = True,
) -> str:
    """The SELECT that turns one warehouse table into its served form (consent added, identifiers hashed).

    `consent_source` is the qualified profile table to take marketing_consent from (None: no profile exists,
    so nobody counts as consenting); `with_consent=False` leaves the consent out (a view adds it). The salt is the
    query's only parameter (`?`) when pseudonymising.
    """
    names = [c for c, _ in columns]
    exprs = []
    for name, dtype in columns:
        col = f"t.{_quote(name)}"
        # An identity report's (id_type, value) pairs hold emails and phones in `value`.
        identifier = is_identifier_column(name, dtype) or (
            name == "value" and "id_type" in names and dtype in STRING_TYPES
        )
        if options.pseudonymise and identifier:
            hashed = (
                f"sha256($salt || {col})" if dtype == "VARCHAR" else f"list_transform({col}, v -> sha256($salt || v))"
            )
            exprs.append(f"{hashed} as {_quote(name)}")
        else:
            exprs.append(_bi_type(name, dtype, col))
    source = f"{_quote(schema)}.{_quote(table)} as t"
    if with_consent and "customer_id" in names and "marketing_consent" not in names:
        if consent_source is None:
            exprs.append("false as marketing_consent")
        else:
            exprs.append("coalesce(p.marketing_consent, false) as marketing_consent")
            source += (
                f" left join (select customer_id, marketing_consent from {consent_source}) as p "
                "on p.customer_id = t.customer_id"
            )
    return f"select {', '.join(exprs)} from {source}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_leftovers(out_dir: Path) -> list[Path]:
    """Delete tmp files/dirs left by publishes whose process is gone (a killed run); returns what was removed."""
    removed = []
    for path in out_dir.glob("*.tmp-*"):
        found = _TMP_PID.search(path.name.removesuffix(".wal"))
        if found and (int(found.group(1)) == os.getpid() or not _pid_alive(int(found.group(1)))):
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            removed.append(path)
    return removed


def _prune_parquet_versions(out_dir: Path, keep: set[str], keep_superseded: bool = True) -> None:
    """Delete the version directories not in `keep`, except (with `keep_superseded`) those superseded less than
    SUPERSEDED_KEPT_SECONDS ago: a reader that opened an older serving file reads their files through its views."""
    versions = sorted(out_dir.glob(f"{PARQUET_LINK}-v*"), key=lambda v: _version_ns(v.name))
    now = time.time_ns()
    for version, successor in zip(versions, versions[1:] + [None], strict=True):
        if version.name in keep or not version.is_dir() or _TMP_PID.search(version.name):
            continue
        superseded_at = _version_ns(successor.name) if successor is not None else now
        if keep_superseded and now - superseded_at < SUPERSEDED_KEPT_SECONDS * 1e9:
            continue
        shutil.rmtree(version, ignore_errors=True)


def _version_ns(name: str) -> int:
    """When a version directory (`parquet-v<ns>`, or a hand-copied `parquet-v0-legacy`) was published."""
    digits = re.match(r"\d+", name.removeprefix(f"{PARQUET_LINK}-v"))
    return int(digits.group()) if digits else 0


def _swap_parquet_link(out_dir: Path, version_dir: Path) -> str | None:
    """Point `<out>/parquet` at the new version directory in one rename; returns the previous version's name."""
    link = out_dir / PARQUET_LINK
    previous = os.readlink(link) if link.is_symlink() else None
    if link.exists() and not link.is_symlink():
        # A plain directory (copied in by hand) cannot be renamed over: move it aside once.
        link.rename(out_dir / f"{PARQUET_LINK}-v0-legacy")
    tmp_link = out_dir / f"{PARQUET_LINK}.tmp-{os.getpid()}"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(version_dir.name)
    os.replace(tmp_link, link)
    return previous


def _parquet_file(root: Path, served: str, snapshot: str | None = None) -> Path:
    """Where a served table ("schema.name") lives under a Parquet version directory: one folder per table, one file
    per snapshot date for a dated table."""
    schema, name = served.split(".", 1)
    folder = name if schema == "marts" else served
    return root / folder / (f"{folder}-{snapshot}.parquet" if snapshot else f"{folder}.parquet")


def change_marker(
    con: duckdb.DuckDBPyConnection,
    select: str,
    params: Mapping[str, Any],
    description: str | None,
    comments: Mapping,
    date_column: str | None = None,
    consent: str | None = None,
) -> tuple[str, dict[str, tuple[str, int]]]:
    """What a served table is, as one hash: its served rows (summed row hashes, one scan, independent of row order
    and of parallelism), its columns (the SELECT) and its descriptions. A dated table (`date_column`) also gets one
    such hash per date, from the same scan: (table marker, {date: (marker, rows)}).

    `consent` (consent_marker) stands in for the profile's consent when `select` leaves the join out."""
    form = [SERVED_FORM_VERSION, select, description, sorted(comments.items()), consent]
    if date_column is None:
        rows, rows_hash = con.execute(
            f"select count(*), coalesce(sum(hash(s)), 0) from ({select}) as s", params
        ).fetchone()
        return hashlib.sha256(json.dumps([*form, rows, str(rows_hash)]).encode()).hexdigest(), {}
    per_date = con.execute(
        f"select cast(s.{_quote(date_column)} as varchar), count(*), sum(hash(s)) from ({select}) as s group by 1",
        params,
    ).fetchall()
    snapshots = {
        str(day): (hashlib.sha256(json.dumps([*form, str(day), rows, str(rows_hash)]).encode()).hexdigest(), rows)
        for day, rows, rows_hash in per_date
    }
    marker = hashlib.sha256(json.dumps([*form, sorted(snapshots.items())]).encode()).hexdigest()
    return marker, snapshots


def consent_marker(con: duckdb.DuckDBPyConnection, consent_source: str | None) -> str | None:
    """One hash of every customer's marketing consent (None without a profile): a table's marker includes it instead
    of hashing the table joined to the profile, which at 1M costs more than the hash itself (fct_orders 1.8 -> 0.7
    CPU s). The price: a consent change rewrites every undated table joined to the profile."""
    if consent_source is None:
        return None
    rows, rows_hash = con.execute(
        f"select count(*), coalesce(sum(hash(customer_id, marketing_consent)), 0) from {consent_source}"
    ).fetchone()
    return hashlib.sha256(json.dumps([rows, str(rows_hash)]).encode()).hexdigest()


def _previous_markers(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, tuple[str, int]]:
    """{served table: (change marker, rows)} of the copy attached as `database`; empty when it has no markers."""
    if ("change_marker", "VARCHAR") not in _columns(con, database, MANIFEST_TABLE):
        return {}
    rows = con.execute(f"select table_name, change_marker, row_count from {database}.{MANIFEST_TABLE}").fetchall()
    return {name: (marker, count) for name, marker, count in rows}


def _previous_snapshots(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, dict[str, str]]:
    """{served table: {snapshot date: change marker}} of the copy attached as `database`; empty without them."""
    if not _columns(con, database, SNAPSHOTS_TABLE):
        return {}
    rows = con.execute(f"select table_name, snapshot_date, change_marker from {database}.{SNAPSHOTS_TABLE}").fetchall()
    previous: dict[str, dict[str, str]] = {}
    for name, day, marker in rows:
        previous.setdefault(name, {})[day] = marker
    return previous


def _link_or_copy(source: Path, target: Path) -> None:
    """The unchanged Parquet file in the new version directory without rewriting it (a copy where links fail)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


@dataclass
class _ServedTable:
    """One warehouse table on its way to the serving copy."""

    schema: str
    table: str
    select: str  # its served form (published_select)
    params: Mapping[str, Any]  # the select's parameters (the salt when pseudonymising)
    description: str | None
    comments: dict[str, str]  # column -> description
    columns: list[tuple[str, str]]  # (name, type) in the warehouse
    marker: str  # change_marker of the served form
    date_column: str | None = None  # a dated table's date column (DATE_COLUMNS)
    consent_in_view: bool = False  # a dated table lacking marketing_consent: its view joins today's
    snapshots: dict[str, tuple[str, int]] = field(default_factory=dict)  # dated table: {date: (marker, rows)}
    kept: dict[str, int] | None = None  # {served table: rows} carried over unchanged from the last copy
    kept_dates: set[str] = field(default_factory=set)  # dated table: dates carried over unchanged from the last copy

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"


def _write_table(con: duckdb.DuckDBPyConnection, item: _ServedTable, parquet_root: Path) -> dict[str, int]:
    """Write the served table's Parquet file (and one per bridge table of a list column); returns {served: rows}."""
    if item.snapshots:
        return _write_dated_table(con, item, parquet_root)
    path = _parquet_file(parquet_root, item.name)
    rows = {item.name: _write_parquet(con, f"({item.select})", path, item.description, item.comments, item.params)}
    written = f"read_parquet({_sql_string(str(path))})"
    for bridge, bridge_select, description, comments in _bridge_tables(
        written, item.table, item.columns, item.comments
    ):
        name = f"{item.schema}.{bridge}"
        rows[name] = _write_parquet(con, f"({bridge_select})", _parquet_file(parquet_root, name), description, comments)
    return rows


def _served_parts(item: _ServedTable) -> list[tuple[str, str | None, dict[str, str]]]:
    """(served name, description, column descriptions) of the table and of its bridge tables."""
    bridges = _bridge_tables("", item.table, item.columns, item.comments)
    return [(item.name, item.description, item.comments)] + [
        (f"{item.schema}.{bridge}", description, comments) for bridge, _, description, comments in bridges
    ]


def _write_dated_table(con: duckdb.DuckDBPyConnection, item: _ServedTable, parquet_root: Path) -> dict[str, int]:
    """A dated table: each date not in `item.kept_dates` (their files are linked by the caller) is written as its own
    Parquet file."""
    day = f"cast({_quote(item.date_column)} as varchar)"
    for written_day in sorted(set(item.snapshots) - item.kept_dates):
        rows_of_day = f"(select * from ({item.select}) as s where {day} = {_sql_string(written_day)})"
        path = _parquet_file(parquet_root, item.name, written_day)
        _write_parquet(con, rows_of_day, path, item.description, item.comments, item.params)
    return {item.name: sum(rows for _, rows in item.snapshots.values())}


def _read_files(files: list[Path]) -> str:
    listed = ", ".join(_sql_string(str(f)) for f in sorted(files))
    return f"read_parquet([{listed}], hive_partitioning = false)"


def _create_view(
    con: duckdb.DuckDBPyConnection,
    name: str,
    files: list[Path],
    description: str | None,
    comments: Mapping,
    consent_files: list[Path] | None = None,
) -> None:
    """The served table in the serving file: a view over its Parquet files (absolute paths into the version
    directory, which outlives the copy that names it by SUPERSEDED_KEPT_SECONDS). With `consent_files` (the
    profile's Parquet files) the view adds each customer's marketing_consent from them."""
    schema, table = name.split(".", 1)
    con.execute(f"create schema if not exists serving_out.{_quote(schema)}")
    target = f"serving_out.{_quote(schema)}.{_quote(table)}"
    select = f"select * from {_read_files(files)}"
    if consent_files:
        select = (
            f"select t.*, coalesce(p.marketing_consent, false) as marketing_consent from {_read_files(files)} as t "
            f"left join (select customer_id, marketing_consent from {_read_files(consent_files)}) as p "
            "on p.customer_id = t.customer_id"
        )
    con.execute(f"create view {target} as {select}")
    _comment(con, target, description, comments, kind="view")


def _write_manifest(
    con: duckdb.DuckDBPyConnection,
    result: PublishResult,
    markers: Mapping[str, str],
    pseudonymised: bool,
    planned: list[_ServedTable],
) -> None:
    """The serving file's manifest (one row per served table) and the dated tables' markers per snapshot date."""
    con.execute(
        f"create table serving_out.{MANIFEST_TABLE} (table_name varchar, row_count bigint, "
        "pseudonymised boolean, published_at timestamp, change_marker varchar)"
    )
    con.execute(
        f"insert into serving_out.{MANIFEST_TABLE} select unnest(?), unnest(?), ?, "
        "current_timestamp::timestamp, unnest(?)",
        [list(result.tables), list(result.tables.values()), pseudonymised, [markers[t] for t in result.tables]],
    )
    _comment(
        con,
        f"serving_out.{MANIFEST_TABLE}",
        MANIFEST_DESCRIPTION[""],
        {k: v for k, v in MANIFEST_DESCRIPTION.items() if k},
    )
    snapshots = [(i.name, day, rows, m) for i in planned for day, (m, rows) in sorted(i.snapshots.items())]
    con.execute(
        f"create table serving_out.{SNAPSHOTS_TABLE} (table_name varchar, snapshot_date varchar, "
        "row_count bigint, change_marker varchar)"
    )
    con.execute(
        f"insert into serving_out.{SNAPSHOTS_TABLE} select unnest(?), unnest(?), unnest(?), unnest(?)",
        [list(column) for column in zip(*snapshots, strict=True)] if snapshots else [[], [], [], []],
    )
    _comment(
        con,
        f"serving_out.{SNAPSHOTS_TABLE}",
        SNAPSHOTS_DESCRIPTION[""],
        {k: v for k, v in SNAPSHOTS_DESCRIPTION.items() if k},
    )


def publish(
    warehouse: Path,
    out_dir: Path,
    options: ServingOptions = ServingOptions(),
    keep_previous_parquet: bool = True,
    *,
    memory_limit: str | None = None,
    temp_directory: Path | None = None,
) -> PublishResult:
    """Publish every table of `options.schemas` as Parquet files plus the serving file's views over them, then swap
    both in.

    Tables whose change marker did not move since the last publish keep their files (see the module docstring).
    `keep_previous_parquet` keeps the superseded version directories for readers still using them; erasure turns it
    off so that no copy of an erased person survives, which also makes this publish build everything afresh.
    `memory_limit` / `temp_directory` bound the reading connection like every warehouse connection.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_leftovers(out_dir)
    pid = os.getpid()
    final_file = out_dir / SERVING_FILE
    tmp_file = out_dir / f"{SERVING_FILE}.tmp-{pid}"
    version_dir = out_dir / f"{PARQUET_LINK}-v{time.time_ns()}"
    tmp_version_dir = out_dir / f"{version_dir.name}.tmp-{pid}"
    link = out_dir / PARQUET_LINK
    previous_dir = link.resolve() if link.is_symlink() else None
    incremental = keep_previous_parquet and final_file.exists() and previous_dir is not None and previous_dir.is_dir()
    result = PublishResult(
        serving_file=final_file, parquet_dir=out_dir / PARQUET_LINK, pseudonymised=options.pseudonymise
    )
    params = {"salt": options.salt} if options.pseudonymise else {}
    swapped = False
    try:
        tmp_version_dir.mkdir()
        with connect(warehouse, read_only=True, memory_limit=memory_limit, temp_directory=temp_directory) as con:
            con.execute(f"attach {_sql_string(str(tmp_file))} as serving_out (read_write)")
            previous, previous_snapshots = {}, {}
            if incremental:
                con.execute(f"attach {_sql_string(str(final_file))} as serving_last (read_only)")
                previous = _previous_markers(con, "serving_last")
                previous_snapshots = _previous_snapshots(con, "serving_last")
                con.execute("detach serving_last")
            tables = _published_tables(con, options.schemas)
            has_profile = any((t.schema, t.table) == ("marts", "customer_profile") for t in tables)
            consent_source = '"marts"."customer_profile"' if has_profile else None
            consent = consent_marker(con, consent_source)
            planned = []
            for catalog in tables:
                schema, table, columns = catalog.schema, catalog.table, catalog.columns
                select = published_select(schema, table, columns, options, consent_source)
                select_params = params if "$salt" in select else {}
                description, comments = catalog.description, dict(catalog.comments)
                if "marketing_consent" in select and "marketing_consent" not in comments:
                    comments["marketing_consent"] = CONSENT_DESCRIPTION
                # Dated: a history or log table without list columns (those get bridge tables, written whole).
                names = dict(columns)
                date_column = next((c for c in DATE_COLUMNS if c in names), None)
                if any(t.endswith("[]") for _, t in columns):
                    date_column = None
                # Undated tables hash their rows without the consent join (the consent marker stands for it). A dated
                # one is written without it, its view joining today's consent: a consent change (every night has
                # some) would otherwise rewrite every date of the history.
                unjoined = published_select(schema, table, columns, options, None)
                consent_in_view = bool(date_column) and unjoined != select
                if consent_in_view:
                    select = published_select(schema, table, columns, options, None, with_consent=False)
                if date_column or unjoined == select:
                    marker, snapshots = change_marker(con, select, select_params, description, comments, date_column)
                else:
                    marker, snapshots = change_marker(
                        con, unjoined, select_params, description, comments, None, consent
                    )
                item = _ServedTable(
                    schema,
                    table,
                    select,
                    select_params,
                    description,
                    comments,
                    columns,
                    marker,
                    date_column,
                    consent_in_view,
                    snapshots,
                )
                # A table and its bridge tables carry the table's marker in the manifest.
                kept = {name: rows for name, (was, rows) in previous.items() if was == marker}
                files = [(item.name, day) for day in snapshots] or [(name, None) for name in kept]
                if item.name in kept and all(_parquet_file(previous_dir, *file).is_file() for file in files):
                    item.kept = kept
                elif item.name in previous:  # a dated table keeps the dates whose marker did not move
                    before = previous_snapshots.get(item.name, {})
                    item.kept_dates = {
                        day
                        for day, (was, _) in snapshots.items()
                        if before.get(day) == was and _parquet_file(previous_dir, item.name, day).is_file()
                    }
                planned.append(item)
            markers = {}
            for item in planned:
                # Unchanged Parquet files: a kept table's file (a dated table's every date), a dated table's kept dates.
                unchanged = [(name, None) for name in item.kept or {} if not item.snapshots]
                unchanged += [(item.name, day) for day in (item.snapshots if item.kept else item.kept_dates)]
                for name, day in unchanged:
                    _link_or_copy(_parquet_file(previous_dir, name, day), _parquet_file(tmp_version_dir, name, day))
                if item.kept:
                    published = item.kept
                else:
                    published = _write_table(con, item, tmp_version_dir)
                    result.rewritten += list(published)
                result.tables.update(published)
                markers.update(dict.fromkeys(published, item.marker))
            # The files get their final names before the views that name them are created (a view reads its
            # columns when created); readers find this version only once the link below moves to it.
            tmp_version_dir.rename(version_dir)
            profile_files = list(_parquet_file(version_dir, "marts.customer_profile").parent.glob("*.parquet"))
            for item in planned:
                for name, description, comments in _served_parts(item):
                    files = list(_parquet_file(version_dir, name).parent.glob("*.parquet"))
                    consent_files = profile_files if item.consent_in_view else None
                    _create_view(con, name, files, description, comments, consent_files)
            _write_manifest(con, result, markers, options.pseudonymise, planned)
            con.execute("checkpoint serving_out")
            con.execute("detach serving_out")
        # Read-only on disk too: BI tools must not write to it (the next publish replaces it anyway).
        tmp_file.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(tmp_file, final_file)
        swapped = True  # the serving file in place names this version's files: they stay whatever happens next
        previous_version = _swap_parquet_link(out_dir, version_dir)
    except BaseException:
        tmp_file.unlink(missing_ok=True)
        Path(f"{tmp_file}.wal").unlink(missing_ok=True)
        shutil.rmtree(tmp_version_dir, ignore_errors=True)
        if not swapped:
            shutil.rmtree(version_dir, ignore_errors=True)
        raise
    kept_versions = {previous_version} if previous_version and keep_previous_parquet else set()
    _prune_parquet_versions(out_dir, {version_dir.name} | kept_versions, keep_superseded=keep_previous_parquet)
    return result
