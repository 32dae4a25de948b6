"""The serving copy for BI: atomic publishing under concurrent readers, failure and crash recovery."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipeline.defs.resources import resources_for
from pipeline.lib import serving
from tests.support.serving import copy_run, ensure_marts

REPO = Path(__file__).resolve().parents[2]

# Opens the serving file anew on every pass and reads every table completely; any error or a table whose row count
# differs from the manifest published with it (a half-written copy) fails the process.
LOOPING_READER = textwrap.dedent("""
    import glob, json, os, sys, duckdb
    out, stop = sys.argv[1], sys.argv[2]
    passes, versions = 0, set()
    print("ready", flush=True)
    while not os.path.exists(stop):
        with duckdb.connect(os.path.join(out, "cdp.duckdb"), read_only=True) as con:
            manifest = dict(con.execute("select table_name, row_count from main.serving_manifest").fetchall())
            for name, rows in manifest.items():
                schema, table = name.split(".")
                got = len(con.execute(f'select * from "{schema}"."{table}"').fetchall())
                if got != rows:
                    sys.exit(f"half-written table {name}: {got} rows, manifest says {rows}")
        versions.add(json.dumps(sorted(manifest.items())))
        # A Parquet client resolves the current version once, then reads its files.
        for path in glob.glob(os.path.join(os.path.realpath(os.path.join(out, "parquet")), "*", "*.parquet")):
            duckdb.sql(f"select count(*) from read_parquet('{path}')").fetchone()
        passes += 1
    print(json.dumps({"passes": passes, "versions": len(versions)}))
""")

# Opens the serving file once, before the swaps, and keeps querying it: it must keep seeing its own snapshot.
HOLDING_READER = textwrap.dedent("""
    import json, os, sys, duckdb
    out, stop = sys.argv[1], sys.argv[2]
    con = duckdb.connect(os.path.join(out, "cdp.duckdb"), read_only=True)
    def counts():
        return {name: con.execute(f'select count(*) from {name}').fetchone()[0]
                for (name,) in con.execute("select table_name from main.serving_manifest").fetchall()}
    first = counts()
    print("ready", flush=True)
    passes = 0
    while not os.path.exists(stop):
        if counts() != first:
            sys.exit(f"the held snapshot changed under the reader: {counts()} != {first}")
        passes += 1
    print(json.dumps({"passes": passes, "counts": first}))
