"""Segment assets: RFM scores, customer-base types, their dated history and transitions, and the shape of the base.

Each asset reads the marts it needs from the warehouse, computes with pipeline.lib.segments, and replaces one
`marts.<name>` table. The run date of every asset is the profile's as_of_date.
"""

from __future__ import annotations

from datetime import date

import dagster as dg
import polars as pl

from pipeline.defs.resources import WarehouseResource
from pipeline.defs.snapshots import snapshot_history_asset
from pipeline.lib import segments as seg
from pipeline.lib.warehouse import read_frame, replace_table
from pipeline.settings import section, shop_calendar

SEGMENTS_GROUP = "segments"
PROFILE = dg.AssetKey(["marts", "customer_profile"])
ORDERS = dg.AssetKey(["marts", "fct_orders"])
CLV = dg.AssetKey(["marts", "customer_clv"])


def _key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["marts", name])


def _uses_clv() -> bool:
    return section("segments")["value"]["basis"] == "clv"


def _read_profile(con) -> pl.DataFrame:
    return read_frame(con, "select * from marts.customer_profile")


def _run_date(frame: pl.DataFrame) -> date:
    """The as_of_date the profile (and everything computed from it) was built for."""
    as_of = frame["as_of_date"].max()
    if as_of is None:
        raise ValueError("no as_of_date to run for: the input table is empty")
    return as_of


def _markdown(frame: pl.DataFrame, label: str) -> str:
    """Customers and revenue per group as a Markdown table (shares in percent)."""
    lines = [
        f"| {label} | customers | share of customers | revenue ({shop_calendar().currency}) | share of revenue |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {row['segment']} | {row['customers']} | {row['customer_share']:.1%} | {row['revenue']:,.0f} | "
        f"{(row['revenue_share'] or 0.0):.1%} |"
        for row in frame.iter_rows(named=True)
    ]
    return "\n".join(lines)


def _segment_metadata(segments: pl.DataFrame, profile: pl.DataFrame, column: str, label: str) -> dict:
    summary = seg.segment_summary(segments.select("customer_id", primary_segment=column), profile)
    return {
        "segment_sizes": dg.MetadataValue.md(_markdown(summary, label)),
        **{
            f"customers_{row[0]}": dg.MetadataValue.int(row[1]) for row in summary.select("segment", "customers").rows()
        },
    }


@dg.asset(
    key=_key("customer_rfm"),
    group_name=SEGMENTS_GROUP,
    deps=[PROFILE],
    pool="warehouse",
    description="RFM quintile scores (1-5) and named RFM segment of every purchasing customer.",
)
def customer_rfm(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        profile = _read_profile(con)
        as_of = _run_date(profile)
        rfm = seg.score_rfm(profile, as_of, section("segments"))
        replace_table(con, "marts.customer_rfm", rfm)
    return dg.MaterializeResult(
        metadata={
            "rows": rfm.height,
            "as_of_date": str(as_of),
            **_segment_metadata(rfm, profile, "rfm_segment", "RFM segment"),
        }
    )


@dg.asset(
    key=_key("customer_segments"),
    group_name=SEGMENTS_GROUP,
    # CLV feeds high/low value only when the rules say so (value.basis: clv).
    deps=[PROFILE, ORDERS] + ([CLV] if _uses_clv() else []),
    pool="warehouse",
    description="Customer-base type flags (new, loyal, prospect, high/low value, lapsed, occasional, promo-driven, "
    "advocate), customer_type and one primary_segment per customer, by the rules in cdp.yaml.",
)
def customer_segments(warehouse: WarehouseResource) -> dg.MaterializeResult:
    rules = section("segments")
    with warehouse.connect() as con:
        profile = _read_profile(con)
        as_of = _run_date(profile)
        orders = read_frame(con, "select customer_id, order_date, is_purchase, is_discounted from marts.fct_orders")
        clv = read_frame(con, "select customer_id, clv from marts.customer_clv") if _uses_clv() else None
        segments = seg.assign_segments(profile, orders, rules, as_of, clv)
        replace_table(con, "marts.customer_segments", segments)
    flag_counts = segments.select(pl.col(name).sum() for name in seg.SEGMENT_FLAGS).row(0, named=True)
    return dg.MaterializeResult(
        metadata={
            "rows": segments.height,
            "as_of_date": str(as_of),
            "rules_version": str(rules["rules_version"]),
            **_segment_metadata(segments, profile, "primary_segment", "primary segment"),
            **{f"flag_{name}": dg.MetadataValue.int(count) for name, count in flag_counts.items()},
        }
    )


customer_segment_history = snapshot_history_asset("customer_segments", "customer_segment_history", SEGMENTS_GROUP)


@dg.asset(
    key=_key("segment_transitions"),
    group_name=SEGMENTS_GROUP,
    deps=[_key("customer_segment_history")],
    pool="warehouse",
    description="Customers moving between primary segments from one snapshot date to the next.",
)
def segment_transitions(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        history = read_frame(
            con, "select snapshot_date, customer_id, primary_segment from marts.customer_segment_history"
        )
        transitions = seg.segment_transitions(history)
        replace_table(con, "marts.segment_transitions", transitions)
    moved = transitions.filter(pl.col("from_segment") != pl.col("to_segment"))
    return dg.MaterializeResult(
        metadata={
            "rows": transitions.height,
            "snapshot_pairs": transitions.select("from_date", "to_date").n_unique(),
            "customers_moved": int(moved["customers"].sum()),
        }
    )


@dg.asset(
    key=_key("customer_base_shape"),
    group_name=SEGMENTS_GROUP,
    deps=[PROFILE, _key("customer_segments")],
    pool="warehouse",
    description="Revenue concentration of the buyers (top 10%/20% share, Gini), broad-vs-tall verdict and "
    "customers per segment flag.",
)
def customer_base_shape(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        profile = _read_profile(con)
        segments = read_frame(con, "select * from marts.customer_segments")
        shape = seg.base_shape(profile, segments, section("segments"))
        replace_table(con, "marts.customer_base_shape", shape)
    row = shape.row(0, named=True)
    measures = ("shape", "gini", "top10_share", "top20_share", "customers", "buyers")
    # A base without revenue has no concentration measures: leave them out rather than report nulls.
    return dg.MaterializeResult(metadata={name: row[name] for name in measures if row[name] is not None})


SEGMENT_ASSETS = [customer_rfm, customer_segments, customer_segment_history, segment_transitions, customer_base_shape]
