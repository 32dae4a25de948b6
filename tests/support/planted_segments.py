"""Planted customers for the segment tests: who bought what and when, their profile traits, and the segment
flags each must get; the marts rows built from them and the pytest fixtures both test layers use."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta

import polars as pl
import pytest

from pipeline.lib import segments as seg
from pipeline.settings import section

AS_OF = date(2025, 6, 30)

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
    "PROSPECT_ACCOUNT": {"prospect"},
    "PROSPECT_TICKET": {"prospect"},
    "PROSPECT_SURVEY": {"prospect"},
    "GHOST": set(),
}


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
        gross_amount=pl.col("net_amount") + pl.col("discount_amount"),
        shipping_amount=pl.lit(0.0),
        cost_amount=pl.lit(None, pl.Float64),
        refund_amount=pl.lit(0.0),
        promo_code=pl.when(pl.col("discount_amount") > 0).then(pl.lit("PROMO10")),
        referral_code=pl.lit(None, pl.String),
        is_discounted=pl.col("discount_amount") > 0,
        is_purchase=pl.col("status").is_in(["paid", "shipped", "completed"]),
    )


def make_profile(orders: pl.DataFrame, traits: dict = TRAITS, as_of: date = AS_OF) -> pl.DataFrame:
    """marts.customer_profile rows: order aggregates derived from the orders, the rest from traits."""
    ids = sorted(set(orders["customer_id"]) | set(traits))
    bought = (
        orders.filter("is_purchase")
        .group_by("customer_id")
        .agg(
            first_order_at=pl.col("ordered_at").min(),
            last_order_at=pl.col("ordered_at").max(),
            order_count=pl.len(),
            revenue=pl.col("net_amount").sum(),
            discount_total=pl.col("discount_amount").sum(),
            discounted_order_count=pl.col("is_discounted").sum(),
        )
    )
    trait_frame = pl.DataFrame(
        [{"customer_id": cid, **traits.get(cid, {})} for cid in ids],
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
    return (
        trait_frame.join(bought, on="customer_id", how="left")
        .with_columns(
            full_name=pl.col("customer_id"),
            email=pl.col("customer_id").str.to_lowercase() + "@example.id",
            phone=pl.lit("+628123456789"),
            city=pl.lit("Bandung"),
            province=pl.lit("Jawa Barat"),
            customer_type=pl.col("customer_type").fill_null("end_customer"),
            marketing_consent=pl.lit(True),
            has_account=pl.col("has_account").fill_null(True),
            order_count=pl.col("order_count").fill_null(0).cast(pl.Int64),
            revenue=pl.col("revenue").fill_null(0.0),
            refund_total=pl.lit(0.0),
            avg_order_value=pl.col("revenue") / pl.col("order_count"),
            channels=pl.lit(["web"]),
            ticket_count=pl.col("ticket_count").fill_null(0),
            open_ticket_count=pl.lit(0),
            median_resolution_hours=pl.lit(None, pl.Float64),
            csat_avg=pl.lit(None, pl.Float64),
            is_promoter=pl.col("is_promoter").fill_null(False),
            is_detractor=pl.col("latest_nps") <= 6,
            referral_count=pl.col("referral_count").fill_null(0),
            first_seen_at=pl.col("first_order_at"),
            last_activity_at=pl.col("last_order_at"),
            days_since_last_activity=(pl.lit(as_of) - pl.col("last_order_at").dt.date()).dt.total_days(),
            as_of_date=pl.lit(as_of),
        )
        .sort("customer_id")
    )


@pytest.fixture()
def rules() -> dict:
    return copy.deepcopy(section("segments"))


@pytest.fixture()
def orders() -> pl.DataFrame:
    return make_orders(PURCHASES)


@pytest.fixture()
def profile(orders) -> pl.DataFrame:
    return make_profile(orders)


def flag_sets(segments: pl.DataFrame) -> dict[str, set[str]]:
    return {
        row["customer_id"]: {name for name in seg.SEGMENT_FLAGS if row[name]} for row in segments.iter_rows(named=True)
    }
