"""Survey export files (CSV/JSONL/Parquet) from a real folder into a real DuckDB file, plus the Dagster sensor."""

from __future__ import annotations

import json
import os

import dagster as dg
import duckdb
import polars as pl
import pytest

from pipeline.lib import ingest
from pipeline.lib.sources import survey_files


def _responses(prefix: str, day: str, n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "response_id": [f"{prefix}{i}" for i in range(n)],
            "submitted_at": [f"{day}T{10 + i % 10:02d}:00:00" for i in range(n)],
            "survey": ["nps"] * n,
            "score": [str(i % 11) for i in range(n)],
            "comment": ["ok"] * n,
            "email": [f"{prefix}{i}@mail.id" for i in range(n)],
            "phone": [None] * n,
            "order_ref": [None] * n,
            "consent": [True] * n,
        }
    )


def _pull(con, source):
    ingest.prepare_session(con, "Asia/Jakarta")  # the demo shop's time zone
    item = survey_files.extract(con, source)
    if item.window:
        ingest.land(con, ingest.SURVEY_RESPONSES, item.relation, item.window, source.name)
    survey_files.record_loaded(con, source, item)
    return item


@pytest.fixture()
def folder(tmp_path):
    exports = tmp_path / "survey"
    exports.mkdir()
    _responses("A", "2025-04-01", 5).write_csv(exports / "responses-2025-04-01.csv")
    _responses("B", "2025-04-02", 4).write_ndjson(exports / "responses-2025-04-02.jsonl")
    _responses("C", "2025-04-03", 3).write_parquet(exports / "responses-2025-04-03.parquet")
    (exports / "README.txt").write_text("not an export")
    return exports


def test_mixed_formats_loaded_once_and_new_file_picked_up(folder, tmp_path):
    source = survey_files.SurveySource.from_config("survey", {"location": str(folder)})
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    first = _pull(con, source)
    assert sorted(os.path.basename(f.path) for f in first.files) == [
        "responses-2025-04-01.csv",
        "responses-2025-04-02.jsonl",
        "responses-2025-04-03.parquet",
    ]
    assert first.window == (ingest.date(2025, 4, 1), ingest.date(2025, 4, 4))
    assert con.execute("select count(*) from raw.survey_responses").fetchone()[0] == 12
    manifest = con.execute("select count(*), count(distinct sha256), min(size) > 0 from raw._loaded_files").fetchone()
    assert manifest == (3, 3, True)

    second = _pull(con, source)
    assert second.files == [] and second.rows == 0
    # The same export copied under a new name is recognised by its content hash.
    (folder / "copy-of-responses-2025-04-01.csv").write_bytes((folder / "responses-2025-04-01.csv").read_bytes())
    assert survey_files.new_files(con, source) == []

    # A new day, and a second export for an already-loaded day: that day is re-staged whole, nothing doubled.
    _responses("D", "2025-04-05", 2).write_csv(folder / "responses-2025-04-05.csv")
    _responses("E", "2025-04-02", 3).write_parquet(folder / "late-responses-2025-04-02.parquet")
    third = _pull(con, source)
    assert sorted(os.path.basename(f.path) for f in third.files) == [
        "late-responses-2025-04-02.parquet",
        "responses-2025-04-05.csv",
    ]
    assert any(p.endswith("responses-2025-04-02.jsonl") for p in third.staged_paths)
    counts = dict(
        con.execute("select _partition_date::varchar, count(*) from raw.survey_responses group by 1").fetchall()
    )
    assert counts == {"2025-04-01": 5, "2025-04-02": 7, "2025-04-03": 3, "2025-04-05": 2}
    assert con.execute("select count(*) from raw._loaded_files").fetchone()[0] == 5


def test_survey_files_sensor_requests_partitions_of_new_files(folder, tmp_path, monkeypatch):
    config = tmp_path / "cdp.yaml"
    config.write_text(
        json.dumps(
            {
                "calendar": {"partitions_start": "2024-01-01", "timezone": "Asia/Jakarta", "currency": "IDR"},
                "sources": {"survey": {"location": str(folder)}},
            }
        )
    )
    monkeypatch.setenv("CDP_CONFIG", str(config))
    from pipeline.defs.ingest.sensors import SURVEY_ASSET, survey_files_sensor

    first = survey_files_sensor(dg.build_sensor_context())
    assert sorted(r.partition_key for r in first.run_requests) == ["2025-04-01", "2025-04-02", "2025-04-03"]
    assert all(r.asset_selection == [SURVEY_ASSET] for r in first.run_requests)

    unchanged = survey_files_sensor(dg.build_sensor_context(cursor=first.cursor))
    assert isinstance(unchanged, dg.SkipReason)

    # A file without a date in its name spanning two days: its rows' submitted_at decide.
    pl.concat([_responses("F", "2025-04-07", 2), _responses("G", "2025-04-09", 1)]).write_csv(folder / "export.csv")
    third = survey_files_sensor(dg.build_sensor_context(cursor=first.cursor))
    assert sorted(r.partition_key for r in third.run_requests) == ["2025-04-07", "2025-04-08", "2025-04-09"]
    assert len({r.run_key for r in third.run_requests}) == 3
