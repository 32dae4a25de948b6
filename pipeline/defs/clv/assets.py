"""CLV and customer-equity assets: fit BG/NBD + Gamma-Gamma per run, score every customer, backtest the purchase
model on a holdout, and roll customer value up into customer equity (definitions in pipeline/lib/equity.py).

The run date of every asset is the profile's as_of_date, so reruns over the same data give the same tables.
"""

from datetime import date, datetime

import dagster as dg
import polars as pl

from pipeline.defs.resources import WarehouseResource
from pipeline.lib import equity
from pipeline.lib.warehouse import read_frame, replace_table
from pipeline.settings import section

CLV_GROUP = "clv"
ORDERS = dg.AssetKey(["marts", "fct_orders"])
PROFILE = dg.AssetKey(["marts", "customer_profile"])
TICKETS = dg.AssetKey(["marts", "fct_tickets"])
SEGMENTS = dg.AssetKey(["marts", "customer_segments"])
ORDER_COLUMNS = "customer_id, ordered_at, order_date, channel, net_amount, shipping_amount, cost_amount, is_purchase"


def mart_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["marts", name])


def read_profile(con) -> tuple[pl.DataFrame, date]:
    profile = read_frame(con, "select * from marts.customer_profile")
    as_of = profile["as_of_date"].max()
    if as_of is None:
        raise ValueError("marts.customer_profile is empty: no as_of_date to score for")
    return profile, as_of


def read_purchases(con, as_of: date) -> pl.DataFrame:
    return equity.purchases_until(read_frame(con, f"select {ORDER_COLUMNS} from marts.fct_orders"), as_of)


def _params_markdown(fit: equity.ClvFit) -> str:
    lines = ["| model | parameter | value |", "|---|---|---:|"]
    lines += [f"| BG/NBD | {name} | {getattr(fit.bgnbd, name):.6g} |" for name in ("r", "alpha", "a", "b")]
    lines += [f"| Gamma-Gamma | {name} | {getattr(fit.gamma_gamma, name):.6g} |" for name in ("p", "q", "gamma")]
    return "\n".join(lines)


@dg.asset(
    key=mart_key("customer_clv"),
    group_name=CLV_GROUP,
    deps=[ORDERS, PROFILE],
    pool="warehouse",
    description="Per customer: P(alive), expected purchases (30/90/365 days and the horizon), expected order value, "
    "discounted margin CLV, expected cost to serve and net CLV. Also writes marts.clv_model_params.",
)
def customer_clv(warehouse: WarehouseResource) -> dg.MaterializeResult:
    settings, windows = section("clv"), section("equity")["expected_purchase_days"]
    with warehouse.connect() as con:
        profile, as_of = read_profile(con)
        purchases = read_purchases(con, as_of)
        inputs = equity.clv_inputs(
            purchases, profile, as_of, period=settings["period"], default_margin=settings["default_gross_margin"]
        )
        fit = equity.fit_clv(inputs, period=settings["period"])
        scored = equity.score_clv(
            inputs,
            fit,
            horizon_months=settings["horizon_months"],
            monthly_discount_rate=settings["monthly_discount_rate"],
            cost_per_ticket=settings["cost_per_ticket"],
            windows_days=windows,
        )
        frame = equity.customer_clv_frame(profile, scored, as_of)
        replace_table(con, "marts.customer_clv", frame)
        replace_table(con, "marts.clv_model_params", equity.params_table(fit, datetime.now(), as_of))
    problems = fit.problems()
    return dg.MaterializeResult(
        metadata={
            "as_of_date": str(as_of),
            "customers": frame.height,
            "customers_scored": scored.height,
            "repeat_customers": int((scored["frequency"] > 0).sum()),
            "fit_seconds": round(fit.fit_seconds, 3),
            "bgnbd_converged": fit.bgnbd.converged,
            "gamma_gamma_converged": fit.gamma_gamma.converged,
            "gamma_gamma_used": fit.gamma_gamma_usable,
            "gamma_gamma_zero_spend_excluded": fit.gamma_gamma.zero_spend_excluded,
            "parameters": dg.MetadataValue.md(_params_markdown(fit)),
            "fit_problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
            "total_clv": float(frame["clv"].sum()),
            "total_net_clv": float(frame["net_clv"].sum()),
            **{f"total_expected_purchases_{d}d": float(scored[f"expected_purchases_{d}d"].sum()) for d in windows},
        }
    )


@dg.asset(
    key=mart_key("clv_backtest"),
    group_name=CLV_GROUP,
    deps=[ORDERS, PROFILE],
    pool="warehouse",
    description="BG/NBD fitted up to as_of - holdout_days vs the purchases actually made in the holdout: totals, "
    "per calibration frequency and per decile of prediction.",
)
def clv_backtest(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    settings = section("clv")
    holdout_days = settings["backtest"]["holdout_days"]
    with warehouse.connect() as con:
        _, as_of = read_profile(con)
        purchases = read_purchases(con, as_of)
        per_customer, params, skipped = equity.backtest(
            purchases, as_of, holdout_days=holdout_days, period=settings["period"]
        )
        summary = equity.backtest_summary(per_customer).with_columns(
            as_of_date=pl.lit(as_of, dtype=pl.Date), holdout_days=pl.lit(holdout_days)
        )
        replace_table(con, "marts.clv_backtest", summary)
    if skipped:
        context.log.warning(f"CLV backtest skipped: {skipped}")
        return dg.MaterializeResult(
            metadata={
                "as_of_date": str(as_of),
                "holdout_days": holdout_days,
                "customers": 0,
                "skipped": skipped,
            }
        )
    total = summary.filter(pl.col("grouping") == "total").row(0, named=True)
    return dg.MaterializeResult(
        metadata={
            "as_of_date": str(as_of),
            "holdout_days": holdout_days,
            "customers": total["customers"],
            "predicted_purchases": round(total["predicted_purchases"], 2),
            "actual_purchases": total["actual_purchases"],
            "relative_error": total["relative_error"],
            "mean_absolute_error": total["mean_absolute_error"],
            "calibration_fit_converged": params.converged,
            "by_frequency": dg.MetadataValue.md(equity.backtest_markdown(summary, "frequency", "repeat purchases")),
            "by_decile": dg.MetadataValue.md(equity.backtest_markdown(summary, "decile", "decile of prediction")),
        }
    )


CLV_ASSETS = [customer_clv, clv_backtest]
