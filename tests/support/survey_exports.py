"""Survey export files as a shop delivers them: one file per day, CSV, JSONL and Parquet mixed."""

from __future__ import annotations

import polars as pl
import pytest


def survey_responses(prefix: str, day: str, n: int) -> pl.DataFrame:
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


@pytest.fixture()
def survey_folder(tmp_path):
    exports = tmp_path / "survey"
    exports.mkdir()
    survey_responses("A", "2025-04-01", 5).write_csv(exports / "responses-2025-04-01.csv")
    survey_responses("B", "2025-04-02", 4).write_ndjson(exports / "responses-2025-04-02.jsonl")
    survey_responses("C", "2025-04-03", 3).write_parquet(exports / "responses-2025-04-03.parquet")
    (exports / "README.txt").write_text("not an export")
    return exports
