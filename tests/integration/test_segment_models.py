"""Segment models (dbt_project/models/marts/segments) built by dbt on a warehouse of planted customers: each
planted customer lands where its rule says, thresholds come from the `segments` vars, RFM scores, the base shape,
dated history and transitions between run dates."""

from __future__ import annotations

import copy
import json
import subprocess
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.settings import load_settings
from tests.support.dbt_cli import plant_tables, run_dbt

AS_OF = date(2025, 6, 30)
SEGMENT_MODELS = [
    "customer_rfm",
    "customer_segments",
    "customer_segment_history",
    "segment_transitions",
    "customer_base_shape",
]
FLAGS = (
    "new",
    "loyal",
    "prospect",
    "high_value",
    "low_value",
    "lapsed",
    "occasional",
    "promo_driven",
    "impulsive",
    "advocate",
)

# Planted purchases: customer -> list of (days before AS_OF, net_amount, discounted).
PURCHASES = {
    "BIG": [(150, 50_000_000.0, False)],
    "LOYAL": [(10, 2e6, False), (100, 2e6, False), (200, 2e6, False), (300, 2e6, False), (700, 2e6, False)],
    "PROMO": [(20, 5e5, True), (50, 5e5, True), (150, 5e5, False), (250, 5e5, True)],
    "ADVOCATE_NPS": [(60, 8e5, False), (200, 8e5, False)],
    "LAPSED": [(400, 6e5, False), (500, 6e5, False)],
    "ADVOCATE_REF": [(150, 1e6, False)],
    "NEW": [(30, 3e5, False)],
    "OCCASIONAL": [(180, 2.5e5, False)],
    "PROMOTER_ONCE": [(120, 2e5, False)],
    "OCCASIONAL_SMALL": [(200, 1e5, False)],
    # Bought 20 minutes after opening the account, then again twice without any promotion.
    "IMPULSIVE": [(240, 4e5, False), (160, 4e5, False), (70, 4e5, False)],
    # The same first order 20 minutes after the account, but a repeat purchase came with a promo code.
    "QUICK_BUT_PROMPTED": [(260, 4e5, False), (165, 4e5, True), (75, 4e5, False)],
    # The same repeat pattern, but the first order came three days after the account was opened (and small).
    "SLOW_STARTER": [(250, 2e4, False), (170, 2e4, False), (80, 2e4, False)],
    # First order 20 minutes after the account, but a ticket came before it (asked before buying; and big).
    "ASKED_FIRST": [(230, 2e6, False), (150, 2e6, False), (65, 2e6, False)],
}
# Minutes from the first contact (account opened) to the first purchase, for the impulsive rule.
FIRST_CONTACT_MINUTES_BEFORE = {
    "IMPULSIVE": 20,
    "QUICK_BUT_PROMPTED": 20,
    "SLOW_STARTER": 3 * 24 * 60,
    "ASKED_FIRST": 20,
}
# Everything about a customer that is not an order (profile columns from accounts, tickets, surveys, referrals).
TRAITS = {
    "BIG": {"customer_type": "reseller"},
    "LOYAL": {"customer_type": "agent"},
    "ADVOCATE_NPS": {"latest_nps": 10, "is_promoter": True},
    "ADVOCATE_REF": {"referral_count": 2},
    "PROMOTER_ONCE": {"latest_nps": 9, "is_promoter": True},
    "PROSPECT_ACCOUNT": {"has_account": True},
    "PROSPECT_TICKET": {"has_account": False, "ticket_count": 1},
    "PROSPECT_SURVEY": {"has_account": False, "latest_nps": 6},
    "GHOST": {"has_account": False},  # only a cancelled guest order: no interaction that counts
}
# ASKED_FIRST's ticket, 10 minutes before its first order; PROSPECT_TICKET's ticket.
TICKETS = {"ASKED_FIRST": 10, "PROSPECT_TICKET": 24 * 60}

EXPECTED_FLAGS = {
    "BIG": {"high_value"},
    "LOYAL": {"loyal", "high_value"},
    "PROMO": {"promo_driven"},
    "ADVOCATE_NPS": {"advocate"},
    "LAPSED": {"lapsed"},
    "ADVOCATE_REF": {"advocate"},
    "NEW": {"new", "low_value"},
    "OCCASIONAL": {"occasional", "low_value"},
    "PROMOTER_ONCE": {"occasional", "low_value"},
    "OCCASIONAL_SMALL": {"occasional", "low_value"},
    "IMPULSIVE": {"impulsive"},
    "QUICK_BUT_PROMPTED": {"occasional"},
    "SLOW_STARTER": {"occasional", "low_value"},
    "ASKED_FIRST": {"high_value"},
    "PROSPECT_ACCOUNT": {"prospect"},
    "PROSPECT_TICKET": {"prospect"},
    "PROSPECT_SURVEY": {"prospect"},
    "GHOST": set(),
}


