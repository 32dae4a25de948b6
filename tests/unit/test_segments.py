"""Segments: planted customers land where their rule says, RFM scoring, base shape, history and transitions,
and the Dagster assets end to end on a real DuckDB file."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from pipeline.lib import segments as seg
from tests.support.planted_segments import (
    AS_OF,
    EXPECTED_FLAGS,
    PURCHASES,
    flag_sets,
    make_orders,
    make_profile,
)

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
    assert (
        seg.assign_segments(profile, orders, rules, AS_OF)
        .filter(pl.col("customer_id") == "LOYAL")["primary_segment"]
        .item()
        == "loyal"
    )


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
    purchases = {f"B{i}": [(days, 1e5 * (6 - i), False) for days in range(10 * i, 10 * i + 6 - i)] for i in range(1, 6)}
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
            (d1, "A", "new"),
            (d1, "B", "occasional"),
            (d1, "C", "lapsed"),
            (d1, "E", "new"),
            (d2, "A", "loyal"),
            (d2, "B", "occasional"),
            (d2, "D", "prospect"),
            (d2, "E", "loyal"),
            (d3, "A", "loyal"),
            (d3, "E", "lapsed"),
        ],
        schema=["snapshot_date", "customer_id", "primary_segment"],
        orient="row",
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
