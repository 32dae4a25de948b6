"""Data quality: GX suites on real DuckDB tables with planted bad rows, and the freshness / volume / row-count
helpers the asset checks are built on."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pytest

from pipeline.lib.expectations import (
    FULL_TABLE_TYPES,
    SUITES_DIR,
    _gx_results,
    check_freshness,
    check_row_count_drop,
    check_volume,
    load_suite_json,
    read_for_validation,
    validate_table,
)
from tests.support.raw_quality import DAY, RAW_SUITES, raw_orders_sql


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
    assert names == sorted(
        [
            "marts_customer_profile",
            "marts_customer_segments",
            "marts_customer_clv",
            "marts_customer_equity",
        ]
    )
    documents = {**{name: load_suite_json(name) for name in names}, **RAW_SUITES}  # raises on a missing severity
    for name, document in documents.items():
        suite = gx.ExpectationSuite(**document)
        assert suite.name == name and len(suite.expectations) == len(document["expectations"]) >= 5


def test_clean_orders_pass_every_expectation(con):
    con.execute(f"create table raw.webshop_orders as {raw_orders_sql(2000)}")
    outcome = validate_table(con, "raw.webshop_orders", RAW_SUITES["raw_webshop_orders"])
    assert outcome.success, outcome.summary
    assert not outcome.warnings and outcome.row_count == outcome.validated_rows == 2000
    assert len(outcome.results) == len(RAW_SUITES["raw_webshop_orders"]["expectations"])


def test_planted_bad_orders_fail_exactly_their_expectations(con):
    con.execute(f"create table raw.webshop_orders as {raw_orders_sql(1000)}")
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
    assert by_label["expect_column_values_to_be_in_set(status)"].observed["unexpected_examples"] == ["xxxx_xx_xxxxxxx"]
    duplicate = by_label["expect_compound_columns_to_be_unique(order_id,updated_at)"]
    assert duplicate.observed["unexpected_count"] == 2
    assert duplicate.observed["unexpected_examples"] == [["X99999999", "9999-99-99X99:99:99+99:99"]]
    assert "[critical] expect_column_values_to_be_in_set(status)" in outcome.summary


def test_set_wise_expectations_agree_with_gx_on_hostile_rows(con):
    """The set-wise evaluation is GX's semantics in DuckDB: on planted bad rows of every kind the suites use (nulls
    under a `mostly`, out-of-range and out-of-set values, a row condition, a broken regex, a pair out of order),
    each expectation passes or fails as GX's pandas engine decides, with GX's counts."""
    con.execute(f"create table raw.webshop_orders as {raw_orders_sql(600)}")
    con.execute("update raw.webshop_orders set channel = null where order_id < 'O00000100'")  # 1/6: over 10 %
    con.execute("update raw.webshop_orders set net_amount = -1 where order_id in ('O00000201', 'O00000202')")
    con.execute("update raw.webshop_orders set status = 'Paid ' where order_id = 'O00000300'")
    con.execute("update raw.webshop_orders set customer_id = null, guest_email = null where order_id = 'O00000400'")
    suite = RAW_SUITES["raw_webshop_orders"]
    extra = [
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "order_id", "regex": "^O0+[1-5]"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "gross_amount", "max_value": 100100}},
        {
            "type": "expect_column_values_to_not_be_null",
            "kwargs": {
                "column": "customer_id",
                "mostly": 0.95,
                "row_condition": {
                    "type": "comparison",
                    "column": {"name": "status"},
                    "operator": "==",
                    "parameter": "paid",
                },
            },
        },
        {
            "type": "expect_column_pair_values_a_to_be_greater_than_b",
            "kwargs": {
                "column_A": "net_amount",
                "column_B": "gross_amount",
                "ignore_row_if": "either_value_is_missing",
            },
        },
    ]
    expectations = suite["expectations"] + [{**e, "meta": {"severity": "warning"}} for e in extra]
    outcome = validate_table(con, "raw.webshop_orders", {**suite, "expectations": expectations})
    per_row = [e for e in expectations if e["type"] not in FULL_TABLE_TYPES]
    reference = _gx_results(con.execute("select * from raw.webshop_orders").df(), per_row, suite["name"])
    ours_per_row = [r for e, r in zip(expectations, outcome.results, strict=True) if e["type"] not in FULL_TABLE_TYPES]
    assert sum(not r.success for r in reference) >= 6
    for ours, gx_result in zip(ours_per_row, reference, strict=True):
        assert ours.success == gx_result.success, gx_result.label
        for key in ("element_count", "unexpected_count", "missing_columns"):
            assert ours.observed.get(key) == gx_result.observed.get(key), (gx_result.label, key)


def test_an_expectation_without_a_set_wise_form_is_evaluated_by_gx(con):
    con.execute(f"create table raw.webshop_orders as {raw_orders_sql(50)}")
    con.execute("update raw.webshop_orders set order_id = 'O1' where order_id = 'O00000007'")
    lengths = {
        "type": "expect_column_value_lengths_to_be_between",
        "kwargs": {"column": "order_id", "min_value": 9, "max_value": 9},
        "meta": {"severity": "critical"},
    }
    outcome = validate_table(con, "raw.webshop_orders", {"name": "lengths", "expectations": [lengths]})
    [result] = outcome.critical_failures
    assert result.observed["unexpected_count"] == 1 and result.observed["unexpected_examples"] == ["X9"]


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
    assert failed["expect_column_values_to_be_between(score) where survey == 'nps'"].observed[
        "unexpected_examples"
    ] == [11]
    csat = failed["expect_column_values_to_be_between(score) where survey == 'csat'"]
    assert sorted(csat.observed["unexpected_examples"]) == [0, 9] and csat.observed["element_count"] == 250


def test_schema_change_is_a_critical_failure_with_the_missing_column_named(con):
    con.execute(f"create table raw.webshop_orders as {raw_orders_sql(300)}")
    con.execute("alter table raw.webshop_orders rename column status to order_status")
    outcome = validate_table(con, "raw.webshop_orders", RAW_SUITES["raw_webshop_orders"])
    by_label = {r.label: r for r in outcome.critical_failures}
    assert set(by_label) == {
        "expect_table_columns_to_match_set",
        "expect_column_values_to_be_in_set(status)",
        "expect_column_values_to_not_be_null(status)",
    }
    assert by_label["expect_table_columns_to_match_set"].reason == "missing columns ['status']"
    assert "status" in by_label["expect_column_values_to_be_in_set(status)"].reason


def test_a_window_is_validated_on_its_own_rows(con):
    """One bad day among weeks of good ones: diluted in the whole table, caught in its own window."""
    con.execute(f"create table raw.webshop_orders as {raw_orders_sql(3000, days=30)}")
    con.execute(f"update raw.webshop_orders set channel = null where _partition_date = date '{DAY}'")
    whole = validate_table(con, "raw.webshop_orders", RAW_SUITES["raw_webshop_orders"])
    assert whole.success and not whole.warnings  # 100 NULLs in 3000 rows is within mostly=0.9
    day = validate_table(con, "raw.webshop_orders", RAW_SUITES["raw_webshop_orders"], window=(DAY, DAY))
    assert day.row_count == 100 and day.window == (DAY, DAY)
    # A share of null channels is a table-level rate: landing cannot quarantine it row by row, so it warns.
    assert day.success and "expect_column_values_to_not_be_null(channel)" in _failed(day, "warning")
    assert f"in partitions {DAY}..{DAY}" in day.summary
    earlier = validate_table(
        con,
        "raw.webshop_orders",
        RAW_SUITES["raw_webshop_orders"],
        window=(DAY - timedelta(days=7), DAY - timedelta(days=1)),
    )
    assert earlier.success and earlier.row_count == 700


def test_missing_table_is_one_critical_failure(con):
    outcome = validate_table(con, "raw.webshop_orders", RAW_SUITES["raw_webshop_orders"])
    assert not outcome.success and outcome.row_count == 0
    assert [r.label for r in outcome.critical_failures] == ["expect_table_to_exist"]


def test_profile_formats_and_uniqueness(con):
    columns = [
        e
        for e in load_suite_json("marts_customer_profile")["expectations"]
        if e["type"] == "expect_table_columns_to_match_set"
    ][0]["kwargs"]["column_set"]
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
    # Any valid E.164 number is a profile phone (a Singapore customer must not stop segments, CLV and serving).
    con.execute("update marts.customer_profile set phone = '+6582345671' where customer_id = 'C0000000006'")
    con.execute("update marts.customer_profile set customer_id = 'C0000000005' where customer_id = 'C0000000004'")
    outcome = validate_table(con, "marts.customer_profile", "marts_customer_profile")
    assert _failed(outcome, "critical") == {
        "expect_column_values_to_match_regex(phone)",
        "expect_column_values_to_be_between(csat_avg)",
        "expect_column_values_to_be_unique(customer_id)",
    }
    assert _failed(outcome, "warning") == {"expect_column_values_to_match_regex(email)"}
    by_label = {r.label: r for r in outcome.critical_failures + outcome.warnings}
    # Examples are shown in shape only: they reach metadata and logs, which erasure cannot reach.
    examples = {label: result.observed["unexpected_examples"] for label, result in by_label.items()}
    assert examples["expect_column_values_to_match_regex(phone)"] == ["9999-999-9999"]
    assert examples["expect_column_values_to_match_regex(email)"] == ["Xxxx@Xxxxx.xxx"]
    assert examples["expect_column_values_to_be_unique(customer_id)"] == ["X9999999999"]
    assert "Budi" not in outcome.summary and "0812" not in outcome.summary

    # A nightly run checks the rows it changed: bad rows outside them are not looked at again, while uniqueness
    # still covers the whole table.
    changed = "customer_id in ('C0000000002', 'C0000000005', 'C0000000010')"
    nightly = validate_table(con, "marts.customer_profile", "marts_customer_profile", changed_where=changed)
    assert nightly.changed_rows == 4 and nightly.validated_rows == 4 and nightly.row_count == 400
    assert _failed(nightly, "critical") == {"expect_column_values_to_be_unique(customer_id)"}
    assert _failed(nightly, "warning") == {"expect_column_values_to_match_regex(email)"}
    assert "4 changed of 400 rows" in nightly.summary
    quiet = validate_table(con, "marts.customer_profile", "marts_customer_profile", changed_where="false")
    assert quiet.changed_rows == 0 and _failed(quiet, "warning") == set()


def test_large_tables_are_sampled_deterministically_but_uniqueness_uses_all_rows(con):
    con.execute(f"create table raw.webshop_orders as {raw_orders_sql(60_000)}")
    # One duplicated version: a 5k sample would almost surely miss it, the SQL check over all rows does not.
    con.execute("insert into raw.webshop_orders select * from raw.webshop_orders where order_id = 'O00012345'")
    outcome = validate_table(con, "raw.webshop_orders", RAW_SUITES["raw_webshop_orders"], sample_rows=5_000)
    assert outcome.sampled and outcome.row_count == 60_001 and outcome.validated_rows == 5_000
    assert outcome.success and _failed(outcome, "warning") == {
        "expect_compound_columns_to_be_unique(order_id,updated_at)"
    }
    first = read_for_validation(con, "raw.webshop_orders", 60_001, 5_000)
    second = read_for_validation(con, "raw.webshop_orders", 60_001, 5_000)
    assert first["order_id"].tolist() == second["order_id"].tolist()


def test_volume_anomaly_flags_a_ninety_percent_drop(con):
    con.execute(f"create table raw.webshop_orders as {raw_orders_sql(14 * 1000, days=14)}")
    steady = check_volume(con, "raw.webshop_orders", DAY, trailing_days=7, max_deviation=0.5)
    assert not steady.anomalous and steady.row_count == 1000 and steady.baseline == 1000.0
    # The next day delivers 100 rows: -90% against the trailing week.
    next_day = DAY + timedelta(days=1)
    con.execute(f"""insert into raw.webshop_orders select * replace (date '{next_day}' as _partition_date)
                    from raw.webshop_orders where _partition_date = date '{DAY}' limit 100""")
    drop = check_volume(con, "raw.webshop_orders", trailing_days=7, max_deviation=0.5)
    assert drop.day == DAY + timedelta(days=1) and drop.row_count == 100
    assert drop.anomalous and drop.deviation == pytest.approx(-0.9)
    assert "-90%" in drop.reason
    # Days without rows count as zero in the baseline; too small a baseline is not judged.
    sparse = check_volume(con, "raw.webshop_orders", DAY + timedelta(days=30), trailing_days=7, min_baseline_rows=10)
    assert sparse.row_count == 0 and not sparse.anomalous and sparse.deviation is None


def test_freshness_flags_an_empty_partition(con):
    con.execute(f"create table raw.webshop_orders as {raw_orders_sql(300, days=3)}")
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
