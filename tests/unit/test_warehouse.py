"""Warehouse helpers on a real DuckDB file: lock waiting, atomic replace."""

import subprocess
import sys
import time

import duckdb
import polars as pl
import pytest

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
