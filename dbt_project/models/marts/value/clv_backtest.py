"""Backtest of the purchase model: BG/NBD fitted on purchases up to as_of_date - `clv.backtest.holdout_days` against
the purchases actually made in the holdout, as totals, per calibration frequency and per decile of prediction
(pipeline.lib.equity.backtest_summary).

The backtest judges the model, not tonight's scores, so it is not recomputed every night: it is measured as of the
latest schedule date on or before the run date (`clv.backtest.every_days`, equity.backtest_as_of: Mondays by
default). The first run that reaches a new schedule date computes it; the runs in between keep the stored table when
it is the backtest of that date and holdout. A full build computes the backtest of the same date.
"""

import json

import polars as pl

from pipeline.lib import equity


def _stored(dbt, session) -> pl.DataFrame | None:
    """The table as it stands before this run (None on a first build)."""
    exists = session.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [dbt.this.schema, dbt.this.identifier],
    ).fetchone()[0]
    return session.sql(f"select * from {dbt.this}").pl() if exists else None


def model(dbt, session):
    dbt.config(materialized="table")
    settings = json.loads(dbt.config.get("clv_settings"))
    holdout_days = settings["backtest"]["holdout_days"]
    run_date = dbt.ref("int_run_date").pl().get_column("run_date")[0]
    as_of = equity.backtest_as_of(run_date, settings["backtest"]["every_days"])
    stored = _stored(dbt, session)
    if stored is not None and stored.select("as_of_date", "holdout_days").unique().rows() == [(as_of, holdout_days)]:
        return stored.to_arrow()
    # Only the columns and days the backtest reads.
    purchases = (
        dbt.ref("int_purchases")
        .filter(f"order_date <= cast('{as_of.isoformat()}' as date)")
        .project("customer_id, ordered_at, order_date, net_amount")
        .pl()
    )
    # History shorter than the holdout skips the backtest: the total row counts 0 customers and clv_backtest_ran warns.
    per_customer, _, _ = equity.backtest(purchases, as_of, holdout_days=holdout_days, period=settings["period"])
    summary = equity.backtest_summary(per_customer).with_columns(
        as_of_date=pl.lit(as_of, dtype=pl.Date), holdout_days=pl.lit(holdout_days)
    )
    return summary.to_arrow()