""")


def _start(script: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
    )
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def run_copy(demo_run, tmp_path) -> Path:
    data = copy_run(demo_run.data_dir, tmp_path / "data")
    ensure_marts(data / "warehouse.duckdb")
    return data


def test_publish_copies_every_mart_with_consent_and_parquet(run_copy):
    warehouse, out = run_copy / "warehouse.duckdb", serving.serving_dir(run_copy)
    result = serving.publish(warehouse, out)

    with duckdb.connect(str(warehouse), read_only=True) as con:
        marts = {
            f"marts.{t}"
            for (t,) in con.execute("select table_name from duckdb_tables() where schema_name = 'marts'").fetchall()
        }
        con.execute(f"attach '{out / 'cdp.duckdb'}' as served (read_only)")
        lists = {
            f"marts.{t}__{c}"
            for t, c in con.execute(
                "select table_name, column_name from duckdb_columns() where schema_name = 'marts' "
                "and data_type like '%[]'"
            ).fetchall()
        }
        assert set(result.tables) == marts | lists
        for name, rows in result.tables.items():
            parquet_name = name.split(".")[1]
            parquet_rows = f"select count(*) from read_parquet('{out / 'parquet' / parquet_name}/*.parquet')"
            assert con.execute(parquet_rows).fetchone()[0] == rows
            if name in lists:
                continue
            schema, table = name.split(".")
            original = {
                c
                for (c,) in con.execute(
                    "select column_name from duckdb_columns() where schema_name = ? "
                    "and table_name = ? and database_name = 'warehouse'",
                    [schema, table],
                ).fetchall()
            }
            served = {
                c
                for (c,) in con.execute(
                    "select column_name from duckdb_columns() where schema_name = ? "
                    "and table_name = ? and database_name = 'served'",
                    [schema, table],
                ).fetchall()
            }
            if "customer_id" in original:
                assert "marketing_consent" in served, f"{name} is audience-like but has no marketing_consent"
            # A model's bookkeeping columns (_loaded_at, _resolution, _invocation_id) stay in the warehouse.
            assert not {c for c in served if c.startswith(serving.MODEL_STATE_PREFIX)}, f"{name} serves model state"
            original = {c for c in original if not c.startswith(serving.MODEL_STATE_PREFIX)}
            # Served rows = warehouse rows, value for value (the consent column is the only addition).
            cols = ", ".join(f'"{c}"' for c in sorted(original))
            diff = con.execute(
                f"select count(*) from ((select {cols} from warehouse.{name} except all "
                f"select {cols} from served.{name}) union all (select {cols} from served.{name} "
                f"except all select {cols} from warehouse.{name}))"
            ).fetchone()[0]
            assert diff == 0 and rows == con.execute(f"select count(*) from warehouse.{name}").fetchone()[0], name
        # Consent joined onto a table that lacks it equals the profile's consent of that customer.
        wrong = con.execute("""
            select count(*) from served.marts.fct_orders o
            left join warehouse.marts.customer_profile p using (customer_id)
            where o.marketing_consent is distinct from coalesce(p.marketing_consent, false)
        """).fetchone()[0]
        assert wrong == 0
    assert not (out / "cdp.duckdb").stat().st_mode & 0o222, "the serving file must be read-only on disk"
    assert (out / "parquet").is_symlink() and not list(out.glob("*.tmp-*"))


def test_readers_never_see_a_half_published_copy(run_copy, tmp_path, monkeypatch):
    warehouse, out = run_copy / "warehouse.duckdb", serving.serving_dir(run_copy)
    first = serving.publish(warehouse, out)
    stop = tmp_path / "stop"
    looping, holding = _start(LOOPING_READER, str(out), str(stop)), _start(HOLDING_READER, str(out), str(stop))
    try:
        for slice_no in range(4):
            # Change the marts between publishes so every version differs from the last.
            with duckdb.connect(str(warehouse)) as con:
                con.execute(f"delete from marts.fct_orders where hash(order_id) % 5 = {slice_no}")
            last = serving.publish(warehouse, out)
            time.sleep(0.5)
    finally:
        stop.touch()
        loop_out, loop_err = looping.communicate(timeout=120)
        hold_out, hold_err = holding.communicate(timeout=120)
    assert looping.returncode == 0, loop_err
    assert holding.returncode == 0, hold_err
    loop_stats, hold_stats = json.loads(loop_out), json.loads(hold_out)
    assert loop_stats["passes"] >= 4 and loop_stats["versions"] >= 2, loop_stats
    assert hold_stats["passes"] > 0 and hold_stats["counts"] == first.tables
    assert last.tables["marts.fct_orders"] < first.tables["marts.fct_orders"]
    with duckdb.connect(str(out / "cdp.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from marts.fct_orders").fetchone()[0] == last.tables["marts.fct_orders"]
    # Superseded Parquet versions stay for a while (a reader holding an older serving file reads them via its views);
    # once they are older than that, only the current and the previous version remain.
    assert len(list(out.glob("parquet-v*"))) >= 5
    monkeypatch.setattr(serving, "SUPERSEDED_KEPT_SECONDS", 0)
    serving.publish(warehouse, out)
    assert len(list(out.glob("parquet-v*"))) == 2


def test_killed_publish_leaves_the_last_good_copy(run_copy):
    warehouse, out = run_copy / "warehouse.duckdb", serving.serving_dir(run_copy)
    serving.publish(warehouse, out)
    good_file, good_version = _sha256(out / "cdp.duckdb"), os.readlink(out / "parquet")
    script = (
        f"from pathlib import Path; from pipeline.lib.serving import publish; "
        f"publish(Path({str(warehouse)!r}), Path({str(out)!r}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    deadline = time.monotonic() + 120
    while not list(out.glob("cdp.duckdb.tmp-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, "the publish finished before it could be killed mid-way"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _sha256(out / "cdp.duckdb") == good_file and os.readlink(out / "parquet") == good_version
    assert list(out.glob("*.tmp-*")), "the killed publish should have left its tmp file behind"
    with duckdb.connect(str(out / "cdp.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from main.serving_manifest").fetchone()[0] > 0
    serving.publish(warehouse, out)
    assert not list(out.glob("*.tmp-*")), "the next publish cleans up after the killed one"


def test_serving_asset_publishes_and_a_failed_run_keeps_the_copy(run_copy, monkeypatch, tmp_path):
    from pipeline.defs.serving.assets import build_serving_asset, cdp_serving

    monkeypatch.setenv("CDP_DATA_DIR", str(run_copy))
    monkeypatch.delenv("CDP_WAREHOUSE", raising=False)
    result = dg.materialize([cdp_serving], instance=dg.DagsterInstance.ephemeral(), resources=resources_for())
    assert result.success
    metadata = result.asset_materializations_for_node("serving__cdp_serving")[0].metadata
    assert metadata["path"].value == str(run_copy / "serving" / "cdp.duckdb")
    assert metadata["table_count"].value == len(metadata["tables_published"].value) > 0
    good = _sha256(run_copy / "serving" / "cdp.duckdb")

    # Another step of the same run failed (one serving does not even depend on): nothing is published.
    @dg.asset(key="a_failing_step")
    def a_failing_step():
        raise RuntimeError("source down")

    @dg.asset(key="b_mart")
    def b_mart():
        return None

    with duckdb.connect(str(run_copy / "warehouse.duckdb")) as con:
        con.execute("delete from marts.customer_profile where hash(customer_id) % 2 = 0")
    partial = dg.materialize(
        [a_failing_step, b_mart, build_serving_asset([dg.AssetKey("b_mart")])],
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        resources=resources_for(),
    )
    assert not partial.success and "a_failing_step" in str(partial.failure_data_for_node("serving__cdp_serving").error)
    assert _sha256(run_copy / "serving" / "cdp.duckdb") == good

    # Pseudonymisation switched on without its salt: the run fails and the last good copy stays.
    import yaml

    from pipeline.settings import DEFAULT_CONFIG

    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["serving"] = {**config.get("serving", {}), "pseudonymise": True, "salt_env": "CDP_TEST_UNSET_SALT"}
    (tmp_path / "cdp.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("CDP_CONFIG", str(tmp_path / "cdp.yaml"))
    monkeypatch.delenv("CDP_TEST_UNSET_SALT", raising=False)
    failed = dg.materialize(
        [cdp_serving], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, resources=resources_for()
    )
    assert not failed.success
    assert "CDP_TEST_UNSET_SALT" in str(failed.failure_data_for_node("serving__cdp_serving").error)
    assert _sha256(run_copy / "serving" / "cdp.duckdb") == good


def test_dbt_descriptions_reach_the_served_copy_and_parquet(run_copy):
    """What the dbt YAML documents arrives in BI: DuckDB comments in the serving file, Parquet field metadata."""
    import pyarrow.parquet as pq

    from pipeline.defs.dbt.resources import dbt_project

    out = serving.serving_dir(run_copy)
    serving.publish(run_copy / "warehouse.duckdb", out)
    manifest = json.loads(Path(dbt_project.manifest_path).read_text())
    documented = {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"].get("schema") == "marts"
    }
    assert documented
    with duckdb.connect(str(out / "cdp.duckdb"), read_only=True) as con:
        for name, node in documented.items():
            table_comment = con.execute(
                "select comment from duckdb_views() where schema_name = 'marts' and view_name = ?", [name]
            ).fetchone()[0]
            assert table_comment == (node["description"] or None), name
            comments = dict(
                con.execute(
                    "select column_name, comment from duckdb_columns() where schema_name = 'marts' and table_name = ?",
                    [name],
                ).fetchall()
            )
            parquet = pq.read_schema(next((out / "parquet" / name).glob("*.parquet")))
            for column, spec in node["columns"].items():
                if column.startswith(serving.MODEL_STATE_PREFIX):  # a model's bookkeeping: documented, not served
                    assert column not in comments, f"{name}.{column}"
                elif spec.get("description"):
                    assert comments[column] == spec["description"], f"{name}.{column}"
                    assert parquet.field(column).metadata[b"description"].decode() == spec["description"]
