"""Warehouse helpers on a real DuckDB file: lock waiting, atomic replace."""

import subprocess
import sys
import time

import duckdb
import polars as pl
import pytest

from pipeline.lib import warehouse
from pipeline.settings import load_settings


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


def test_memory_share_spills_what_the_database_holds_over_the_share_and_restores_the_limit(tmp_path):
    limit = "400MB"
    spill = tmp_path / "spill"
    with duckdb.connect(config={"memory_limit": limit, "temp_directory": str(spill)}) as con:
        con.execute("create temp table t as select i, md5(i::varchar) as s from range(3000000) as r(i)")

        def held():
            return con.execute(
                "select sum(memory_usage_bytes), sum(temporary_storage_bytes) from duckdb_memory()"
            ).fetchone()

        in_memory, spilled = held()
        assert in_memory > 120e6 and spilled == 0
        with warehouse.memory_share(con, limit, 0.25):
            assert con.execute("select current_setting('memory_limit')").fetchone()[0] == "95.3 MiB"
            in_memory, spilled = held()
            assert in_memory <= 100e6 and spilled > 20e6
            assert con.execute("select count(distinct s) from t").fetchone()[0] == 3000000
        assert con.execute("select current_setting('memory_limit')").fetchone()[0] == "381.4 MiB"  # 400MB again
        with warehouse.memory_share(con, None, 0.25):  # no configured limit: nothing to share
            assert con.execute("select current_setting('memory_limit')").fetchone()[0] == "381.4 MiB"


def test_size_bytes_reads_the_sizes_cdp_yaml_takes():
    assert warehouse.size_bytes("4GB") == 4_000_000_000
    assert warehouse.size_bytes(" 3.5 GiB") == 3.5 * 2**30
    assert warehouse.size_bytes("512mb") == 512_000_000
    assert warehouse.size_bytes("100B") == 100
    for wrong in ("4", "4 GX", "lots"):
        with pytest.raises(ValueError, match="not a memory size"):
            warehouse.size_bytes(wrong)


def test_dbt_keeps_the_warehouse_open_while_its_delete_marks_fit_in_half_the_memory_limit(tmp_path):
    """8 bytes for every row of every table, deleted rows included (they are what DuckDB 1.5.5 pins), against half of
    the limit."""
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("create schema staging; create table staging.t as select range as x from range(1000000)")
        con.execute("delete from staging.t where x % 2 = 0")  # still 1M rows of marks until a vacuum rewrites them
        con.execute("create table main.u as select range as x from range(250000)")
        assert warehouse.deleted_row_pins_fit(con, "20MB")  # 10M bytes for half a limit: 1.25M rows fit
        assert not warehouse.deleted_row_pins_fit(con, "19MB")


def test_the_settings_keep_open_is_auto_unless_set(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("create table t as select range as x from range(1000000)")
        auto = load_settings()
        assert auto.duckdb.keep_open == "auto" and auto.keep_warehouse_open(con)
        tight = auto.model_copy(update={"duckdb": auto.duckdb.model_copy(update={"memory_limit": "10MB"})})
        assert not tight.keep_warehouse_open(con)
        forced = tight.model_copy(update={"duckdb": tight.duckdb.model_copy(update={"keep_open": True})})
        assert forced.keep_warehouse_open(con)
