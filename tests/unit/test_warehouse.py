"""Warehouse helpers on a real DuckDB file: lock waiting, atomic replace."""

import subprocess
import sys
import time

import duckdb
import polars as pl

from pipeline.lib import warehouse


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
                "print('locked', flush=True); time.sleep(1.5); c.close()"
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
