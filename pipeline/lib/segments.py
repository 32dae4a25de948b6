"""Customer segments: RFM scores, the customer-base types, the shape of the base, and segment history.

Every rule reads its thresholds from the `segments` section of `pipeline/config/cdp.yaml` (passed in as `rules`);
all dates are measured against the run's as-of date (the profile's `as_of_date`), so results are deterministic.

Customer-base types (boolean flags; a customer can carry several):
- new: bought for the first time at most `new.max_days_since_first_purchase` days before the as-of date.
- loyal: purchased in at least `loyal.min_active_quarters` of the last 4 windows of `loyal.quarter_days` days
  (ending at the as-of date) and first purchase at least `loyal.min_tenure_days` ago.
- prospect: never bought, but has an account, a ticket or a survey answer (NPS or CSAT).
- high_value / low_value: among buyers, percentile rank (average rank over ties) of revenue, or of CLV when
  `value.basis` is `clv`, above `1 - value.high_top_share` / at most `value.low_bottom_share`.
- lapsed: bought, but not within the last `lapsed.churn_days` days.
- occasional: bought, and in none of the segments listed in `occasional.not_in`.
- promo_driven: at least `promo_driven.min_purchases` purchases, of which a share of at least
  `promo_driven.min_discounted_share` were discounted (discount or promo code).
- advocate: an NPS promoter with at least `advocate.min_repeat_purchases` purchases, or anyone whose referral
  code brought at least `advocate.min_referrals` purchases by other customers.
`primary_segment` is the first flag set in the `precedence` list, else `fallback_segment`.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from pipeline.lib.concentration import lorenz_curve

SEGMENT_FLAGS = (
    "new",
    "loyal",
    "prospect",
    "high_value",
    "low_value",
    "lapsed",
    "occasional",
    "promo_driven",
    "advocate",
)
QUINTILES = 5
# Label of "not in that snapshot" in segment transitions (a customer new to the base, or merged away).
ABSENT = "(none)"


def _days_before(as_of: date, column: str) -> pl.Expr:
    """Whole days from the date of a timestamp column to the as-of date."""
    return (pl.lit(as_of) - pl.col(column).dt.date()).dt.total_days()


def _quintile(value: pl.Expr) -> pl.Expr:
    """Score 1-5 by ordinal rank of value (ties broken by customer_id), equal-sized groups; 5 = highest value."""
    rank0 = pl.arg_sort_by([value, pl.col("customer_id")]).arg_sort()
    return (rank0 * QUINTILES // pl.len() + 1).cast(pl.Int8)


def _rfm_segment(grid: list[dict]) -> pl.Expr:
    """The name of the first grid entry whose r/f ranges contain the customer's r_score/f_score."""
    return pl.coalesce(
        [
            pl.when(pl.col("r_score").is_between(*entry["r"]) & pl.col("f_score").is_between(*entry["f"])).then(
                pl.lit(entry["name"])
            )
            for entry in grid
        ]
    )


def check_rfm_grid(grid: list[dict]) -> None:
    """Raise when some (r, f) score cell has no named segment."""
    scores = pl.int_range(1, QUINTILES + 1, eager=True).cast(pl.Int8)
    cells = pl.DataFrame({"r_score": scores}).join(pl.DataFrame({"f_score": scores}), how="cross")
    missing = cells.filter(_rfm_segment(grid).is_null())
    if missing.height:
        raise ValueError(f"segments.rfm.grid leaves (r, f) cells unnamed: {missing.rows()}")


def score_rfm(profile: pl.DataFrame, as_of: date, rules: dict) -> pl.DataFrame:
    """Recency / frequency / monetary quintile scores and the named RFM segment of every purchasing customer.

    Recency = days since the last purchase (fewer = higher score), frequency = purchases, monetary = revenue.
    Scores are equal-sized quintiles of the ordinal rank by value, ties broken by customer_id (ascending), so the
    same input always gives the same scores. One row per customer with order_count > 0.
    """
    grid = rules["rfm"]["grid"]
    check_rfm_grid(grid)
    return (
        profile.filter(pl.col("order_count").fill_null(0) > 0)
        .select(
            "customer_id",
            recency_days=_days_before(as_of, "last_order_at"),
            frequency=pl.col("order_count"),
            monetary=pl.col("revenue").fill_null(0.0),
        )
        .with_columns(
            r_score=_quintile(-pl.col("recency_days")),
            f_score=_quintile(pl.col("frequency")),
            m_score=_quintile(pl.col("monetary")),
        )
        .with_columns(
            rfm_code=pl.concat_str("r_score", "f_score", "m_score"),
            rfm_segment=_rfm_segment(grid),
            as_of_date=pl.lit(as_of),
        )
        .sort("customer_id")
    )


