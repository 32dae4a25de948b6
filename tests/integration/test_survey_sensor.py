"""The survey sensor on real export files, with a real Dagster instance and real ingest runs."""

from __future__ import annotations

import json

import dagster as dg
import duckdb
import polars as pl

from pipeline.defs.resources import resources_for
from tests.support.survey_exports import survey_responses as _responses


def test_survey_sensor_asks_once_for_files_not_yet_loaded(survey_folder, tmp_path, monkeypatch):
    """Switched on after a run it asks for nothing already loaded; new files come as one run per tick, loading them."""
    folder = survey_folder
    config = tmp_path / "cdp.yaml"
    config.write_text(
        json.dumps(
            {
                "calendar": {"partitions_start": "2024-01-01", "timezone": "Asia/Jakarta", "currency": "IDR"},
                "sources": {"survey": {"location": str(folder)}},
                "identity": {"default_region": "ID"},  # required: the shop's phone region has no default
            }
        )
    )
    monkeypatch.setenv("CDP_CONFIG", str(config))
    monkeypatch.setenv("CDP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CDP_WAREHOUSE", raising=False)
    from pipeline.defs.ingest.assets import survey_responses
    from pipeline.defs.ingest.sensors import SURVEY_ASSET, survey_files_sensor
    from pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG

    def load(instance, tags):
        result = dg.materialize([survey_responses], instance=instance, tags=tags, resources=resources_for())
        assert result.success
        # The UI shows the table's size and DuckDB's column types for every landed day.
        metadata = result.get_asset_materialization_events()[-1].materialization.metadata
        assert metadata["dagster/row_count"].value == sum(rows_by_day().values())
        columns = {c.name: c.type for c in metadata["dagster/column_schema"].schema.columns}
        assert columns["response_id"] == "VARCHAR" and columns["_partition_date"] == "DATE"

    def tick(instance, cursor=None):
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources_for(config)) as context:
            return survey_files_sensor(context)

    def rows_by_day():
        with duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True) as con:
            return dict(
                con.execute("select _partition_date::varchar, count(*) from raw.survey_responses group by 1").fetchall()
            )

    with dg.instance_for_test() as instance:
        # A run already loaded the first two days; the third file is not loaded yet.
        load(instance, {RANGE_START_TAG: "2025-04-01", RANGE_END_TAG: "2025-04-02"})
        first = tick(instance)
        assert len(first.run_requests) == 1
        request = first.run_requests[0]
        assert request.asset_selection == [SURVEY_ASSET]
        assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == ("2025-04-03", "2025-04-03")
        load(instance, request.tags)
        assert rows_by_day() == {"2025-04-01": 5, "2025-04-02": 4, "2025-04-03": 3}

        assert not tick(instance, first.cursor).run_requests

        # Two new files in one tick (one without a date in its name, spanning two days): one run over their days.
        _responses("D", "2025-04-05", 2).write_csv(folder / "responses-2025-04-05.csv")
        pl.concat([_responses("F", "2025-04-07", 2), _responses("G", "2025-04-09", 1)]).write_csv(folder / "export.csv")
        third = tick(instance, first.cursor)
        assert len(third.run_requests) == 1
        tags = third.run_requests[0].tags
        assert (tags[RANGE_START_TAG], tags[RANGE_END_TAG]) == ("2025-04-05", "2025-04-09")
        load(instance, tags)
        assert rows_by_day() == {
            "2025-04-01": 5,
            "2025-04-02": 4,
            "2025-04-03": 3,
            "2025-04-05": 2,
            "2025-04-07": 2,
            "2025-04-09": 1,
        }

        # Switched off and on again (cursor lost): everything is loaded, nothing is asked for.
        assert not tick(instance).run_requests
