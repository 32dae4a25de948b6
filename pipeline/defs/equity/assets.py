"""Customer value and customer equity: per-customer current, future and lifetime value, rolled up overall and per
segment, cohort, channel and customer type, with a snapshot per run date (see pipeline/lib/equity.py)."""

import dagster as dg
import polars as pl

from pipeline.defs.clv.assets import ORDERS, PROFILE, SEGMENTS, TICKETS, mart_key, read_profile, read_purchases
from pipeline.defs.resources import WarehouseResource
from pipeline.defs.snapshots import snapshot_history_asset
from pipeline.lib import equity
from pipeline.lib.warehouse import read_frame, replace_table
from pipeline.settings import section

EQUITY_GROUP = "equity"


@dg.asset(
    key=mart_key("customer_equity"),
    group_name=EQUITY_GROUP,
    deps=[mart_key("customer_clv"), SEGMENTS, PROFILE, ORDERS, TICKETS],
    pool="warehouse",
    description="Customer equity (current, future and lifetime value) overall and per segment, acquisition cohort, "
    "main channel and customer type; per-customer values in marts.customer_value.",
)
def customer_equity(warehouse: WarehouseResource) -> dg.MaterializeResult:
    settings, equity_settings = section("clv"), section("equity")
    with warehouse.connect() as con:
        profile, as_of = read_profile(con)
        values = equity.customer_value(
            profile,
            read_purchases(con, as_of),
            read_frame(con, "select customer_id, created_at from marts.fct_tickets"),
            read_frame(con, "select customer_id, clv, net_clv from marts.customer_clv"),
            read_frame(con, "select customer_id, primary_segment from marts.customer_segments"),
            as_of,
            default_margin=settings["default_gross_margin"],
            cost_per_ticket=settings["cost_per_ticket"],
            current_days=equity_settings["current_period_days"],
        )
        rollup = equity.equity_by_dimension(values)
        replace_table(con, "marts.customer_value", values)
        replace_table(con, "marts.customer_equity", rollup)
    overall = rollup.filter(pl.col("dimension") == "overall").row(0, named=True)
    segments = rollup.filter(pl.col("dimension") == "segment")
    table = ["| segment | customers | current value | future value | lifetime value |", "|---|---:|---:|---:|---:|"]
    table += [
        f"| {r['dimension_value']} | {r['customers']} | {r['current_value']:,.0f} | {r['future_value']:,.0f} | "
        f"{r['lifetime_value']:,.0f} |"
        for r in segments.iter_rows(named=True)
    ]
    return dg.MaterializeResult(
        metadata={
            "as_of_date": str(as_of),
            "customers": overall["customers"],
            "current_value": overall["current_value"],
            "future_value": overall["future_value"],
            "lifetime_value": overall["lifetime_value"],
            "by_segment": dg.MetadataValue.md("\n".join(table)),
        }
    )


customer_equity_history = snapshot_history_asset("customer_equity", "customer_equity_history", EQUITY_GROUP)


EQUITY_ASSETS = [customer_equity, customer_equity_history]
