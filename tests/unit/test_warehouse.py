"""Warehouse helpers on a real DuckDB file: lock waiting, atomic replace, dated snapshots."""

import subprocess
import sys
import time
from datetime import date

import duckdb
import polars as pl

from pipeline.lib import warehouse


def test_snapshot_replaces_only_its_date_and_keeps_columns_of_older_snapshots(tmp_path):
    path = tmp_path / "w.duckdb"
    old = pl.DataFrame({"customer_id": ["A", "B"], "segment": ["new", "loyal"]})
    new = pl.DataFrame(
        {"customer_id": ["A", "B", "C"], "segment": ["loyal", "loyal", "new"], "advocate": [True, False, False]}
    )
    with warehouse.connect(path) as con:
        assert warehouse.replace_snapshot(con, "marts.history", old, date(2026, 1, 1)) == 1
        assert warehouse.replace_snapshot(con, "marts.history", old, date(2026, 1, 1)) == 1  # same date again
        assert warehouse.replace_snapshot(con, "marts.history", new, date(2026, 2, 1)) == 2
        assert warehouse.replace_snapshot(con, "marts.history", new, date(2026, 2, 1)) == 2
        rows = con.execute("""
            select snapshot_date, count(*), count(advocate), string_agg(segment, ',' order by customer_id)
            from marts.history group by 1 order by 1""").fetchall()
    assert rows == [(date(2026, 1, 1), 2, 0, "new,loyal"), (date(2026, 2, 1), 3, 3, "loyal,loyal,new")]


def test_connect_waits_for_another_writer_to_release_the_file(tmp_path):
    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path)).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import duckdb, time, sys; c = duckdb.connect(sys.argv[1]);"
                "c.execute('create table t as select 1 as x');"
                "print('locked', flush=True); time.sleep(3); c.close()"
            ),
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    began = time.monotonic()
    with warehouse.connect(path) as con:  # would raise a lock error at once without the wait
        waited = time.monotonic() - began
        assert con.execute("select x from t").fetchone() == (1,)
    holder.wait(timeout=30)
    assert waited > 0.5


def test_replace_table_swaps_whole_tables(tmp_path):
    with warehouse.connect(tmp_path / "w.duckdb") as con:
        warehouse.replace_table(con, "marts.t", pl.DataFrame({"x": [1, 2]}))
        warehouse.replace_table(con, "marts.t", pl.DataFrame({"x": [3]}))
        assert con.execute("select list(x) from marts.t").fetchone() == ([3],)
        assert warehouse.table_exists(con, "marts.t") and not warehouse.table_exists(con, "marts.nope")