def first_purchase_time(customer: str, as_of: date) -> datetime:
    days = max(days for days, _, _ in PURCHASES[customer])
    return datetime.combine(as_of - timedelta(days=days), datetime.min.time()) + timedelta(hours=10)


def make_orders(purchases: dict, as_of: date = AS_OF) -> pl.DataFrame:
    """marts.fct_orders rows for the planted purchases, plus GHOST's cancelled order."""
    rows = [
        (
            f"O-{cid}-{i}",
            cid,
            datetime.combine(as_of - timedelta(days=days), datetime.min.time()) + timedelta(hours=10),
            "completed",
            amount,
            50_000.0 if discounted else 0.0,
        )
        for cid, orders in purchases.items()
        for i, (days, amount, discounted) in enumerate(orders)
    ]
    rows.append(("O-GHOST", "GHOST", datetime(2025, 6, 1, 9), "cancelled", 1e5, 0.0))
    frame = pl.DataFrame(
        rows, schema=["order_id", "customer_id", "ordered_at", "status", "net_amount", "discount_amount"], orient="row"
    )
    return frame.with_columns(
        order_date=pl.col("ordered_at").dt.date(),
        channel=pl.lit("web"),
        shipping_amount=pl.lit(0.0),
        cost_amount=pl.lit(None, pl.Float64),
        is_discounted=pl.col("discount_amount") > 0,
        is_purchase=pl.col("status").is_in(["paid", "shipped", "completed"]),
    )


def make_tickets(as_of: date = AS_OF) -> pl.DataFrame:
    rows = [
        (
            f"T-{cid}",
            cid,
            (first_purchase_time(cid, as_of) if cid in PURCHASES else datetime.combine(as_of, datetime.min.time()))
            - timedelta(minutes=minutes),
        )
        for cid, minutes in TICKETS.items()
    ]
    return pl.DataFrame(rows, schema=["ticket_id", "customer_id", "created_at"], orient="row")


def make_profile(orders: pl.DataFrame, as_of: date = AS_OF) -> pl.DataFrame:
    """marts.customer_profile rows: order aggregates derived from the orders, the rest from TRAITS."""
    ids = sorted(set(orders["customer_id"]) | set(TRAITS))
    bought = (
        orders.filter("is_purchase")
        .group_by("customer_id")
        .agg(
            first_order_at=pl.col("ordered_at").min(),
            last_order_at=pl.col("ordered_at").max(),
            order_count=pl.len(),
            discounted_order_count=pl.col("is_discounted").sum().cast(pl.Int64),
            revenue=pl.col("net_amount").sum(),
        )
    )
    traits = pl.DataFrame(
        [{"customer_id": cid, **TRAITS.get(cid, {})} for cid in ids],
        schema={
            "customer_id": pl.String,
            "customer_type": pl.String,
            "has_account": pl.Boolean,
            "ticket_count": pl.Int64,
            "latest_nps": pl.Int64,
            "is_promoter": pl.Boolean,
            "referral_count": pl.Int64,
        },
    )
    contact = pl.DataFrame(
        {
            "customer_id": list(FIRST_CONTACT_MINUTES_BEFORE),
            "minutes_before": list(FIRST_CONTACT_MINUTES_BEFORE.values()),
        },
        schema={"customer_id": pl.String, "minutes_before": pl.Int64},
    )
    return (
        traits.join(bought, on="customer_id", how="left")
        .join(contact, on="customer_id", how="left")
        .with_columns(
            customer_type=pl.col("customer_type").fill_null("end_customer"),
            has_account=pl.col("has_account").fill_null(True),
            order_count=pl.col("order_count").fill_null(0).cast(pl.Int64),
            discounted_order_count=pl.col("discounted_order_count").fill_null(0),
            revenue=pl.col("revenue").fill_null(0.0),
            ticket_count=pl.col("ticket_count").fill_null(0),
            csat_avg=pl.lit(None, pl.Float64),
            is_promoter=pl.col("is_promoter").fill_null(False),
            referral_count=pl.col("referral_count").fill_null(0),
            # first contact: the account opened some minutes before the first order (a day before by default)
            first_seen_at=pl.col("first_order_at") - pl.duration(minutes=pl.col("minutes_before").fill_null(24 * 60)),
            as_of_date=pl.lit(as_of),
        )
        .drop("minutes_before")
        .sort("customer_id")
    )


