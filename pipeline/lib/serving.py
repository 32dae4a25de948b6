"""Publishing the marts to BI tools: a read-only serving DuckDB file plus Parquet files, swapped in atomically.

BI tools must never see a half-built table and must never hold the warehouse's write lock, so they read a separate
copy. `publish()` builds that copy aside (`<serving>/cdp.duckdb.tmp-<pid>`, then Parquet files in a new version
directory), and only when everything is written swaps it in: `os.replace` of the DuckDB file (a rename, atomic on
POSIX) and `os.replace` of the `parquet` symlink onto the new version directory. A client that still has the old
file open keeps reading the old inode (a consistent snapshot) until it reconnects. A publish that fails or is killed
leaves the last good copy in place; its leftovers (tmp files of dead processes) are removed by the next publish.

A publish rewrites only what changed: every served table carries a change marker in the manifest (a hash of its
served rows, taken in one scan, plus its column list and descriptions). The new copy starts as a file copy of the
last one, rewrites the tables whose marker moved and drops the ones that left; Parquet files of unchanged tables are
hard links into the new version directory. A dated history table (a `snapshot_date` column, the one history
mechanism) has a marker per snapshot date and one Parquet file per date: a nightly run adds one date, so a publish
inserts that date's rows into the copy and writes that date's file, whatever the length of the history. An erasure
(`keep_previous_parquet=False`) builds everything afresh, so no freed block of the old copy survives.

Made for BI clients: every table and column keeps the description dbt documented (table and column comments in the
DuckDB file, field and schema metadata `description` in the Parquet files); each table is one folder
`parquet/<table>/` (so `read_parquet(folder)` never glues tables together); unsigned and 128-bit integers are served as
BIGINT; every list column also gets a bridge table `<table>__<column>` (the table's key, one row per element).

Privacy on the way out:
  * every published table that holds `customer_id` carries `marketing_consent` (joined from marts.customer_profile
    when the table lacks it; customers without a profile row count as not consenting);
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
# Change markers of the dated tables per snapshot date (the history tables' date column).
SNAPSHOTS_TABLE = "main.serving_snapshots"
SNAPSHOT_COLUMN = "snapshot_date"
# Direct identifiers besides every column whose name mentions email or phone.
NAME_COLUMNS = frozenset({"full_name", "first_name", "last_name", "requester_name", "customer_name"})
_CONTACT_PATTERN = re.compile(r"email|phone")
_TMP_PID = re.compile(r"\.tmp-(\d+)$")
STRING_TYPES = ("VARCHAR", "VARCHAR[]")
# Integer types many BI drivers cannot map (ODBC/JDBC/Arrow consumers): served as BIGINT.
BIGINT_TYPES = frozenset({"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "HUGEINT", "UHUGEINT"})
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
    "": "Change markers of the dated history tables per snapshot date: a publish rewrites only the dates that moved.",
    "table_name": "Published table as schema.table.",
    "snapshot_date": "A snapshot date the table holds.",
    "row_count": "Rows of that date.",
    "change_marker": "Hash of that date's served rows, the table's columns and descriptions.",
}
# Bumped when the served form of a table changes for the same warehouse rows (forces one full rewrite).
SERVED_FORM_VERSION = 1
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


def _published_tables(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...]) -> list[tuple[str, str]]:
    return con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = current_database() "
        "and schema_name in (select unnest(?)) order by 1, 2",
        [list(schemas)],
    ).fetchall()


def _columns(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, database: str | None = None
) -> list[tuple[str, str]]:
    return con.execute(
        "select column_name, data_type from duckdb_columns() where database_name = coalesce(?, current_database()) "
        "and schema_name = ? and table_name = ? order by column_index",
        [database, schema, table],
    ).fetchall()


def _descriptions(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> tuple[str | None, dict[str, str]]:
    """The table's comment and {column: comment} in the warehouse (what dbt's persist_docs wrote)."""
    table_comment = con.execute(
        "select comment from duckdb_tables() where database_name = current_database() and schema_name = ? "
        "and table_name = ?",
        [schema, table],
    ).fetchone()
    columns = dict(
        con.execute(
            "select column_name, comment from duckdb_columns() where database_name = current_database() "
            "and schema_name = ? and table_name = ? and comment is not null",
            [schema, table],
        ).fetchall()
    )
    return (table_comment[0] if table_comment else None), columns


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _comment(
    con: duckdb.DuckDBPyConnection, target: str, table_comment: str | None, columns: Mapping[str, str]
) -> None:
    """COMMENT ON the published table and its columns (DuckDB binds no parameters in COMMENT, so quote here)."""
    if table_comment:
        con.execute(f"comment on table {target} is {_sql_string(table_comment)}")
    for column, text in columns.items():
        con.execute(f"comment on column {target}.{_quote(column)} is {_sql_string(text)}")


def _bi_type(name: str, dtype: str, expr: str) -> str:
    return f"cast({expr} as bigint) as {_quote(name)}" if dtype in BIGINT_TYPES else expr


def _write_parquet(
    con: duckdb.DuckDBPyConnection, target: str, path: Path, table_comment: str | None, columns: Mapping[str, str]
) -> None:
    """The table as one Parquet file whose schema carries the table and column descriptions.

    DuckDB writes the file (in parallel, streaming); the descriptions travel as the file's `ARROW:schema` key, the
    Arrow schema that Arrow-based readers (pyarrow, pandas, Spark, polars) restore field metadata from, plus a plain
    `description` key for other readers."""
    import pyarrow as pa

    arrow = con.execute(f"select * from {target} limit 0").to_arrow_reader().schema
    fields = [f.with_metadata({"description": columns[f.name]}) if columns.get(f.name) else f for f in arrow]
    schema = pa.schema(fields, metadata={"description": table_comment} if table_comment else None)
    encoded = base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")
    metadata = {"ARROW:schema": encoded, **({"description": table_comment} if table_comment else {})}
    # COPY options take no parameters: the values are quoted as SQL strings (the schema is base64).
    options = ", ".join(f"{_sql_string(k)}: {_sql_string(v)}" for k, v in metadata.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"copy (select * from {target}) to {_sql_string(str(path))} "
        f"(format parquet, compression zstd, kv_metadata {{{options}}})"
    )


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
    schema: str, table: str, columns: list[tuple[str, str]], options: ServingOptions, consent_source: str | None
) -> str:
    """The SELECT that turns one warehouse table into its served form (consent added, identifiers hashed).

    `consent_source` is the qualified profile table to take marketing_consent from (None: no profile exists,
    so nobody counts as consenting). The salt is the query's only parameter (`?`) when pseudonymising.
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
    if "customer_id" in names and "marketing_consent" not in names:
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


