"""Ingestion assets against real files and a real DuckDB warehouse: partition windows, re-runs, quarantine,
schema drift."""

import sqlite3
from datetime import date

import dagster as dg
import duckdb
import pytest

from pipeline.defs.ingest.assets import helpdesk_tickets, survey_responses, webshop
from pipeline.defs.resources import resources_for
from pipeline.lib.demo_data import DemoConfig, generate

DAY = "2026-11-20"


@pytest.fixture
def demo(data_env):
    # A short history, so that the day under test has records of every source (over three years, 300 customers
    # leave days without a ticket).
    generate(DemoConfig(customers=300, start_date=date(2026, 9, 1)), data_env / "demo")
    return data_env


def _materialize(asset, partition=DAY):
    return dg.materialize([asset], partition_key=partition, raise_on_error=False, resources=resources_for())


def _warehouse(data_dir):
    return duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)


def _count(con, sql):
    return con.execute(sql).fetchone()[0]


def test_webshop_partition_holds_rows_updated_that_day_and_rerun_replaces(demo):
    assert _materialize(webshop).success
    src = sqlite3.connect(demo / "demo" / "webshop.sqlite")
    expected = src.execute(
        "select count(*) from orders where substr(updated_at, 1, 10) = ? and order_id is not null", [DAY]
    ).fetchone()[0]
    with _warehouse(demo) as con:
        loaded = _count(con, "select count(*) from raw.webshop_orders")
        quarantined = _count(con, "select count(*) from quarantine.webshop_orders")
        assert loaded + quarantined == expected > 0
        assert _count(con, f"select count(*) from raw.webshop_orders where _partition_date <> '{DAY}'") == 0
        items = _count(con, "select count(*) from raw.webshop_order_items")
    assert items > 0
    assert _materialize(webshop).success  # same partition again: replaced, not duplicated
    with _warehouse(demo) as con:
        assert _count(con, "select count(*) from raw.webshop_orders") == loaded
        assert _count(con, "select count(*) from raw.webshop_order_items") == items
        assert _count(con, "select count(*) - count(distinct (order_id, updated_at)) from raw.webshop_orders") == 0


def test_helpdesk_files_of_the_day_land_and_duplicates_are_counted(demo):
    result = _materialize(helpdesk_tickets)
    assert result.success
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    lines = sum(1 for line in open(demo / "demo" / "helpdesk" / f"tickets-{DAY}.jsonl") if line.strip())
    loaded = metadata["helpdesk_tickets.rows_loaded"].value
    assert (
        loaded
        + metadata["helpdesk_tickets.rows_quarantined"].value
        + metadata["helpdesk_tickets.duplicates_dropped"].value
        == lines
    )
    with _warehouse(demo) as con:
        assert _count(con, "select count(distinct id) from raw.helpdesk_tickets") == loaded


def test_backfill_range_in_one_run(demo):
    tags = {"dagster/asset_partition_range_start": "2026-11-01", "dagster/asset_partition_range_end": "2026-11-22"}
    job = dg.define_asset_job("backfill", selection=[survey_responses]).resolve(
        asset_graph=dg.Definitions(assets=[survey_responses], resources=resources_for())
        .get_repository_def()
        .asset_graph
    )
    assert job.execute_in_process(tags=tags).success
    files = [p for p in (demo / "demo" / "survey").iterdir() if "2026-11-01" <= p.stem[-10:] <= "2026-11-22"]
    with _warehouse(demo) as con:
        days = _count(con, "select count(distinct _partition_date) from raw.survey_responses")
        assert days == len(files)
        assert _count(
            con,
            "select min(_partition_date) >= '2026-11-01' and max(_partition_date) <= '2026-11-22' "
            "from raw.survey_responses",
        )


