"""Survey export files (CSV/JSONL/Parquet) from a real folder into a real DuckDB file."""

from __future__ import annotations

import os

import duckdb

from pipeline.lib import ingest
from pipeline.lib.sources import survey_files
from tests.support.demo_shop import DEMO_RULES
from tests.support.survey_exports import survey_responses as _responses


def _pull(con, source):
    ingest.prepare_session(con, "Asia/Jakarta")  # the demo shop's time zone
    item = survey_files.extract(con, source)
    if item.window:
        ingest.land(con, ingest.SURVEY_RESPONSES, item.relation, item.window, source.name, DEMO_RULES)
    survey_files.record_loaded(con, source, item)
    return item


def test_mixed_formats_loaded_once_and_new_file_picked_up(survey_folder, tmp_path):
    folder = survey_folder
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
