"""The identity summary asset on the demo pipeline run: counts agree with the identity map it summarises."""

import dagster as dg
import duckdb

from pipeline.defs.identity.assets import identity_summary
from pipeline.defs.resources import resources_for


def test_summary_matches_identity_map(demo_run, monkeypatch, tmp_path):
    import shutil

    data_dir = tmp_path / "copy"
    shutil.copytree(demo_run.data_dir, data_dir)
    monkeypatch.setenv("CDP_DATA_DIR", str(data_dir))
    result = dg.materialize([identity_summary], resources=resources_for())
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        records, persons = con.execute(
            "select count(*), count(distinct customer_id) from intermediate.int_identity_map"
        ).fetchone()
        cut = con.execute(
            "select count(*) from marts.identity_violations "
            "where run_date = (select max(run_date) from marts.identity_violations)"
        ).fetchone()[0]
        stored = con.execute("select count(*), max(persons) from marts.identity_summary").fetchone()
    assert metadata["records"].value == records and metadata["persons"].value == persons
    assert 0 < persons < records and metadata["merge_rate"].value == 1 - persons / records
    assert metadata["violations"].value == cut > 0  # the demo plants shared household phones and junk values
    assert "| 1 |" in metadata["cluster_sizes"].md_str
    assert stored == (1, persons)