def make_traits(profile: pl.DataFrame, orders: pl.DataFrame, tickets: pl.DataFrame) -> pl.DataFrame:
    """intermediate.int_customer_traits' segment inputs: whether the first purchase was discounted, and the tickets
    before it."""
    first = (
        orders.filter("is_purchase")
        .sort("ordered_at", "order_id")
        .group_by("customer_id", maintain_order=True)
        .agg(first_purchase_discounted=pl.col("is_discounted").first())
    )
    contacts = (
        tickets.join(profile.select("customer_id", "first_order_at"), on="customer_id")
        .filter(pl.col("created_at") < pl.col("first_order_at"))
        .group_by("customer_id")
        .agg(contacts_before_first_purchase=pl.len().cast(pl.Int64))
    )
    return (
        profile.select("customer_id")
        .join(first, on="customer_id", how="left")
        .join(contacts, on="customer_id", how="left")
        .with_columns(
            pl.col("first_purchase_discounted").fill_null(False), pl.col("contacts_before_first_purchase").fill_null(0)
        )
    )


def plant(warehouse: Path, orders: pl.DataFrame, as_of: date = AS_OF) -> None:
    """Write what the segment models read: the profile and its traits, orders, tickets, survey responses and the run
    date."""
    profile, tickets = make_profile(orders, as_of), make_tickets(as_of)
    tables = {
        "marts.customer_profile": profile,
        "intermediate.int_customer_traits": make_traits(profile, orders, tickets),
        "marts.fct_orders": orders,
        "marts.fct_tickets": tickets,
        "marts.fct_survey_responses": pl.DataFrame(schema={"customer_id": pl.String, "submitted_at": pl.Datetime}),
        "intermediate.int_run_date": pl.DataFrame({"run_date": [as_of]}),
    }
    plant_tables(warehouse, tables)


def deep_update(target: dict, changes: dict) -> dict:
    for key, value in changes.items():
        if isinstance(value, dict):
            deep_update(target.setdefault(key, {}), value)
        else:
            target[key] = value
    return target


def dbt_build(
    warehouse: Path, segments: dict | None = None, models: list[str] = SEGMENT_MODELS
) -> subprocess.CompletedProcess:
    """`dbt build` of the models with the vars a Dagster run passes (segments overridden); the run date is the
    planted int_run_date."""
    variables = copy.deepcopy(load_settings().dbt_vars(warehouse))  # the vars share the loaded settings: change a copy
    deep_update(variables["segments"], segments or {})
    # dbt's unit tests have their own test.
    return run_dbt(
        warehouse, "build", "--select", *models, "--vars", json.dumps(variables), "--exclude-resource-type", "unit_test"
    )


def table(warehouse: Path, sql: str) -> pl.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).pl()