def _prune_parquet_versions(out_dir: Path, keep: set[str]) -> None:
    for version in out_dir.glob(f"{PARQUET_LINK}-v*"):
        if version.name not in keep and version.is_dir():
            shutil.rmtree(version, ignore_errors=True)


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
    dated: bool = False,
) -> tuple[str, dict[str, tuple[str, int]]]:
    """What a served table is, as one hash: its served rows (summed row hashes, one scan, independent of row order
    and of parallelism), its columns (the SELECT) and its descriptions. A dated table also gets one such hash per
    snapshot date, from the same scan: (table marker, {snapshot date: (marker, rows)})."""
    form = [SERVED_FORM_VERSION, select, description, sorted(comments.items())]
    if not dated:
        rows, rows_hash = con.execute(
            f"select count(*), coalesce(sum(hash(s)), 0) from ({select}) as s", params
        ).fetchone()
        return hashlib.sha256(json.dumps([*form, rows, str(rows_hash)]).encode()).hexdigest(), {}
    per_date = con.execute(
        f"select cast(s.{SNAPSHOT_COLUMN} as varchar), count(*), sum(hash(s)) from ({select}) as s group by 1", params
    ).fetchall()
    snapshots = {
        str(day): (hashlib.sha256(json.dumps([*form, str(day), rows, str(rows_hash)]).encode()).hexdigest(), rows)
        for day, rows, rows_hash in per_date
    }
    marker = hashlib.sha256(json.dumps([*form, sorted(snapshots.items())]).encode()).hexdigest()
    return marker, snapshots


