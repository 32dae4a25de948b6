"""Backtest of the purchase model: BG/NBD fitted on purchases up to run date - `clv.backtest.holdout_days`
against the purchases actually made in the holdout, as totals, per calibration frequency and per decile of
prediction (pipeline.lib.equity.backtest_summary)."""

import json

import polars as pl

from pipeline.lib import equity


def model(dbt, session):
    dbt.config(materialized="table")
    settings = json.loads(dbt.config.get("clv_settings"))
    holdout_days = settings["backtest"]["holdout_days"]
    run_date = dbt.ref("int_run_date").pl().get_column("run_date")[0]
    # History shorter than the holdout skips the backtest: the total row counts 0 customers and clv_backtest_ran warns.
    per_customer, _, _ = equity.backtest(
        dbt.ref("int_purchases").pl(), run_date, holdout_days=holdout_days, period=settings["period"]
    )
    summary = equity.backtest_summary(per_customer).with_columns(
        as_of_date=pl.lit(run_date, dtype=pl.Date), holdout_days=pl.lit(holdout_days)
    )
    return summary.to_arrow()
