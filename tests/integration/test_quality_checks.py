"""The Dagster asset checks built on the quality helpers: on a small real graph, and in the real pipeline on the
demo data (the suites hold; a schema change at a source blocks the downstream models)."""

from __future__ import annotations

import duckdb
import pytest

from pipeline.defs.resources import resources_for
from pipeline.lib.expectations import SUITES_DIR, validate_table
from tests.support.raw_quality import DAY, RAW_SUITES, raw_orders_sql


def _check_results(result) -> dict[str, object]:
    evaluations = [
        e.asset_check_evaluation_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    return {f"{e.asset_key.to_user_string()}:{e.check_name}": e for e in evaluations}


def test_blocking_raw_check_stops_downstream_assets(tmp_path, monkeypatch):
    """Real checks from pipeline.defs.quality on a raw asset + one downstream mart, in real Dagster runs."""
    import dagster as dg

    from pipeline.defs.partitions import daily_partitions
    from pipeline.defs.quality.checks import quality_checks

    warehouse = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("CDP_WAREHOUSE", str(warehouse))
    delivery = {"sql": raw_orders_sql(1500, days=15)}

    @dg.asset(key=["raw", "webshop_orders"], partitions_def=daily_partitions)
    def webshop_orders() -> None:
        with duckdb.connect(str(warehouse)) as con:
            con.execute("create schema if not exists raw")
            con.execute(f"create or replace table raw.webshop_orders as {delivery['sql']}")

    @dg.asset(key=["marts", "order_totals"], deps=[webshop_orders])
    def order_totals() -> None:
        with duckdb.connect(str(warehouse)) as con:
            con.execute("create schema if not exists marts")
            con.execute(
                "create or replace table marts.order_totals as "
                "select count(*) as orders, sum(net_amount) as revenue from raw.webshop_orders"
            )

    checks = [c for c in quality_checks if next(iter(c.check_keys)).asset_key == dg.AssetKey(["raw", "webshop_orders"])]
    assert {next(iter(c.check_keys)).name for c in checks} == {
        "expectations",
        "freshness",
        "volume_anomaly",
        "row_count_drop",
    }
    instance = dg.DagsterInstance.ephemeral()

    def run():
        return dg.materialize(
            [webshop_orders, order_totals, *checks],
            partition_key=str(DAY),
            instance=instance,
            raise_on_error=False,
            resources=resources_for(),
        )

    def totals():
        with duckdb.connect(str(warehouse), read_only=True) as con:
            return con.execute("select orders, revenue from marts.order_totals").fetchone()

    clean = run()
    assert clean.success
    evaluations = _check_results(clean)
    assert all(e.passed for e in evaluations.values()), {k: e.metadata for k, e in evaluations.items()}
    assert evaluations["raw/webshop_orders:freshness"].metadata["window"].value == f"{DAY}..{DAY}"
    before = totals()
    assert before[0] == 1500

    # The source renames a column: the rows land with a different schema, the blocking check fails.
    delivery["sql"] = f"select * rename (status as order_status) from ({raw_orders_sql(1200, days=15)})"
    broken = run()
    assert not broken.success
    failed = _check_results(broken)["raw/webshop_orders:expectations"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    reasons = {f["expectation"]: f["reason"] for f in failed.metadata["failed_expectations"].value}
    assert reasons["expect_table_columns_to_match_set"] == "missing columns ['status']"
    materialized = {e.asset_key.to_user_string() for e in broken.get_asset_materialization_events()}
    assert materialized == {"raw/webshop_orders"}
    assert totals() == before  # the mart kept its previous output

    # Valid rows but 90% fewer on the run's day: the volume check warns, downstream still runs.
    delivery["sql"] = (
        f"select * from ({raw_orders_sql(1500, days=15)}) "
        f"where _partition_date < date '{DAY}' or order_id < 'O00000150'"
    )
    thin = run()
    assert thin.success
    volume = _check_results(thin)["raw/webshop_orders:volume_anomaly"]
    assert not volume.passed and volume.severity == dg.AssetCheckSeverity.WARN
    assert volume.metadata["rows"].value == 10 and volume.metadata["deviation"].value == pytest.approx(-0.9)
    assert totals()[0] == 1410

    # The whole table shrinks to a tenth: the row-count-drop check warns against the previous check's count.
    delivery["sql"] = raw_orders_sql(141, days=15)
    truncated = run()
    assert truncated.success
    drop = _check_results(truncated)["raw/webshop_orders:row_count_drop"]
    assert not drop.passed and drop.severity == dg.AssetCheckSeverity.WARN
    assert drop.metadata["previous_row_count"].value == 1410 and drop.metadata["row_count"].value == 141


# ---------------------------------------------------------------- the real pipeline on the demo data


def test_suites_hold_on_the_demo_run(demo_run):
    """After ingest's quarantine and the models, the real demo tables meet every critical expectation
    (raw tables must exist; mart suites are checked for the marts the pipeline builds)."""
    with duckdb.connect(str(demo_run.warehouse), read_only=True) as con:
        tables = {
            f"{s}.{t}"
            for s, t in con.execute("select table_schema, table_name from information_schema.tables").fetchall()
        }
        suites = {p.stem: p.stem.replace("_", ".", 1) for p in SUITES_DIR.glob("*.json")}
        suites.update({name: name.replace("_", ".", 1) for name in RAW_SUITES})
        checked = {
            suite: validate_table(con, table, RAW_SUITES.get(suite, suite))
            for suite, table in suites.items()
            if table.startswith("raw.") or table in tables
        }
    assert {s for s in checked if s.startswith("raw_")} == {s for s in suites if s.startswith("raw_")}
    for outcome in checked.values():
        assert outcome.row_count > 0 and outcome.success, outcome.summary


def _defs_with_quality_checks():
    """The project's Definitions plus the quality checks it does not wire yet (for assets it has)."""
    import dagster as dg

    from pipeline.definitions import defs
    from pipeline.defs.quality.checks import quality_checks

    graph = defs.resolve_asset_graph()
    extra = [
        c
        for c in quality_checks
        if not set(c.check_keys) & set(graph.asset_check_keys)
        and next(iter(c.check_keys)).asset_key in graph.get_all_asset_keys()
    ]
    return dg.Definitions.merge(defs, dg.Definitions(asset_checks=extra)) if extra else defs


def _model_fingerprints(con) -> dict[str, tuple]:
    """Row count and content hash of every table the models build (staging, intermediate, marts)."""
    tables = con.execute(
        "select table_schema || '.' || table_name from information_schema.tables "
        "where table_schema in ('staging', 'intermediate', 'marts') order by 1"
    ).fetchall()
    return {
        name: con.execute(
            f"select count(*), md5(coalesce(string_agg(cast(t as varchar), '|' "
            f"order by cast(t as varchar)), '')) from {name} t"
        ).fetchone()
        for (name,) in tables
    }


def test_schema_change_at_a_source_blocks_the_downstream_models(demo_run, tmp_path, monkeypatch):
    """The webshop renames `orders.channel`: the nightly run's webshop asset fails naming source, table and column,
    raw keeps its last good rows and nothing downstream is rebuilt: yesterday's outputs stay."""
    import shutil
    import sqlite3

    import dagster as dg

    from pipeline.defs.jobs import nightly_job
    from pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG

    data_dir = tmp_path / "data"
    shutil.copytree(demo_run.data_dir, data_dir)
    monkeypatch.setenv("CDP_DATA_DIR", str(data_dir))
    monkeypatch.delenv("CDP_WAREHOUSE", raising=False)
    warehouse = data_dir / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        before = _model_fingerprints(con)
    assert "staging.stg_webshop__orders" in before
    with sqlite3.connect(data_dir / "demo" / "webshop.sqlite") as source:
        source.execute("alter table orders rename column channel to sales_channel")
    day = demo_run.end

    job = _defs_with_quality_checks().resolve_job_def(nightly_job.name)
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        tags={RANGE_START_TAG: day.isoformat(), RANGE_END_TAG: day.isoformat()},
    )

    assert not result.success
    # The webshop asset refuses the delivery, naming source, table and column; the other sources land normally.
    failure = next(e for e in result.get_step_failure_events() if e.step_key == "raw__webshop")
    message = failure.event_specific_data.error.cause.message
    assert "webshop" in message and "orders" in message and "'channel'" in message and "required" in message
    evaluations = _check_results(result)
    for table in ("helpdesk_tickets", "survey_responses"):
        assert evaluations[f"raw/{table}:expectations"].metadata["critical_failures"].value == 0
    materialized = {e.asset_key.path[0] for e in result.get_asset_materialization_events()}
    assert materialized == {"raw"}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert _model_fingerprints(con) == before
        columns = {r[0] for r in con.execute("describe raw.webshop_orders").fetchall()}
        landed = con.execute(
            "select count(*), count(channel) from raw.webshop_orders where _partition_date = ?", [day]
        ).fetchone()
    assert "sales_channel" not in columns and landed[0] == landed[1] > 0  # raw kept the last good delivery
