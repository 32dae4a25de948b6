"""Data quality: GX suites on real DuckDB tables with planted bad rows, freshness / volume / row-count helpers,
and the Dagster asset checks built on them."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pytest

from pipeline.lib.expectations import (
    SUITES_DIR,
    check_freshness,
    check_row_count_drop,
    check_volume,
    load_suite_json,
    read_for_validation,
    validate_table,
)
from pipeline.lib import ingest
from pipeline.lib.sources import registry

# The raw suites as the pipeline builds them for the demo shop (IDR): derived from the source registry.
RAW_SUITES = {f"raw_{name}": ingest.raw_suite(ingest.spec(name, ingest.Limits(currency="IDR")))
              for name in registry.TABLES}

DAY = date(2024, 3, 15)


def _raw_orders_sql(n: int, days: int = 1) -> str:
    """Clean raw orders, n rows spread over `days` partitions ending at DAY."""
    return f"""
        select 'O' || lpad(cast(i as varchar), 8, '0') as order_id,
               case when i % 10 = 0 then null else 'C' || (i % 500) end as customer_id,
               null::varchar as guest_email, null::varchar as guest_phone,
               '2024-03-15T10:00:00+07:00' as ordered_at,
               (['pending','paid','shipped','completed','cancelled','refunded'])[1 + i % 6] as status,
               (['web','app','marketplace','store'])[1 + i % 4] as channel,
               'IDR' as currency, 100000.0 + i as gross_amount, 5000.0 as discount_amount,
               10000.0 as shipping_amount, 105000.0 + i as net_amount,
               null::varchar as promo_code, null::varchar as referral_code,
               '2024-03-15T11:00:00+07:00' as updated_at,
               date '{DAY}' - cast(i % {days} as integer) as _partition_date,
               timestamp '2024-03-16 01:00:00' as _loaded_at, 'webshop' as _source
        from range({n}) t(i)"""


@pytest.fixture()
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    connection.execute("create schema raw; create schema marts")
    yield connection
    connection.close()


def _failed(outcome, severity: str) -> set[str]:
    failures = outcome.critical_failures if severity == "critical" else outcome.warnings
    return {r.label for r in failures}


def test_every_suite_loads_into_gx_and_declares_severities():
    import great_expectations as gx

    gx.get_context(mode="ephemeral")
    names = sorted(p.stem for p in SUITES_DIR.glob("*.json"))
    assert names == sorted([
        "marts_customer_profile", "marts_customer_segments", "marts_customer_clv", "marts_customer_equity",
    ])
    documents = {**{name: load_suite_json(name) for name in names}, **RAW_SUITES}  # raises on a missing severity
    for name, document in documents.items():
        suite = gx.ExpectationSuite(**document)
        assert suite.name == name and len(suite.expectations) == len(document["expectations"]) >= 5


def test_clean_orders_pass_every_expectation(con):
    con.execute(f"create table raw.webshop_orders as {_raw_orders_sql(2000)}")
    outcome = validate_table(con, "raw.webshop_orders", RAW_SUITES["raw_webshop_orders"])
    assert outcome.success, outcome.summary
    assert not outcome.warnings and outcome.row_count == outcome.validated_rows == 2000
    assert len(outcome.results) == len(RAW_SUITES["raw_webshop_orders"]["expectations"])


def test_planted_bad_orders_fail_exactly_their_expectations(con):
    con.execute(f"create table raw.webshop_orders as {_raw_orders_sql(1000)}")
    con.execute("update raw.webshop_orders set net_amount = -net_amount where order_id in ('O00000003', 'O00000004')")
    con.execute("update raw.webshop_orders set status = 'lost_in_transit' where order_id = 'O00000005'")
    con.execute("update raw.webshop_orders set order_id = null where order_id = 'O00000006'")
    con.execute("update raw.webshop_orders set currency = 'USD' where order_id = 'O00000007'")
    con.execute("insert into raw.webshop_orders select * from raw.webshop_orders where order_id = 'O00000008'")

    outcome = validate_table(con, "raw.webshop_orders", RAW_SUITES["raw_webshop_orders"])

    assert not outcome.success
    assert _failed(outcome, "critical") == {
        "expect_column_values_to_be_between(net_amount)",
        "expect_column_values_to_be_in_set(status)",
        "expect_column_values_to_not_be_null(order_id)",
        "expect_column_values_to_be_in_set(currency)",  # landing quarantines other currencies: critical here too
    }
    assert _failed(outcome, "warning") == {
        "expect_compound_columns_to_be_unique(order_id,updated_at)",
    }
    by_label = {r.label: r for r in outcome.critical_failures + outcome.warnings}
    negative = by_label["expect_column_values_to_be_between(net_amount)"]
    assert negative.observed["unexpected_count"] == 2
    assert sorted(negative.observed["unexpected_examples"]) == [-105004.0, -105003.0]
    assert "2 of 1001 rows unexpected" in negative.reason
    assert by_label["expect_column_values_to_be_in_set(status)"].observed["unexpected_examples"] == ["lost_in_transit"]
    duplicate = by_label["expect_compound_columns_to_be_unique(order_id,updated_at)"]
    assert duplicate.observed["unexpected_count"] == 2
    assert duplicate.observed["unexpected_examples"] == [["O00000008", "2024-03-15T11:00:00+07:00"]]
    assert "[critical] expect_column_values_to_be_in_set(status)" in outcome.summary


def test_survey_scores_are_checked_per_survey_type(con):
    con.execute("""
        create table raw.survey_responses as
        select 'R' || i as response_id, '2024-03-15 09:00:00' as submitted_at,
               case when i % 2 = 0 then 'nps' else 'csat' end as survey,
               case when i % 2 = 0 then i % 11 else 1 + i % 5 end as score,
               null as comment, 'a' || i || '@mail.id' as email, null as phone, null as order_ref, true as consent,
               date '2024-03-15' as _partition_date, timestamp '2024-03-16 01:00:00' as _loaded_at, 'survey' as _source
        from range(500) t(i)""")
    con.execute("update raw.survey_responses set score = 11 where response_id = 'R10'")  # NPS out of range
    con.execute("update raw.survey_responses set score = 0 where response_id = 'R11'")  # CSAT out of range
    con.execute("update raw.survey_responses set score = 9 where response_id = 'R13'")  # valid NPS, not CSAT
    outcome = validate_table(con, "raw.survey_responses", RAW_SUITES["raw_survey_responses"])
    failed = {r.label: r for r in outcome.critical_failures}
    assert set(failed) == {
        "expect_column_values_to_be_between(score) where survey == 'nps'",
        "expect_column_values_to_be_between(score) where survey == 'csat'",
    }
    assert failed["expect_column_values_to_be_between(score) where survey == 'nps'"].observed["unexpected_examples"] == [11]
    csat = failed["expect_column_values_to_be_between(score) where survey == 'csat'"]
    assert sorted(csat.observed["unexpected_examples"]) == [0, 9] and csat.observed["element_count"] == 250


def test_schema_change_is_a_critical_failure_with_the_missing_column_named(con):
    con.execute(f"create table raw.webshop_orders as {_raw_orders_sql(300)}")
    con.execute("alter table raw.webshop_orders rename column status to order_status")
    outcome = validate_table(con, "raw.webshop_orders", RAW_SUITES["raw_webshop_orders"])
    by_label = {r.label: r for r in outcome.critical_failures}
    assert set(by_label) == {"expect_table_columns_to_match_set", "expect_column_values_to_be_in_set(status)",
                             "expect_column_values_to_not_be_null(status)"}
    assert by_label["expect_table_columns_to_match_set"].reason == "missing columns ['status']"
    assert "status" in by_label["expect_column_values_to_be_in_set(status)"].reason


def test_a_window_is_validated_on_its_own_rows(con):
    """One bad day among weeks of good ones: diluted in the whole table, caught in its own window."""
    con.execute(f"create table raw.webshop_orders as {_raw_orders_sql(3000, days=30)}")
    con.execute(f"update raw.webshop_orders set channel = null where _partition_date = date '{DAY}'")
    whole = validate_table(con, "raw.webshop_orders", RAW_SUITES["raw_webshop_orders"])
    assert whole.success and not whole.warnings  # 100 NULLs in 3000 rows is within mostly=0.9
    day = validate_table(con, "raw.webshop_orders", RAW_SUITES["raw_webshop_orders"], window=(DAY, DAY))
    assert day.row_count == 100 and day.window == (DAY, DAY)
    # A share of null channels is a table-level rate: landing cannot quarantine it row by row, so it warns.
    assert day.success and "expect_column_values_to_not_be_null(channel)" in _failed(day, "warning")
    assert f"in partitions {DAY}..{DAY}" in day.summary
    earlier = validate_table(con, "raw.webshop_orders", RAW_SUITES["raw_webshop_orders"],
                             window=(DAY - timedelta(days=7), DAY - timedelta(days=1)))
    assert earlier.success and earlier.row_count == 700


def test_missing_table_is_one_critical_failure(con):
    outcome = validate_table(con, "raw.webshop_orders", RAW_SUITES["raw_webshop_orders"])
    assert not outcome.success and outcome.row_count == 0
    assert [r.label for r in outcome.critical_failures] == ["expect_table_to_exist"]


def test_profile_formats_and_uniqueness(con):
    columns = [e for e in load_suite_json("marts_customer_profile")["expectations"]
               if e["type"] == "expect_table_columns_to_match_set"][0]["kwargs"]["column_set"]
    con.execute("""
        create table marts.customer_profile as
        select 'C' || lpad(cast(i as varchar), 10, '0') as customer_id, 'Budi Santoso' as full_name,
               'budi' || i || '@gmail.com' as email, '+62812' || lpad(cast(i as varchar), 7, '0') as phone,
               'Bandung' as city, 'Jawa Barat' as province, 'end_customer' as customer_type,
               true as marketing_consent, true as has_account,
               timestamp '2024-01-02 10:00' as first_order_at, timestamp '2024-03-01 10:00' as last_order_at,
               3 as order_count, 300000.0 as revenue, 0.0 as discount_total, 0.0 as refund_total,
               0 as discounted_order_count, 100000.0 as avg_order_value, ['web'] as channels, 1 as ticket_count,
               0 as open_ticket_count, 5.5 as median_resolution_hours, 4.0 as csat_avg, 9 as latest_nps,
               true as is_promoter, false as is_detractor, 0 as referral_count,
               timestamp '2024-01-02 10:00' as first_seen_at, timestamp '2024-03-01 10:00' as last_activity_at,
               14 as days_since_last_activity, date '2024-03-15' as as_of_date
        from range(400) t(i)""")
    assert set(columns) <= {c[0] for c in con.execute("describe marts.customer_profile").fetchall()}
    con.execute("update marts.customer_profile set phone = '0812-555-0101' where customer_id = 'C0000000001'")
    con.execute("update marts.customer_profile set email = 'Budi@Gmail.com' where customer_id = 'C0000000002'")
    con.execute("update marts.customer_profile set csat_avg = 6 where customer_id = 'C0000000003'")
    con.execute("update marts.customer_profile set customer_id = 'C0000000005' where customer_id = 'C0000000004'")
    outcome = validate_table(con, "marts.customer_profile", "marts_customer_profile")
    assert _failed(outcome, "critical") == {
        "expect_column_values_to_match_regex(phone)",
        "expect_column_values_to_be_between(csat_avg)",
        "expect_column_values_to_be_unique(customer_id)",
    }
    assert _failed(outcome, "warning") == {"expect_column_values_to_match_regex(email)"}
    by_label = {r.label: r for r in outcome.critical_failures + outcome.warnings}
    assert by_label["expect_column_values_to_match_regex(phone)"].observed["unexpected_examples"] == ["0812-555-0101"]
    assert by_label["expect_column_values_to_be_unique(customer_id)"].observed["unexpected_examples"] == ["C0000000005"]


def test_large_tables_are_sampled_deterministically_but_uniqueness_uses_all_rows(con):
    con.execute(f"create table raw.webshop_orders as {_raw_orders_sql(60_000)}")
    # One duplicated version: a 5k sample would almost surely miss it, the SQL check over all rows does not.
    con.execute("insert into raw.webshop_orders select * from raw.webshop_orders where order_id = 'O00012345'")
    outcome = validate_table(con, "raw.webshop_orders", RAW_SUITES["raw_webshop_orders"], sample_rows=5_000)
    assert outcome.sampled and outcome.row_count == 60_001 and outcome.validated_rows == 5_000
    assert outcome.success and _failed(outcome, "warning") == {"expect_compound_columns_to_be_unique(order_id,updated_at)"}
    first = read_for_validation(con, "raw.webshop_orders", 60_001, 5_000)
    second = read_for_validation(con, "raw.webshop_orders", 60_001, 5_000)
    assert first["order_id"].tolist() == second["order_id"].tolist()


def test_volume_anomaly_flags_a_ninety_percent_drop(con):
    con.execute(f"create table raw.webshop_orders as {_raw_orders_sql(14 * 1000, days=14)}")
    steady = check_volume(con, "raw.webshop_orders", DAY, trailing_days=7, max_deviation=0.5)
    assert not steady.anomalous and steady.row_count == 1000 and steady.baseline == 1000.0
    # The next day delivers 100 rows: -90% against the trailing week.
    con.execute(f"""insert into raw.webshop_orders select * replace (date '{DAY + timedelta(days=1)}' as _partition_date)
                    from raw.webshop_orders where _partition_date = date '{DAY}' limit 100""")
    drop = check_volume(con, "raw.webshop_orders", trailing_days=7, max_deviation=0.5)
    assert drop.day == DAY + timedelta(days=1) and drop.row_count == 100
    assert drop.anomalous and drop.deviation == pytest.approx(-0.9)
    assert "-90%" in drop.reason
    # Days without rows count as zero in the baseline; too small a baseline is not judged.
    sparse = check_volume(con, "raw.webshop_orders", DAY + timedelta(days=30), trailing_days=7, min_baseline_rows=10)
    assert sparse.row_count == 0 and not sparse.anomalous and sparse.deviation is None


def test_freshness_flags_an_empty_partition(con):
    con.execute(f"create table raw.webshop_orders as {_raw_orders_sql(300, days=3)}")
    delivered = check_freshness(con, "raw.webshop_orders", DAY)
    assert delivered.fresh and delivered.rows_in_window == 100
    assert str(delivered.last_loaded_at) == "2024-03-16 01:00:00" and delivered.latest_partition == DAY
    empty = check_freshness(con, "raw.webshop_orders", DAY + timedelta(days=1))
    assert not empty.fresh and empty.rows_in_window == 0
    assert f"0 rows in partition {DAY + timedelta(days=1)}" in empty.reason
    window = check_freshness(con, "raw.webshop_orders", DAY - timedelta(days=5), DAY - timedelta(days=1))
    assert window.fresh and window.rows_in_window == 200


def test_row_count_drop():
    assert check_row_count_drop(None, 50).dropped is False
    assert check_row_count_drop(1000, 850, max_drop_fraction=0.2).dropped is False
    dropped = check_row_count_drop(1000, 100, max_drop_fraction=0.2)
    assert dropped.dropped and dropped.drop_fraction == pytest.approx(0.9)
    assert check_row_count_drop(1000, 5000).dropped is False  # growth is not a drop


# ---------------------------------------------------------------- Dagster asset checks on a small real graph


def _check_results(result) -> dict[str, object]:
    return {f"{e.asset_check_evaluation_data.asset_key.to_user_string()}:{e.asset_check_evaluation_data.check_name}":
            e.asset_check_evaluation_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def test_blocking_raw_check_stops_downstream_assets(tmp_path, monkeypatch):
    """Real checks from pipeline.defs.quality on a raw asset + one downstream mart, in real Dagster runs."""
    import dagster as dg

    from pipeline.defs.quality.checks import quality_checks
    from pipeline.lib.partitions import daily_partitions

    warehouse = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("CDP_WAREHOUSE", str(warehouse))
    delivery = {"sql": _raw_orders_sql(1500, days=15)}

    @dg.asset(key=["raw", "webshop_orders"], partitions_def=daily_partitions)
    def webshop_orders() -> None:
        with duckdb.connect(str(warehouse)) as con:
            con.execute("create schema if not exists raw")
            con.execute(f"create or replace table raw.webshop_orders as {delivery['sql']}")

    @dg.asset(key=["marts", "order_totals"], deps=[webshop_orders])
    def order_totals() -> None:
        with duckdb.connect(str(warehouse)) as con:
            con.execute("create schema if not exists marts")
            con.execute("create or replace table marts.order_totals as "
                        "select count(*) as orders, sum(net_amount) as revenue from raw.webshop_orders")

    checks = [c for c in quality_checks if next(iter(c.check_keys)).asset_key == dg.AssetKey(["raw", "webshop_orders"])]
    assert {next(iter(c.check_keys)).name for c in checks} == {"expectations", "freshness", "volume_anomaly", "row_count_drop"}
    instance = dg.DagsterInstance.ephemeral()

    def run():
        return dg.materialize([webshop_orders, order_totals, *checks], partition_key=str(DAY), instance=instance,
                              raise_on_error=False)

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
    delivery["sql"] = f"select * rename (status as order_status) from ({_raw_orders_sql(1200, days=15)})"
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
    delivery["sql"] = (f"select * from ({_raw_orders_sql(1500, days=15)}) "
                       f"where _partition_date < date '{DAY}' or order_id < 'O00000150'")
    thin = run()
    assert thin.success
    volume = _check_results(thin)["raw/webshop_orders:volume_anomaly"]
    assert not volume.passed and volume.severity == dg.AssetCheckSeverity.WARN
    assert volume.metadata["rows"].value == 10 and volume.metadata["deviation"].value == pytest.approx(-0.9)
    assert totals()[0] == 1410

    # The whole table shrinks to a tenth: the row-count-drop check warns against the previous check's count.
    delivery["sql"] = _raw_orders_sql(141, days=15)
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
        tables = {f"{s}.{t}" for s, t in con.execute("select table_schema, table_name from information_schema.tables").fetchall()}
        suites = {p.stem: p.stem.replace("_", ".", 1) for p in SUITES_DIR.glob("*.json")}
        suites.update({name: name.replace("_", ".", 1) for name in RAW_SUITES})
        checked = {suite: validate_table(con, table, RAW_SUITES.get(suite, suite)) for suite, table in suites.items()
                   if table.startswith("raw.") or table in tables}
    assert {s for s in checked if s.startswith("raw_")} == {s for s in suites if s.startswith("raw_")}
    for outcome in checked.values():
        assert outcome.row_count > 0 and outcome.success, outcome.summary


def _defs_with_quality_checks():
    """The project's Definitions plus the quality checks it does not wire yet (for assets it has)."""
    import dagster as dg

    from pipeline.defs.quality.checks import quality_checks
    from pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    extra = [c for c in quality_checks
             if not set(c.check_keys) & set(graph.asset_check_keys)
             and next(iter(c.check_keys)).asset_key in graph.get_all_asset_keys()]
    return dg.Definitions.merge(defs, dg.Definitions(asset_checks=extra)) if extra else defs