def _previous_markers(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, tuple[str, int]]:
    """{served table: (change marker, rows)} of the copy attached as `database`; empty when it has no markers."""
    schema, table = MANIFEST_TABLE.split(".")
    if ("change_marker", "VARCHAR") not in _columns(con, schema, table, database=database):
        return {}
    rows = con.execute(f"select table_name, change_marker, row_count from {database}.{MANIFEST_TABLE}").fetchall()
    return {name: (marker, count) for name, marker, count in rows}


def _previous_snapshots(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, dict[str, str]]:
    """{served table: {snapshot date: change marker}} of the copy attached as `database`; empty without them."""
    schema, table = SNAPSHOTS_TABLE.split(".")
    if not _columns(con, schema, table, database=database):
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
    marker: str  # change_marker of the served form
    snapshots: dict[str, tuple[str, int]] = field(default_factory=dict)  # dated table: {date: (marker, rows)}
    kept: dict[str, int] | None = None  # {served table: rows} carried over unchanged from the last copy
    kept_dates: set[str] = field(default_factory=set)  # dated table: dates carried over unchanged from the last copy

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"


def _write_table(con: duckdb.DuckDBPyConnection, item: _ServedTable, parquet_root: Path) -> dict[str, int]:
    """Create the served table (and a bridge table per list column) in the attached copy and write its Parquet
    files; returns {served table: rows}."""
    schema, table = item.schema, item.table
    con.execute(f"create schema if not exists serving_out.{_quote(schema)}")
    target = f"serving_out.{_quote(schema)}.{_quote(table)}"
    if item.snapshots:
        return _write_dated_table(con, item, target, parquet_root)
    con.execute(f"create table {target} as {item.select}", item.params)
    _comment(con, target, item.description, item.comments)
    served = [(table, target, item.description, item.comments)]
    served_columns = _columns(con, schema, table, database="serving_out")
    for bridge, bridge_select, description, comments in _bridge_tables(target, table, served_columns, item.comments):
        bridge_target = f"serving_out.{_quote(schema)}.{_quote(bridge)}"
        con.execute(f"create table {bridge_target} as {bridge_select}")
        _comment(con, bridge_target, description, comments)
        served.append((bridge, bridge_target, description, comments))
    rows = {}
    for name, served_target, description, comments in served:
        rows[f"{schema}.{name}"] = con.execute(f"select count(*) from {served_target}").fetchone()[0]
        _write_parquet(con, served_target, _parquet_file(parquet_root, f"{schema}.{name}"), description, comments)
    return rows


def _write_dated_table(
    con: duckdb.DuckDBPyConnection, item: _ServedTable, target: str, parquet_root: Path
) -> dict[str, int]:
    """A dated table: the snapshot dates not in `item.kept_dates` (kept in the copy, their Parquet files linked by the
    caller) are deleted from the copy, the current ones inserted, and each written as its own Parquet file."""
    written = sorted(set(item.snapshots) - item.kept_dates)
    day = f"cast({_quote(SNAPSHOT_COLUMN)} as varchar)"
    select = f"select * from ({item.select}) as s where {day} in (select unnest($days))"
    if item.kept_dates:
        con.execute(
            f"delete from {target} where {day} not in (select unnest($days))",
            {"days": sorted(item.kept_dates)},
        )
        if written:
            con.execute(f"insert into {target} {select}", {**item.params, "days": written})
    else:
        con.execute(f"create table {target} as {select}", {**item.params, "days": written})
        _comment(con, target, item.description, item.comments)
    for written_day in written:
        rows_of_day = f"(select * from {target} where {day} = {_sql_string(written_day)})"
        path = _parquet_file(parquet_root, item.name, written_day)
        _write_parquet(con, rows_of_day, path, item.description, item.comments)
    return {item.name: sum(rows for _, rows in item.snapshots.values())}


