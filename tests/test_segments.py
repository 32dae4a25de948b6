"""Segments: planted customers land where their rule says, RFM scoring, base shape, history and transitions,
and the Dagster assets end to end on a real DuckDB file."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta

import dagster as dg
import duckdb
import polars as pl
import pytest

from pipeline.lib import segments as seg
from pipeline.lib.config import section
from pipeline.lib.warehouse import connect, replace_table

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
        (f"O-{cid}-{i}", cid, datetime.combine(as_of - timedelta(days=days), datetime.min.time()) + timedelta(hours=10),
         "completed", amount, 50_000.0 if discounted else 0.0)
        for cid, orders in purchases.items()
        for i, (days, amount, discounted) in enumerate(orders)
    ]
    rows.append(("O-GHOST", "GHOST", datetime(2025, 6, 1, 9), "cancelled", 1e5, 0.0))
    frame = pl.DataFrame(rows, schema=["order_id", "customer_id", "ordered_at", "status", "net_amount",
                                       "discount_amount"], orient="row")
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
    bought = orders.filter("is_purchase").group_by("customer_id").agg(
        first_order_at=pl.col("ordered_at").min(),
        last_order_at=pl.col("ordered_at").max(),
        order_count=pl.len(),
        revenue=pl.col("net_amount").sum(),
        discount_total=pl.col("discount_amount").sum(),
        discounted_order_count=pl.col("is_discounted").sum(),
    )
    trait_frame = pl.DataFrame(
        [{"customer_id": cid, **traits.get(cid, {})} for cid in ids],
        schema={"customer_id": pl.String, "customer_type": pl.String, "has_account": pl.Boolean,
                "ticket_count": pl.Int64, "latest_nps": pl.Int64, "is_promoter": pl.Boolean,
                "referral_count": pl.Int64},
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
        row["customer_id"]: {name for name in seg.SEGMENT_FLAGS if row[name]}
        for row in segments.iter_rows(named=True)
    }


# ---------------------------------------------------------------- customer-base types


def test_planted_customers_land_in_their_segments(profile, orders, rules):
    segments = seg.assign_segments(profile, orders, rules, AS_OF)
    assert segments.height == profile.height
    assert flag_sets(segments) == EXPECTED_FLAGS


def test_primary_segment_follows_precedence_and_fallback(profile, orders, rules):
    primary = dict(seg.assign_segments(profile, orders, rules, AS_OF).select("customer_id", "primary_segment").rows())
    assert primary["LOYAL"] == "high_value"  # precedence lists high_value before loyal
    assert primary["NEW"] == "new"  # new before low_value
    assert primary["PROSPECT_TICKET"] == "prospect"
    assert primary["GHOST"] == rules["fallback_segment"]
    rules["precedence"] = ["loyal"] + [name for name in rules["precedence"] if name != "loyal"]
    assert seg.assign_segments(profile, orders, rules, AS_OF).filter(
        pl.col("customer_id") == "LOYAL")["primary_segment"].item() == "loyal"


def test_customer_type_passes_through(profile, orders, rules):
    types = dict(seg.assign_segments(profile, orders, rules, AS_OF).select("customer_id", "customer_type").rows())
    assert types["BIG"] == "reseller" and types["LOYAL"] == "agent" and types["NEW"] == "end_customer"


@pytest.mark.parametrize(
    ("path", "value", "customer", "flag", "member_after"),
    [
        (("new", "max_days_since_first_purchase"), 20, "NEW", "new", False),  # NEW bought 30 days ago
        (("value", "high_top_share"), 0.3, "PROMO", "high_value", True),  # PROMO is the 3rd of 10 buyers
        (("loyal", "min_active_quarters"), 4, "ADVOCATE_NPS", "loyal", False),  # 4 would need every window
        (("loyal", "min_active_quarters"), 2, "ADVOCATE_NPS", "loyal", False),  # ... but tenure is 200 days
        (("loyal", "min_tenure_days"), 200, "PROMO", "loyal", True),  # 3 active windows, first bought 250 days ago
        (("lapsed", "churn_days"), 500, "LAPSED", "lapsed", False),  # last purchase 400 days ago
        (("promo_driven", "min_discounted_share"), 0.8, "PROMO", "promo_driven", False),  # 3 of 4 discounted
        (("promo_driven", "min_purchases"), 5, "PROMO", "promo_driven", False),
        (("advocate", "min_repeat_purchases"), 1, "PROMOTER_ONCE", "advocate", True),
        (("advocate", "min_referrals"), 3, "ADVOCATE_REF", "advocate", False),  # 2 referrals
    ],
)
def test_thresholds_from_yaml_change_membership(profile, orders, rules, path, value, customer, flag, member_after):
    def member(r: dict) -> bool:
        return seg.assign_segments(profile, orders, r, AS_OF).filter(pl.col("customer_id") == customer)[flag].item()

    assert member(rules) is (flag in EXPECTED_FLAGS[customer])
    rules[path[0]][path[1]] = value
    assert member(rules) is member_after


def test_occasional_is_defined_by_the_other_buying_segments(profile, orders, rules):
    rules["occasional"]["not_in"] = [name for name in rules["occasional"]["not_in"] if name != "promo_driven"]
    segments = seg.assign_segments(profile, orders, rules, AS_OF)
    assert flag_sets(segments)["PROMO"] == {"promo_driven", "occasional"}


def test_value_basis_clv_ranks_by_clv(profile, orders, rules):
    rules["value"]["basis"] = "clv"
    with pytest.raises(ValueError, match="no CLV frame"):
        seg.assign_segments(profile, orders, rules, AS_OF)
    # Reverse the revenue order: the smallest buyer now has the highest CLV.
    clv = profile.filter(pl.col("order_count") > 0).select("customer_id", clv=1e9 - pl.col("revenue"))
    flags = flag_sets(seg.assign_segments(profile, orders, rules, AS_OF, clv=clv))
    assert "high_value" in flags["OCCASIONAL_SMALL"] and "low_value" in flags["BIG"]


def test_unknown_segment_names_in_rules_are_rejected(profile, orders, rules):
    rules["precedence"] = rules["precedence"] + ["vip"]
    with pytest.raises(ValueError, match="vip"):
        seg.assign_segments(profile, orders, rules, AS_OF)


# ---------------------------------------------------------------- RFM


def test_rfm_scores_direction_and_named_segments(rules):
    # Five buyers; B1 bought most recently and most often and spent most, B5 the opposite.
    purchases = {
        f"B{i}": [(days, 1e5 * (6 - i), False) for days in range(10 * i, 10 * i + 6 - i)] for i in range(1, 6)
    }
    profile = make_profile(make_orders(purchases), traits={})
    rfm = seg.score_rfm(profile.filter(pl.col("order_count") > 0), AS_OF, rules)
    scores = {row[0]: row[1:] for row in rfm.select("customer_id", "r_score", "f_score", "m_score").rows()}
    assert scores == {f"B{i}": (6 - i, 6 - i, 6 - i) for i in range(1, 6)}
    named = dict(rfm.select("customer_id", "rfm_segment").rows())
    assert named["B1"] == "Champions" and named["B5"] == "Lost" and named["B3"] == "Need Attention"
    assert rfm.filter(pl.col("customer_id") == "B1")["rfm_code"].item() == "555"


def test_rfm_scores_only_buyers_and_every_grid_cell_is_named(profile, rules):
    rfm = seg.score_rfm(profile, AS_OF, rules)
    assert set(rfm["customer_id"]) == set(PURCHASES)
    assert rfm["rfm_segment"].null_count() == 0
    seg.check_rfm_grid(rules["rfm"]["grid"])
    with pytest.raises(ValueError, match=r"unnamed: \[\(3, 3\)\]"):
        seg.check_rfm_grid([entry for entry in rules["rfm"]["grid"] if entry["name"] != "Need Attention"])


def test_rfm_ties_are_broken_by_customer_id_regardless_of_row_order(rules):
    # Ten identical buyers: quintiles of ordinal rank by customer_id, two per score.
    purchases = {f"T{i:02d}": [(15, 1e5, False)] for i in range(10)}
    profile = make_profile(make_orders(purchases), traits={}).filter(pl.col("order_count") > 0)
    expected = {f"T{i:02d}": i // 2 + 1 for i in range(10)}
    for shuffled in (profile, profile.reverse(), profile.sample(fraction=1.0, shuffle=True, seed=7)):
        rfm = seg.score_rfm(shuffled, AS_OF, rules)
        for column in ("r_score", "f_score", "m_score"):
            assert dict(rfm.select("customer_id", column).rows()) == expected


# ---------------------------------------------------------------- base shape


def shape_of(revenues: list[float], rules: dict) -> dict:
    """base_shape of buyers with one purchase each of the given amounts."""
    orders = make_orders({f"R{i:02d}": [(5, r, False)] for i, r in enumerate(revenues)})
    profile = make_profile(orders, traits={})
    return seg.base_shape(profile, seg.assign_segments(profile, orders, rules, AS_OF), rules).row(0, named=True)


@pytest.mark.parametrize(
    ("revenues", "gini"),
    [([1.0] * 4, 0.0), ([0.0, 0.0, 0.0, 10.0], 0.75), ([1.0, 2.0, 3.0, 4.0], 0.25), ([5.0] * 9 + [0.0], 0.1)],
)
def test_gini_of_known_distributions(revenues, gini, rules):
    assert shape_of(revenues, rules)["gini"] == pytest.approx(gini)


def test_base_shape_shares_verdict_and_counts(profile, orders, rules):
    shape = shape_of([float(v) for v in range(1, 11)], rules)
    assert shape["top10_share"] == pytest.approx(10 / 55) and shape["top20_share"] == pytest.approx(19 / 55)
    assert shape["shape"] == "broad" and shape["buyers"] == 10

    shape = seg.base_shape(profile, seg.assign_segments(profile, orders, rules, AS_OF), rules).row(0, named=True)
    assert shape["customers"] == profile.height and shape["buyers"] == len(PURCHASES)
    assert shape["shape"] == "tall"  # BIG alone holds most of the revenue
    for name in seg.SEGMENT_FLAGS:
        assert shape[f"{name}_customers"] == sum(name in flags for flags in EXPECTED_FLAGS.values())
    rules["base_shape"]["tall_min_top20_share"] = shape["top20_share"] + 0.01
    assert seg.base_shape(profile, seg.assign_segments(profile, orders, rules, AS_OF), rules)["shape"].item() == "broad"


# ---------------------------------------------------------------- history and transitions


def test_segment_transitions_between_consecutive_dates():
    d1, d2, d3 = date(2025, 4, 30), date(2025, 5, 31), date(2025, 6, 30)
    history = pl.DataFrame(
        [
            (d1, "A", "new"), (d1, "B", "occasional"), (d1, "C", "lapsed"), (d1, "E", "new"),
            (d2, "A", "loyal"), (d2, "B", "occasional"), (d2, "D", "prospect"), (d2, "E", "loyal"),
            (d3, "A", "loyal"), (d3, "E", "lapsed"),
        ],
        schema=["snapshot_date", "customer_id", "primary_segment"], orient="row",
    )
    got = {(f, t, a, b): n for f, t, a, b, n in seg.segment_transitions(history.reverse()).rows()}
    assert got == {
        (d1, d2, "new", "loyal"): 2,
        (d1, d2, "occasional", "occasional"): 1,
        (d1, d2, "lapsed", seg.ABSENT): 1,
        (d1, d2, seg.ABSENT, "prospect"): 1,
        (d2, d3, "loyal", "loyal"): 1,
        (d2, d3, "loyal", "lapsed"): 1,
        (d2, d3, "occasional", seg.ABSENT): 1,
        (d2, d3, "prospect", seg.ABSENT): 1,
    }
    assert seg.segment_transitions(history.filter(pl.col("snapshot_date") == d1)).is_empty()


# ---------------------------------------------------------------- Dagster assets on a real warehouse


def test_assets_materialize_against_a_duckdb_warehouse(tmp_path, monkeypatch, profile, orders, rules):
    from pipeline.defs.segments.assets import SEGMENT_ASSETS

    warehouse = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("CDP_WAREHOUSE", str(warehouse))
    with connect(warehouse) as con:
        replace_table(con, "marts.customer_profile", profile)
        replace_table(con, "marts.fct_orders", orders)

    instance = dg.DagsterInstance.ephemeral()  # one instance for the three runs keeps the test quick
    result = dg.materialize(SEGMENT_ASSETS, instance=instance)
    assert result.success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        stored = con.execute("select * from marts.customer_segments order by customer_id").pl()
        assert stored.equals(seg.assign_segments(profile, orders, rules, AS_OF))
        assert con.execute("select count(*) from marts.customer_rfm").fetchone()[0] == len(PURCHASES)
        assert con.execute("select shape from marts.customer_base_shape").fetchone()[0] == "tall"
        assert con.execute("select count(*) from marts.segment_transitions").fetchone()[0] == 0

    (event,) = [e for e in result.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey(["marts", "customer_segments"])]
    metadata = event.materialization.metadata
    assert "| prospect | 3 |" in metadata["segment_sizes"].value
    assert metadata["flag_occasional"].value == 3

    # Same run date again: the history keeps one snapshot.
    assert dg.materialize(SEGMENT_ASSETS, instance=instance).success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from marts.customer_segment_history").fetchone()[0] == profile.height

    # A month later PROSPECT_ACCOUNT has bought for the first time: a second snapshot. With 11 buyers the top
    # 20% by percentile rank (rank / buyers > 0.8) now reaches PROMO, the 9th of 11.
    later = AS_OF + timedelta(days=31)
    later_orders = make_orders({**PURCHASES, "PROSPECT_ACCOUNT": [(-26, 1e5, False)]})
    with connect(warehouse) as con:
        replace_table(con, "marts.customer_profile", make_profile(later_orders, as_of=later))
        replace_table(con, "marts.fct_orders", later_orders)
    assert dg.materialize(SEGMENT_ASSETS, instance=instance).success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        snapshots = con.execute("""select snapshot_date, count(*) from marts.customer_segment_history
                                   group by all order by 1""").fetchall()
        assert snapshots == [(AS_OF, profile.height), (later, profile.height)]
        transitions = con.execute("""select from_segment, to_segment, customers from marts.segment_transitions
                                     where from_date = ? and to_date = ?""", [AS_OF, later]).fetchall()
    assert sorted(row for row in transitions if row[0] != row[1]) == [
        ("promo_driven", "high_value", 1), ("prospect", "new", 1)]
    assert sum(row[2] for row in transitions) == profile.height