def _purchase_behaviour(orders: pl.DataFrame, as_of: date, quarter_days: int) -> pl.DataFrame:
    """Per customer: purchases, share of them discounted, and active windows among the last 4 quarter windows."""
    days_ago = (pl.lit(as_of) - pl.col("order_date")).dt.total_days()
    in_last_year = days_ago.is_between(0, 4 * quarter_days - 1)
    return (
        orders.filter(pl.col("is_purchase") & pl.col("customer_id").is_not_null())
        .group_by("customer_id")
        .agg(
            purchases=pl.len(),
            discounted_share=pl.col("is_discounted").fill_null(False).mean(),
            active_quarters=(days_ago // quarter_days).filter(in_last_year).n_unique(),
        )
    )


def _check_segment_names(rules: dict) -> None:
    named = {"precedence": rules["precedence"], "occasional.not_in": rules["occasional"]["not_in"]}
    for key, names in named.items():
        unknown = sorted(set(names) - set(SEGMENT_FLAGS))
        if unknown:
            raise ValueError(f"segments.{key} names unknown segments {unknown}; known: {list(SEGMENT_FLAGS)}")
    if "occasional" in rules["occasional"]["not_in"]:
        raise ValueError("segments.occasional.not_in cannot contain occasional itself")


def assign_segments(
    profile: pl.DataFrame,
    orders: pl.DataFrame,
    rules: dict,
    as_of: date,
    clv: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The customer-base flags (module docstring), customer_type and primary_segment of every profile customer.

    `orders` needs customer_id, order_date, is_purchase, is_discounted (marts.fct_orders); `clv` (customer_id, clv)
    is required only when `rules["value"]["basis"]` is "clv". The rule inputs are kept as columns for explanation.
    """
    _check_segment_names(rules)
    basis = rules["value"]["basis"]
    if basis not in ("revenue", "clv"):
        raise ValueError(f"segments.value.basis must be revenue or clv, not {basis!r}")
    if basis == "clv" and clv is None:
        raise ValueError("segments.value.basis is clv but no CLV frame was given")
    loyal, promo, advocate = rules["loyal"], rules["promo_driven"], rules["advocate"]

    frame = profile.join(
        _purchase_behaviour(orders, as_of, loyal["quarter_days"]), on="customer_id", how="left"
    ).with_columns(
        is_buyer=pl.col("order_count").fill_null(0) > 0,
        days_since_first_purchase=_days_before(as_of, "first_order_at"),
        days_since_last_purchase=_days_before(as_of, "last_order_at"),
        purchases=pl.col("purchases").fill_null(0),
        discounted_share=pl.col("discounted_share").fill_null(0.0),
        active_quarters=pl.col("active_quarters").fill_null(0),
    )
    if basis == "clv":
        frame = frame.join(clv.select("customer_id", value_basis=pl.col("clv")), on="customer_id", how="left")
    else:
        frame = frame.with_columns(value_basis=pl.col("revenue"))
    buyer_value = pl.when(pl.col("is_buyer")).then(pl.col("value_basis"))
    frame = frame.with_columns(value_percentile=buyer_value.rank("average") / buyer_value.count())

    flags = {
        "new": pl.col("is_buyer")
        & (pl.col("days_since_first_purchase") <= rules["new"]["max_days_since_first_purchase"]),
        "loyal": pl.col("is_buyer")
        & (pl.col("active_quarters") >= loyal["min_active_quarters"])
        & (pl.col("days_since_first_purchase") >= loyal["min_tenure_days"]),
        "prospect": ~pl.col("is_buyer")
        & (
            pl.col("has_account").fill_null(False)
            | (pl.col("ticket_count").fill_null(0) > 0)
            | pl.col("latest_nps").is_not_null()
            | pl.col("csat_avg").is_not_null()
        ),
        "high_value": pl.col("value_percentile") > 1 - rules["value"]["high_top_share"],
        "low_value": pl.col("value_percentile") <= rules["value"]["low_bottom_share"],
        "lapsed": pl.col("is_buyer") & (pl.col("days_since_last_purchase") > rules["lapsed"]["churn_days"]),
        "promo_driven": (pl.col("purchases") >= promo["min_purchases"])
        & (pl.col("discounted_share") >= promo["min_discounted_share"]),
        "advocate": (
            pl.col("is_promoter").fill_null(False) & (pl.col("order_count") >= advocate["min_repeat_purchases"])
        )
        | (pl.col("referral_count").fill_null(0) >= advocate["min_referrals"]),
    }
    frame = frame.with_columns(**{name: rule.fill_null(False) for name, rule in flags.items()})
    frame = frame.with_columns(
        occasional=pl.col("is_buyer") & ~pl.any_horizontal(*rules["occasional"]["not_in"]),
    )
    primary = pl.coalesce(
        [pl.when(pl.col(name)).then(pl.lit(name)) for name in rules["precedence"]] + [pl.lit(rules["fallback_segment"])]
    )
    return frame.select(
        "customer_id",
        "customer_type",
        *SEGMENT_FLAGS,
        primary_segment=primary,
        is_buyer="is_buyer",
        days_since_first_purchase="days_since_first_purchase",
        days_since_last_purchase="days_since_last_purchase",
        active_quarters="active_quarters",
        discounted_share="discounted_share",
        value_percentile="value_percentile",
        rules_version=pl.lit(str(rules["rules_version"])),
        as_of_date=pl.lit(as_of),
    ).sort("customer_id")


def base_shape(profile: pl.DataFrame, segments: pl.DataFrame, rules: dict) -> pl.DataFrame:
    """One row describing the customer base: revenue concentration among buyers and customers per segment flag.

    top10_share / top20_share = share of buyers' revenue held by the top 10% / 20% of buyers; gini of buyers'
    revenue (negative revenue clipped to 0). shape = "tall" (value concentrated in few customers) when
    top20_share >= `base_shape.tall_min_top20_share`, else "broad"; null when no buyer has revenue.
    """
    threshold = rules["base_shape"]["tall_min_top20_share"]
    buyers = profile.filter(pl.col("order_count").fill_null(0) > 0)
    lorenz = lorenz_curve(buyers["revenue"].fill_null(0.0).to_numpy())
    top20 = lorenz.shares["top 20%"] if lorenz else None
    shape = None if top20 is None else ("tall" if top20 >= threshold else "broad")
    summary = pl.DataFrame(
        {
            "as_of_date": [profile["as_of_date"].max()],
            "customers": [profile.height],
            "buyers": [buyers.height],
            "revenue": [float(buyers["revenue"].fill_null(0.0).sum())],
            "top10_share": [lorenz.shares["top 10%"] if lorenz else None],
            "top20_share": [top20],
            "gini": [lorenz.gini if lorenz else None],
            "shape": [shape],
            "tall_min_top20_share": [float(threshold)],
            "rules_version": [str(rules["rules_version"])],
        },
        schema_overrides={"top10_share": pl.Float64, "top20_share": pl.Float64, "gini": pl.Float64, "shape": pl.String},
    )
    counts = segments.select(pl.col(name).sum().alias(f"{name}_customers") for name in SEGMENT_FLAGS)
    return pl.concat([summary, counts], how="horizontal")


def segment_summary(segments: pl.DataFrame, profile: pl.DataFrame) -> pl.DataFrame:
    """Customers and revenue per primary segment, with their shares of the whole (largest segment first)."""
    return (
        segments.select("customer_id", segment="primary_segment")
        .join(profile.select("customer_id", "revenue"), on="customer_id", how="left")
        .group_by("segment")
        .agg(customers=pl.len(), revenue=pl.col("revenue").fill_null(0.0).sum())
        .with_columns(
            customer_share=pl.col("customers") / pl.col("customers").sum(),
            # null rather than NaN when the segments hold no revenue at all
            revenue_share=pl.when(pl.col("revenue").sum() != 0).then(pl.col("revenue") / pl.col("revenue").sum()),
        )
        .sort(["customers", "segment"], descending=[True, False])
    )


def segment_transitions(history: pl.DataFrame) -> pl.DataFrame:
    """Customers moving from one primary segment to another between consecutive snapshot dates.

    A customer missing from one side of a pair appears as `(none)` there. Rows with from == to count the stayers.
    """
    pairs = (
        history.select(from_date=pl.col("snapshot_date").unique().sort())
        .with_columns(to_date=pl.col("from_date").shift(-1))
        .drop_nulls()
    )
    before = pairs.join(
        history.select("customer_id", from_date="snapshot_date", from_segment="primary_segment"), on="from_date"
    )
    after = pairs.join(
        history.select("customer_id", to_date="snapshot_date", to_segment="primary_segment"), on="to_date"
    )
    return (
        before.join(after, on=["from_date", "to_date", "customer_id"], how="full", coalesce=True)
        .with_columns(pl.col("from_segment", "to_segment").fill_null(ABSENT))
        .group_by("from_date", "to_date", "from_segment", "to_segment")
        .agg(customers=pl.len())
        .sort(["from_date", "from_segment", "to_segment"])
    )