def publish(
    warehouse: Path,
    out_dir: Path,
    options: ServingOptions = ServingOptions(),
    keep_previous_parquet: bool = True,
    *,
    memory_limit: str | None = None,
    temp_directory: Path | None = None,
) -> PublishResult:
    """Publish every table of `options.schemas` to the serving file and Parquet files, then swap both in.

    Tables whose change marker did not move since the last publish are kept as they are (see the module docstring).
    `keep_previous_parquet` keeps the last version directory for readers still scanning it; erasure turns it off so
    that no copy of an erased person survives, which also makes this publish build everything afresh.
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
    try:
        tmp_version_dir.mkdir()
        if incremental:  # start from the last copy: unchanged tables are not rewritten
            shutil.copyfile(final_file, tmp_file)
            tmp_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
        with connect(warehouse, read_only=True, memory_limit=memory_limit, temp_directory=temp_directory) as con:
            con.execute(f"attach {_sql_string(str(tmp_file))} as serving_out (read_write)")
            previous = _previous_markers(con, "serving_out") if incremental else {}
            previous_snapshots = _previous_snapshots(con, "serving_out") if incremental else {}
            tables = _published_tables(con, options.schemas)
            consent_source = '"marts"."customer_profile"' if ("marts", "customer_profile") in tables else None
            planned = []
            for schema, table in tables:
                columns = _columns(con, schema, table)
                select = published_select(schema, table, columns, options, consent_source)
                select_params = params if "$salt" in select else {}
                description, comments = _descriptions(con, schema, table)
                if "marketing_consent" in select and "marketing_consent" not in comments:
                    comments["marketing_consent"] = CONSENT_DESCRIPTION
                # Dated: a history table without list columns (those get bridge tables, written whole).
                dated = SNAPSHOT_COLUMN in dict(columns) and not any(t.endswith("[]") for _, t in columns)
                marker, snapshots = change_marker(con, select, select_params, description, comments, dated)
                item = _ServedTable(schema, table, select, select_params, description, comments, marker, snapshots)
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
            keep = {name for item in planned for name in item.kept or ({item.name} if item.kept_dates else {})}
            for schema, table in con.execute(
                "select schema_name, table_name from duckdb_tables() where database_name = 'serving_out'"
            ).fetchall():
                if f"{schema}.{table}" not in keep:
                    con.execute(f"drop table serving_out.{_quote(schema)}.{_quote(table)}")
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
            con.execute(
                f"create table serving_out.{MANIFEST_TABLE} (table_name varchar, row_count bigint, "
                "pseudonymised boolean, published_at timestamp, change_marker varchar)"
            )
            con.execute(
                f"insert into serving_out.{MANIFEST_TABLE} select unnest(?), unnest(?), ?, "
                "current_timestamp::timestamp, unnest(?)",
                [list(result.tables), list(result.tables.values()), options.pseudonymise, list(markers.values())],
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
            con.execute("checkpoint serving_out")
            con.execute("detach serving_out")
        # Read-only on disk too: BI tools must not write to it (the next publish replaces it anyway).
        tmp_file.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        tmp_version_dir.rename(version_dir)
        os.replace(tmp_file, final_file)
        previous_version = _swap_parquet_link(out_dir, version_dir)
    except BaseException:
        tmp_file.unlink(missing_ok=True)
        Path(f"{tmp_file}.wal").unlink(missing_ok=True)
        shutil.rmtree(tmp_version_dir, ignore_errors=True)
        raise
    kept_versions = {previous_version} if previous_version and keep_previous_parquet else set()
    _prune_parquet_versions(out_dir, {version_dir.name} | kept_versions)
    return result