def test_bad_rows_go_to_quarantine_with_reason_and_payload(demo):
    survey_dir = demo / "demo" / "survey"
    for old in survey_dir.iterdir():
        old.unlink()
    (survey_dir / f"responses-{DAY}.csv").write_text(
        "response_id,submitted_at,survey,score,comment,email,phone,order_ref,consent\n"
        f"R1,{DAY}T10:00:00,nps,9,Mantap,a@b.id,,,true\n"
        f"R2,{DAY}T10:00:00,nps,11,,a@b.id,,,true\n"
        f"R3,bukan tanggal,csat,4,,a@b.id,,,true\n"
        f"R4,{DAY}T11:00:00,csat,sangat puas,,a@b.id,,,true\n"
        f",{DAY}T11:00:00,csat,5,,a@b.id,,,true\n"
        f"R6,{DAY}T12:00:00,poll,5,,a@b.id,,,true\n"
        f"R7,{DAY}T12:00:00+07:00,csat,5,,,0812-1111-2222,,false\n"
    )
    assert _materialize(survey_responses).success
    with _warehouse(demo) as con:
        assert [r[0] for r in con.execute("select response_id from raw.survey_responses order by 1").fetchall()] == [
            "R1",
            "R7",
        ]
        reasons = dict(
            con.execute("select _payload::json->>'response_id', _reason from quarantine.survey_responses").fetchall()
        )
    assert reasons == {
        "R2": "NPS score outside 0-10",
        "R3": "unparseable submitted_at",
        "R4": "non-numeric score",
        None: "missing response_id",
        "R6": "unknown survey",
    }


def test_missing_required_column_fails_clearly_and_keeps_previous_rows(demo):
    assert _materialize(survey_responses).success
    with _warehouse(demo) as con:
        before = _count(con, "select count(*) from raw.survey_responses")
    target = demo / "demo" / "survey" / f"responses-{DAY}.csv"
    for f in (demo / "demo" / "survey").glob(f"responses-{DAY}.*"):
        f.unlink()
    target.write_text("response_id,when,survey,score\nR1,2026-11-20T10:00:00,nps,9\n")
    result = _materialize(survey_responses)
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error.cause
    assert "submitted_at" in error.message and "required" in error.message
    with _warehouse(demo) as con:
        assert _count(con, "select count(*) from raw.survey_responses") == before


def test_new_source_column_is_kept(demo):
    shop = demo / "demo" / "webshop.sqlite"
    with sqlite3.connect(shop) as src:
        src.execute("alter table customers add column loyalty_tier text")
        src.execute(f"update customers set loyalty_tier = 'gold', updated_at = '{DAY}T09:00:00' where rowid = 1")
    assert _materialize(webshop).success
    with _warehouse(demo) as con:
        assert _count(con, "select count(*) from raw.webshop_customers where loyalty_tier = 'gold'") == 1


def test_a_file_still_being_written_is_read_again_whole_by_the_next_run(demo):
    survey_dir = demo / "demo" / "survey"
    for old in survey_dir.iterdir():
        old.unlink()
    header = "response_id,submitted_at,survey,score,comment,email,phone,order_ref,consent\n"
    growing = survey_dir / f"responses-{DAY}.csv"
    growing.write_text(f"{header}R1,{DAY}T10:00:00,nps,9,,a@b.id,,,true\nR2,{DAY}T11:00:00,n")
    (survey_dir / "responses-2026-11-21.csv").write_bytes(b"")  # an empty export: skipped and counted
    first = _materialize(survey_responses)
    assert first.success
    metadata = first.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["files_with_partial_last_line"].value == 1
    with _warehouse(demo) as con:
        assert _count(con, "select count(*) from raw.survey_responses") == 1
        assert (
            _count(con, "select count(*) from quarantine.survey_responses where _reason like 'partial last line%'") == 1
        )

    growing.write_text(f"{header}R1,{DAY}T10:00:00,nps,9,,a@b.id,,,true\nR2,{DAY}T11:00:00,nps,7,,b@b.id,,,true\n")
    nightly = _materialize(survey_responses, "2026-11-21")  # the next night reads the completed file again
    assert nightly.success
    metadata = nightly.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["empty_files_skipped"].value == 1 and metadata["files_with_partial_last_line"].value == 0
    with _warehouse(demo) as con:
        assert _count(con, "select count(*) from raw.survey_responses") == 2
        assert _count(con, "select count(*) from quarantine.survey_responses") == 0
