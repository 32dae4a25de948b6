"""A publish rewrites only the tables whose served form changed since the last publish (real DuckDB and Parquet)."""

from __future__ import annotations

import os

import duckdb
import pytest

from pipeline.lib import serving


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute("create table marts.customer_profile (customer_id varchar, marketing_consent boolean)")
        con.execute("insert into marts.customer_profile values ('C1', true), ('C2', false)")
        con.execute("create table marts.fct_orders (order_id varchar, customer_id varchar, net_amount double)")
        con.execute("insert into marts.fct_orders values ('O1', 'C1', 100.0), ('O2', 'C2', 5.5)")
        con.execute("create table marts.customer_tags (customer_id varchar, tags varchar[])")
        con.execute("insert into marts.customer_tags values ('C1', ['a', 'b']), ('C2', [])")
    return path


def _parquet(out, table: str):
    return out / "parquet" / table / f"{table}.parquet"


def _served(out, sql: str) -> list[tuple]:
    with duckdb.connect(str(out / serving.SERVING_FILE), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_unchanged_tables_are_kept_and_changed_ones_rewritten(warehouse, tmp_path):
    out = tmp_path / "serving"
    first = serving.publish(warehouse, out)
    assert sorted(first.rewritten) == sorted(first.tables)
    inodes = {t: _parquet(out, t).stat().st_ino for t in ("customer_profile", "fct_orders", "customer_tags")}

    # Nothing changed: nothing is rewritten, the copy still holds every table.
    again = serving.publish(warehouse, out)
    assert again.rewritten == [] and again.tables == first.tables
    assert {t: _parquet(out, t).stat().st_ino for t in inodes} == inodes

    # A new order: only the order fact is rewritten; the others keep their Parquet file (the serving file's views
    # read the files: the data is written once).
    with duckdb.connect(str(warehouse)) as con:
        con.execute("insert into marts.fct_orders values ('O3', 'C1', 7.0)")
    changed = serving.publish(warehouse, out)
    assert changed.rewritten == ["marts.fct_orders"]
    assert changed.tables["marts.fct_orders"] == 3
    assert _parquet(out, "fct_orders").stat().st_ino != inodes["fct_orders"]
    assert _parquet(out, "customer_tags").stat().st_ino == inodes["customer_tags"]
    assert _served(out, "select count(*) from duckdb_tables() where schema_name = 'marts'") == [(0,)]
    assert _served(out, "select count(*) from marts.fct_orders") == [(3,)]
    with duckdb.connect() as con:
        assert con.execute(f"select count(*) from read_parquet('{_parquet(out, 'fct_orders')}')").fetchone() == (3,)
    # The kept list column's bridge table (one row per customer and tag) is still served.
    assert _served(out, "select count(*) from marts.customer_tags__tags") == [(2,)]

    # A consent withdrawn changes what every table joined to the profile serves: those are rewritten.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update marts.customer_profile set marketing_consent = false where customer_id = 'C1'")
    consent = serving.publish(warehouse, out)
    assert sorted(consent.rewritten) == [
        "marts.customer_profile",
        "marts.customer_tags",
        "marts.customer_tags__tags",
        "marts.fct_orders",
    ]
    assert _served(out, "select count(*) from marts.fct_orders where marketing_consent") == [(0,)]

    # A new description is a change too; a table gone from the warehouse leaves the copy and the manifest.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("comment on table marts.customer_tags is 'Tags per customer.'")
        con.execute("drop table marts.fct_orders")
    last = serving.publish(warehouse, out)
    assert sorted(last.rewritten) == ["marts.customer_tags", "marts.customer_tags__tags"]
    assert _served(out, "select comment from duckdb_views() where view_name = 'customer_tags'") == [
        ("Tags per customer.",)
    ]
    assert _served(out, "select count(*) from duckdb_views() where view_name = 'fct_orders'") == [(0,)]
    assert "marts.fct_orders" not in dict(_served(out, "select table_name, row_count from main.serving_manifest"))
    assert not _parquet(out, "fct_orders").exists()
    assert not list(out.glob("*.tmp-*"))


def test_an_erasure_publish_rewrites_everything(warehouse, tmp_path):
    """Erasure publishes afresh: no block of the last copy (which held the erased person) is carried over."""
    out = tmp_path / "serving"
    serving.publish(warehouse, out)
    before = os.stat(out / serving.SERVING_FILE).st_ino
    erased = serving.publish(warehouse, out, keep_previous_parquet=False)
    assert sorted(erased.rewritten) == sorted(erased.tables)
    assert os.stat(out / serving.SERVING_FILE).st_ino != before
    assert len(list(out.glob("parquet-v*"))) == 1


def _snapshot_files(out) -> dict[str, int]:
    """{file name: inode} of the served history table's Parquet files."""
    return {p.name: p.stat().st_ino for p in (out / "parquet" / "customer_history").glob("*.parquet")}


def test_a_history_table_publishes_only_its_changed_snapshot_dates(warehouse, tmp_path):
    """A nightly run adds one snapshot date to a history table: the publish inserts that date's rows and writes that
    date's Parquet file; the other dates keep their rows and files, whatever the length of the history."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create table marts.customer_history (snapshot_date date, customer_id varchar, segment varchar)")
        con.execute("""insert into marts.customer_history values
            ('2026-01-01', 'C1', 'new'), ('2026-01-01', 'C2', 'new'), ('2026-01-02', 'C1', 'loyal')""")
    out = tmp_path / "serving"
    serving.publish(warehouse, out)
    first = _snapshot_files(out)
    assert sorted(first) == ["customer_history-2026-01-01.parquet", "customer_history-2026-01-02.parquet"]

    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "insert into marts.customer_history values ('2026-01-03', 'C1', 'loyal'), ('2026-01-03', 'C2', 'lapsed')"
        )
    night = serving.publish(warehouse, out)
    assert night.rewritten == ["marts.customer_history"] and night.tables["marts.customer_history"] == 5
    files = _snapshot_files(out)
    assert {name: files[name] for name in first} == first and "customer_history-2026-01-03.parquet" in files
    # Nothing changed: every date's file is kept.
    assert serving.publish(warehouse, out).rewritten == [] and _snapshot_files(out) == files
    assert _served(
        out, "select snapshot_date::varchar, count(*) from marts.customer_history group by 1 order by 1"
    ) == [
        ("2026-01-01", 2),
        ("2026-01-02", 1),
        ("2026-01-03", 2),
    ]
    # The consent joined from the profile is served on the new date's rows as on the old ones.
    assert _served(out, "select count(*) from marts.customer_history where marketing_consent") == [(3,)]
    # A consent withdrawn is served on every date at once, and rewrites none of them: the files hold the history's
    # rows, the view joins today's consent from the profile.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update marts.customer_profile set marketing_consent = false where customer_id = 'C1'")
    withdrawn = serving.publish(warehouse, out)
    assert "marts.customer_history" not in withdrawn.rewritten and _snapshot_files(out) == files
    assert _served(out, "select count(*) from marts.customer_history where marketing_consent") == [(0,)]
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update marts.customer_profile set marketing_consent = true where customer_id = 'C1'")

    # A re-run of an old date replaces that date only; a date gone from the warehouse leaves the copy and its file.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update marts.customer_history set segment = 'lapsed' where snapshot_date = '2026-01-02'")
        con.execute("delete from marts.customer_history where snapshot_date = '2026-01-01'")
    rerun = serving.publish(warehouse, out)
    assert rerun.tables["marts.customer_history"] == 3
    files_after = _snapshot_files(out)
    assert sorted(files_after) == ["customer_history-2026-01-02.parquet", "customer_history-2026-01-03.parquet"]
    assert files_after["customer_history-2026-01-02.parquet"] != files["customer_history-2026-01-02.parquet"]
    assert files_after["customer_history-2026-01-03.parquet"] == files["customer_history-2026-01-03.parquet"]
    assert _served(out, "select segment, count(*) from marts.customer_history group by 1 order by 1") == [
        ("lapsed", 2),
        ("loyal", 1),
    ]
    with duckdb.connect() as con:
        folder = out / "parquet" / "customer_history"
        assert con.execute(f"select count(*) from read_parquet('{folder}/*.parquet')").fetchone() == (3,)


def test_a_log_by_run_date_publishes_only_the_new_run_date(warehouse, tmp_path):
    """A log table (identity_changes: one run date of rows a night) is served one file per run date, like a history:
    a night writes its run date's file and keeps the others."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create table marts.identity_changes (run_date date, old_customer_id varchar, records bigint)")
        con.execute("insert into marts.identity_changes values ('2026-01-01', 'C7', 3), ('2026-01-01', 'C8', 1)")
    out = tmp_path / "serving"
    serving.publish(warehouse, out)
    folder = out / "parquet" / "identity_changes"
    first = {p.name: p.stat().st_ino for p in folder.glob("*.parquet")}
    assert sorted(first) == ["identity_changes-2026-01-01.parquet"]
    with duckdb.connect(str(warehouse)) as con:
        con.execute("insert into marts.identity_changes values ('2026-01-02', 'C9', 2)")
    night = serving.publish(warehouse, out)
    assert night.rewritten == ["marts.identity_changes"] and night.tables["marts.identity_changes"] == 3
    files = {p.name: p.stat().st_ino for p in folder.glob("*.parquet")}
    assert files["identity_changes-2026-01-01.parquet"] == first["identity_changes-2026-01-01.parquet"]
    assert _served(out, "select run_date::varchar, sum(records) from marts.identity_changes group by 1 order by 1") == [
        ("2026-01-01", 4),
        ("2026-01-02", 2),
    ]