def _model_fingerprints(con) -> dict[str, tuple]:
    """Row count and content hash of every table the models build (staging, intermediate, marts)."""
    tables = con.execute("select table_schema || '.' || table_name from information_schema.tables "
                         "where table_schema in ('staging', 'intermediate', 'marts') order by 1").fetchall()
    return {name: con.execute(f"select count(*), md5(coalesce(string_agg(cast(t as varchar), '|' "
                              f"order by cast(t as varchar)), '')) from {name} t").fetchone()
            for (name,) in tables}


def test_schema_change_at_a_source_blocks_the_downstream_models(demo_run, tmp_path, monkeypatch):
    """The webshop renames `orders.channel`: the nightly run's webshop asset fails naming source, table and column,
    raw keeps its last good rows and nothing downstream is rebuilt: yesterday's outputs stay."""
    import shutil
    import sqlite3

    import dagster as dg

    from pipeline.cli import RANGE_END_TAG, RANGE_START_TAG

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

    job = _defs_with_quality_checks().resolve_job_def("cdp_nightly")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
                                    tags={RANGE_START_TAG: day.isoformat(), RANGE_END_TAG: day.isoformat()})

    assert not result.success
    # The webshop asset refuses the delivery, naming source, table and column; the other sources land normally.
    failure = next(e for e in result.get_step_failure_events() if e.step_key == "webshop")
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
        landed = con.execute("select count(*), count(channel) from raw.webshop_orders where _partition_date = ?",
                             [day]).fetchone()
    assert "sales_channel" not in columns and landed[0] == landed[1] > 0  # raw kept the last good delivery