def flag_sets(segments: pl.DataFrame) -> dict[str, set[str]]:
    return {row["customer_id"]: {name for name in FLAGS if row[name]} for row in segments.iter_rows(named=True)}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The segment models built once on the planted customers, as of AS_OF."""
    warehouse = tmp_path_factory.mktemp("segments") / "warehouse.duckdb"
    plant(warehouse, make_orders(PURCHASES))
    result = dbt_build(warehouse)
    assert result.returncode == 0, result.stdout[-3000:]
    return warehouse


def test_planted_customers_land_in_their_segments(built):
    segments = table(built, "select * from marts.customer_segments")
    assert flag_sets(segments) == EXPECTED_FLAGS
    primary = dict(segments.select("customer_id", "primary_segment").rows())
    assert primary["LOYAL"] == "high_value"  # precedence lists high_value before loyal
    assert primary["NEW"] == "new"  # new before low_value
    assert primary["IMPULSIVE"] == "impulsive"
    assert primary["PROSPECT_TICKET"] == "prospect"
    assert primary["GHOST"] == "unclassified"  # the fallback
    types = dict(segments.select("customer_id", "customer_type").rows())
    assert types["BIG"] == "reseller" and types["LOYAL"] == "agent" and types["NEW"] == "end_customer"
    assert set(segments["as_of_date"]) == {AS_OF}


def test_rfm_scores_buyers_only_in_quintiles(built):
    rfm = table(built, "select * from marts.customer_rfm")
    assert set(rfm["customer_id"]) == set(PURCHASES)
    assert rfm["rfm_segment"].null_count() == 0
    # 14 buyers in five ntile groups of 3, 3, 3, 3, 2: LOYAL bought most recently and most often.
    loyal = rfm.filter(pl.col("customer_id") == "LOYAL").row(0, named=True)
    assert (loyal["r_score"], loyal["f_score"], loyal["rfm_code"][:2]) == (5, 5, "55")
    assert loyal["rfm_segment"] == "Champions"
    assert rfm.group_by("r_score").len().sort("r_score")["len"].to_list() == [3, 3, 3, 3, 2]


def test_base_shape_counts_and_verdict(built):
    shape = table(built, "select * from marts.customer_base_shape").row(0, named=True)
    assert shape["customers"] == len(EXPECTED_FLAGS) and shape["buyers"] == len(PURCHASES)
    assert shape["shape"] == "tall"  # BIG alone holds most of the revenue
    for name in FLAGS:
        assert shape[f"{name}_customers"] == sum(name in flags for flags in EXPECTED_FLAGS.values()), name


def test_thresholds_come_from_the_segments_vars(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    plant(warehouse, make_orders(PURCHASES))
    changed = {
        "new": {"max_days_since_first_purchase": 20},  # NEW bought 30 days ago
        "lapsed": {"churn_days": 500},  # LAPSED's last purchase was 400 days ago
        "promo_driven": {"min_purchases": 5},  # PROMO made 4
        "impulsive": {"max_minutes_to_first_purchase": 10},  # IMPULSIVE bought 20 minutes after its first contact
        "precedence": [
            "loyal",
            "lapsed",
            "advocate",
            "high_value",
            "new",
            "promo_driven",
            "impulsive",
            "occasional",
            "low_value",
            "prospect",
        ],
    }
    result = dbt_build(warehouse, changed, ["customer_segments"])
    assert result.returncode == 0, result.stdout[-3000:]
    segments = table(warehouse, "select * from marts.customer_segments")
    flags = flag_sets(segments)
    assert "new" not in flags["NEW"] and "lapsed" not in flags["LAPSED"] and "promo_driven" not in flags["PROMO"]
    assert "impulsive" not in flags["IMPULSIVE"]
    primary = dict(segments.select("customer_id", "primary_segment").rows())
    assert primary["LOYAL"] == "loyal"


def test_unknown_names_and_an_incomplete_rfm_grid_fail_the_build(built):
    result = dbt_build(built, {"precedence": ["lapsed", "vip"]}, ["customer_segments"])
    assert result.returncode != 0 and "vip" in result.stdout
    grid = [entry for entry in load_settings().section("segments")["rfm"]["grid"] if entry["name"] != "Need Attention"]
    result = dbt_build(built, {"rfm": {"grid": grid}}, ["customer_rfm"])
    assert result.returncode != 0 and "unnamed: [(3, 3)]" in result.stdout


def test_history_keeps_one_snapshot_per_run_date_and_transitions_follow(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    plant(warehouse, make_orders(PURCHASES))
    for _ in range(2):  # the same run date twice: still one snapshot
        result = dbt_build(warehouse)
        assert result.returncode == 0, result.stdout[-3000:]
    customers = len(EXPECTED_FLAGS)
    assert table(warehouse, "select count(*) as n from marts.customer_segment_history")["n"].item() == customers
    assert table(warehouse, "select count(*) as n from marts.segment_transitions")["n"].item() == 0

    # A month later PROSPECT_ACCOUNT has bought for the first time: a second snapshot and its transitions.
    later = AS_OF + timedelta(days=31)
    plant(warehouse, make_orders({**PURCHASES, "PROSPECT_ACCOUNT": [(-26, 1e5, False)]}), later)
    result = dbt_build(warehouse)
    assert result.returncode == 0, result.stdout[-3000:]
    snapshots = table(
        warehouse, "select snapshot_date, count(*) as n from marts.customer_segment_history group by all order by 1"
    ).rows()
    assert snapshots == [(AS_OF, customers), (later, customers)]
    transitions = table(warehouse, "select * from marts.segment_transitions")
    assert transitions["customers"].sum() == customers
    assert set(transitions.select("from_date", "to_date").rows()) == {(AS_OF, later)}
    moved = transitions.filter(pl.col("from_segment") != pl.col("to_segment"))
    assert ("prospect", "new", 1) in moved.select("from_segment", "to_segment", "customers").rows()

    # A backfilled date between the two: its run replaces the pair that spanned it by the two pairs around it, and
    # the incremental transitions equal those computed from the whole history.
    between = AS_OF + timedelta(days=15)
    plant(warehouse, make_orders(PURCHASES), between)
    result = dbt_build(warehouse)
    assert result.returncode == 0, result.stdout[-3000:]
    query = "select * from marts.segment_transitions order by all"
    incremental = table(warehouse, query)
    assert set(incremental.select("from_date", "to_date").rows()) == {(AS_OF, between), (between, later)}
    assert incremental.group_by("from_date").agg(pl.col("customers").sum())["customers"].to_list() == [customers] * 2
    variables = load_settings().dbt_vars(warehouse)
    rebuilt = run_dbt(
        warehouse, "run", "--select", "segment_transitions", "--full-refresh", "--vars", json.dumps(variables)
    )
    assert rebuilt.returncode == 0, rebuilt.stdout[-3000:]
    assert table(warehouse, query).equals(incremental)
