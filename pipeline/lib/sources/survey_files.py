"""Survey exports (CSV, JSONL or Parquet) from a folder, a glob, or object storage, each file loaded once.

Location: a local folder (all its *.csv / *.jsonl / *.json / *.ndjson / *.parquet files), a local glob, or an
`s3://bucket/prefix/*.csv`-style URL. Remote URLs go through DuckDB's httpfs extension, loaded from the
`duckdb-extension-httpfs` PyPI package (DuckDB cannot download extensions here); S3 keys come from environment
variables named in the config and live only in a temporary DuckDB secret.

Listing and hashing are set-wise in DuckDB (`read_blob` gives name, size and modification time without reading
content; content is read only to hash files not seen before). The manifest `raw._loaded_files` (source, path, size,
mtime, sha256, first_date, last_date, loaded_at) records every loaded file: a file is new unless its content hash
was loaded before (an unchanged file, or the same export copied under another name). Parsing is
`pipeline.lib.ingest.stage_survey_files`, as for the demo. Because `ingest.land` replaces whole partition days,
already-loaded files whose dates overlap the new files' days are staged again alongside them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from pipeline.lib import ingest
from pipeline.lib.duckdb_extensions import load_extension
from pipeline.lib.environment import REPO_ROOT, resolve_secret
from pipeline.lib.warehouse import quote_literal, table_exists

MANIFEST = "raw._loaded_files"
PARTIAL_FILES = "raw._partial_files"  # exports read while still being written: their day is read again later
EXTENSIONS = (".csv", ".jsonl", ".json", ".ndjson", ".parquet")
_REMOTE = re.compile(r"^(s3|s3a|gcs|gs|r2|https?)://")


@dataclass(frozen=True)
class SurveySource:
    name: str
    location: str
    s3: Mapping[str, str] = field(default_factory=dict, repr=False)  # region, endpoint, key_id, secret, url_style

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any]) -> SurveySource:
        location = str(cfg["location"])  # `{data_dir}` is expanded by the settings
        if not _REMOTE.match(location) and not Path(location).is_absolute():
            location = str(REPO_ROOT / location)
        s3 = {key: str(resolve_secret(value)) for key, value in (cfg.get("s3") or {}).items() if value is not None}
        return cls(name=name, location=location, s3=s3)

    @property
    def remote(self) -> bool:
        return bool(_REMOTE.match(self.location))

    def pattern(self) -> str:
        if not self.remote and Path(self.location).is_dir():
            return str(Path(self.location) / "*")
        return self.location


@dataclass
class FileInfo:
    path: str
    size: int
    mtime: Any
    sha256: str | None = None


def _option(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not a valid option or source name: {name!r}")
    return name


def prepare(con: duckdb.DuckDBPyConnection, source: SurveySource) -> None:
    """Load httpfs and register the S3 credentials for remote locations."""
    if not source.remote:
        return
    load_extension(con, "httpfs")
    if source.s3:
        # CREATE SECRET takes no parameters: keys are validated names, values quoted literals (from the config).
        options = ", ".join(f"{_option(key)} {quote_literal(value)}" for key, value in source.s3.items())
        con.execute(f"create or replace temporary secret {_option('survey_' + source.name)}_s3 (type s3, {options})")


def list_files(con: duckdb.DuckDBPyConnection, source: SurveySource) -> list[FileInfo]:
    """Export files at the location with size and modification time (no content read)."""
    prepare(con, source)
    try:
        rows = con.execute(
            "select filename, size, last_modified from read_blob(?) "
            "where list_contains(?, lower(regexp_extract(filename, '\\.[A-Za-z]+$'))) order by filename",
            [source.pattern(), list(EXTENSIONS)],
        ).fetchall()
    except duckdb.IOException as exc:
        if "No files found" in str(exc):
            return []
        raise
    return [FileInfo(*row) for row in rows]


def _ensure_manifest(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists raw")
    con.execute(
        f"create table if not exists {MANIFEST} (source varchar, path varchar, size bigint, mtime timestamptz, "
        "sha256 varchar, first_date date, last_date date, loaded_at timestamp)"
    )


def new_files(con: duckdb.DuckDBPyConnection, source: SurveySource) -> list[FileInfo]:
    """Files not loaded before: unknown (path, size, mtime) and, among those, an unknown content hash."""
    listed = list_files(con, source)
    if not listed:
        return []
    con.execute("create or replace temp table _listed_files (path varchar, size bigint, mtime timestamptz)")
    con.executemany("insert into _listed_files values (?, ?, ?)", [(f.path, f.size, f.mtime) for f in listed])
    known = f"(select * from {MANIFEST} where source = $source)" if table_exists(con, MANIFEST) else None
    candidates = [
        r[0]
        for r in con.execute(
            "select path from _listed_files l"
            + (
                f" where not exists (select 1 from {known} m where m.path = l.path and m.size = l.size "
                "and m.mtime = l.mtime)"
                if known
                else ""
            ),
            {"source": source.name} if known else {},
        ).fetchall()
    ]
    if not candidates:
        return []
    hashed = con.execute(
        "select filename, size, last_modified, sha256(content) from read_blob($paths)"
        + (f" where sha256(content) not in (select sha256 from {known})" if known else "")
        + " order by filename",
        {"paths": candidates, **({"source": source.name} if known else {})},
    ).fetchall()
    return [FileInfo(*row) for row in hashed]


@dataclass
class Extract:
    relation: str  # staged view for ingest.land(SURVEY_RESPONSES, …)
    files: list[FileInfo]  # the new complete files (record them with `record_loaded` after landing)
    staged_paths: list[str]  # new files plus already-loaded files sharing their days
    rows: int
    window: tuple[date, date] | None
    file_dates: dict[str, tuple[date | None, date | None]]


def file_dates(con: duckdb.DuckDBPyConnection, paths: list[str]) -> dict[str, tuple[date | None, date | None]]:
    """First and last partition date per file: the date in its name, else its rows' submitted_at.

    Naive submitted_at values are read in the session time zone (`ingest.prepare_session`)."""
    found = {path: (ingest.file_date(path), ingest.file_date(path)) for path in paths}
    undated = [path for path, (first, _) in found.items() if first is None]
    if undated:
        with ingest.export_files(undated) as (files, _):
            relation = ingest.stage_survey_files(con, files)
            day = f"cast({ingest.TYPING['timestamp'].format(c='submitted_at')} as date)"
            found.update(
                {
                    path: (first, last)
                    for path, first, last in con.execute(
                        f"select _file, min({day}), max({day}) from {relation} group by 1"
                    ).fetchall()
                }
            )
    return found


def extract(con: duckdb.DuckDBPyConnection, source: SurveySource) -> Extract:
    """Stage the new files (and loaded files overlapping their days) as `_staged_survey` for `ingest.land`."""
    fresh = new_files(con, source)
    if not fresh:
        return Extract("", [], [], 0, None, {})
    paths = [f.path for f in fresh]
    dates_of = file_dates(con, paths)
    dates = [d for pair in dates_of.values() for d in pair if d is not None]
    staged = list(paths)
    if dates and table_exists(con, MANIFEST):
        overlap = con.execute(
            f"select distinct path from {MANIFEST} where source = ? and last_date >= ? and first_date <= ?",
            [source.name, min(dates), max(dates)],
        ).fetchall()
        staged += sorted({r[0] for r in overlap} - set(paths))
    with ingest.export_files(staged) as (files, _):
        relation = ingest.stage_survey_files(con, files)  # a temp table: outlives the re-encoded copies
    # A file still being written is not recorded as loaded: its next version is new and read again, whole.
    partial = {f.path for f in files if f.partial_line is not None}
    rows = con.execute(f"select count(*) from {relation}").fetchone()[0]
    window = (min(dates), date.fromordinal(max(dates).toordinal() + 1)) if dates else None
    return Extract(relation, [f for f in fresh if f.path not in partial], staged, rows, window, dates_of)


def record_loaded(con: duckdb.DuckDBPyConnection, source: SurveySource, item: Extract) -> None:
    """Add the extract's new files to the manifest (after they were landed)."""
    if not item.files:
        return
    _ensure_manifest(con)
    con.executemany(
        f"insert into {MANIFEST} values (?, ?, ?, ?, ?, ?, ?, now()::timestamp)",
        [
            (source.name, f.path, f.size, f.mtime, f.sha256, *item.file_dates.get(f.path, (None, None)))
            for f in item.files
        ],
    )


def earliest_partial_day(con: duckdb.DuckDBPyConnection, source: str) -> date | None:
    """The first day of an export of `source` that was still being written when last read (None: there is none)."""
    if not table_exists(con, PARTIAL_FILES):
        return None
    return con.execute(f"select min(file_date) from {PARTIAL_FILES} where source = ?", [source]).fetchone()[0]


def record_partial_files(
    con: duckdb.DuckDBPyConnection, source: str, window: tuple[date, date], files: list[ingest.ExportFile]
) -> None:
    """Remember the exports of the window read with an incomplete last line (and forget those now complete)."""
    con.execute(f"create table if not exists {PARTIAL_FILES} (source varchar, path varchar, file_date date)")
    con.execute(
        f"delete from {PARTIAL_FILES} where source = ? and (file_date is null or file_date >= ? and file_date < ?)",
        [source, *window],
    )
    partial = [(source, f.path, ingest.file_date(f.path)) for f in files if f.partial_line is not None]
    if partial:
        con.executemany(f"insert into {PARTIAL_FILES} values (?, ?, ?)", partial)
