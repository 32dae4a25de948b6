"""The CLV fit, scoring and backtest helpers of pipeline/lib/equity.py on small hand-made frames (margins, customer
value and equity roll-ups are dbt models, unit-tested in dbt_project/models/marts/value/_value_unit_tests.yml)."""

from dataclasses import replace
from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.lib import clv, equity

AS_OF = date(2026, 6, 30)
TICKET = 25_000.0


def make_orders(rows) -> pl.DataFrame:
    """rows: (customer_id, order_date, channel, net_amount, shipping_amount, cost_amount, is_purchase)."""
    frame = pl.DataFrame(
        rows,
        orient="row",
        schema={
            "customer_id": pl.String,
            "order_date": pl.Date,
            "channel": pl.String,
            "net_amount": pl.Float64,
            "shipping_amount": pl.Float64,
            "cost_amount": pl.Float64,
            "is_purchase": pl.Boolean,
        },
    )
    return frame.with_columns(ordered_at=pl.col("order_date").cast(pl.Datetime("us")))


def test_params_table_round_trips_and_reports_problems():
    bgnbd = clv.BGNBDParams(0.24, 4.41, 0.79, 2.43, "weeks", -9582.4, True, 30, 2357.0, False)
    gamma_gamma = clv.GammaGammaParams(6.25, 3.74, 15.44, -4000.0, True, 20, 946, False)
    fit = equity.ClvFit(bgnbd, gamma_gamma, None, 0.5)
    table = equity.params_table(fit, datetime(2026, 7, 1, 2), AS_OF)
    assert set(table.columns) >= {"model", "param", "value", "converged", "fitted_at"}
    assert equity.fit_from_params_table(table) == replace(fit, fit_seconds=0.0)  # timing is not stored
    assert fit.problems() == [] and fit.gamma_gamma_usable

    failed = equity.ClvFit(replace(bgnbd, converged=False), equity.unfitted_gamma_gamma(), "nobody repeats", 0.1)
    restored = equity.fit_from_params_table(equity.params_table(failed, datetime(2026, 7, 1), AS_OF))
    problems = restored.problems()
    assert "BG/NBD: optimiser did not converge" in problems
    assert "Gamma-Gamma could not be fitted: nobody repeats" in problems
    assert not restored.gamma_gamma_usable


def test_backtest_summary_buckets():
    frame = pl.DataFrame(
        {
            "customer_id": [f"C{i:02d}" for i in range(20)],
            "frequency": [0] * 10 + [1] * 5 + [9] * 5,
            "predicted_holdout": np.arange(20) / 10,
            "frequency_holdout": [0] * 10 + [1] * 5 + [3] * 5,
        }
    )
    summary = equity.backtest_summary(frame)
    total = summary.filter(pl.col("grouping") == "total").row(0, named=True)
    assert (total["customers"], total["actual_purchases"]) == (20, 20.0)
    assert total["predicted_purchases"] == pytest.approx(19.0)
    assert total["relative_error"] == pytest.approx(-0.05)
    expected_mae = np.abs(np.arange(20) / 10 - frame["frequency_holdout"].to_numpy()).mean()
    assert total["mean_absolute_error"] == pytest.approx(expected_mae)
    frequency = summary.filter(pl.col("grouping") == "frequency")
    assert frequency.select("bucket", "customers").rows() == [("0", 10), ("1", 5), ("7+", 5)]
    assert frequency["relative_error"][0] is None  # nobody in the bucket bought: no relative error
    deciles = summary.filter(pl.col("grouping") == "decile")
    assert deciles["customers"].to_list() == [2] * 10
    assert deciles["actual_purchases"].to_list() == [0.0] * 5 + [2.0, 2.0, 4.0, 6.0, 6.0]


def test_backtest_is_skipped_when_history_is_shorter_than_the_holdout():
    young = make_orders(
        [
            ("A", date(2026, 6, 1), "web", 100_000.0, 0.0, None, True),
            ("A", date(2026, 6, 20), "web", 50_000.0, 0.0, None, True),
            ("B", date(2026, 6, 10), "app", 80_000.0, 0.0, None, True),
        ]
    )
    frame, params, skipped = equity.backtest(young, AS_OF, holdout_days=90, period="days")
    assert frame.is_empty() and params is None
    assert (
        skipped == "history starts 2026-06-01 (29 days before 2026-06-30): shorter than the 90-day holdout, "
        "nothing to calibrate on"
    )
    # The table still says which as-of and holdout it covers: one total row of nobody.
    assert equity.backtest_summary(frame).rows() == [("total", "all", 0, 0.0, 0.0, None, None)]

    frame, params, skipped = equity.backtest(young, AS_OF, holdout_days=25, period="days")
    assert skipped is None and params is not None and frame["customer_id"].to_list() == ["A"]


def test_score_clv_matches_the_model_library(monkeypatch):
    rng = np.random.default_rng(2)
    sample = clv.sample_bgnbd(400, 0.5, 30.0, 0.8, 3.0, rng.uniform(30, 400, 400), rng)
    zbar = clv.sample_gamma_gamma(sample["frequency"], 4.0, 3.0, 30_000.0, rng)
    inputs = pl.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(400)],
            "frequency": sample["frequency"],
            "recency": sample["recency"],
            "T": sample["T"],
            "monetary_value": zbar,
            "mean_purchase_value": 50_000.0,
            "gross_margin_ratio": rng.uniform(0.2, 0.5, 400),
            "tickets_per_purchase": rng.choice([0.0, 0.5, 2.0], 400),
        }
    )
    histories = inputs.group_by("frequency", "recency", "T").agg(customers=pl.len())
    fit = equity.fit_clv(histories, inputs.filter(pl.col("frequency") > 0), period="days")
    assert fit.problems() == []
    scored = equity.score_clv(
        inputs, fit, horizon_months=12, monthly_discount_rate=0.01, cost_per_ticket=TICKET, windows_days=[30]
    )
    args = (fit.bgnbd, fit.gamma_gamma, sample["frequency"], sample["recency"], sample["T"], zbar)
    margin = inputs["gross_margin_ratio"].to_numpy()
    cost = inputs["tickets_per_purchase"].to_numpy() * TICKET
    expected = clv.customer_lifetime_value(*args, horizon_months=12, monthly_discount_rate=0.01, margin=margin)
    expected_net = clv.customer_lifetime_value(
        *args, horizon_months=12, monthly_discount_rate=0.01, margin=margin, cost_per_purchase=cost
    )
    np.testing.assert_allclose(scored["clv"], expected, rtol=1e-10)
    np.testing.assert_allclose(scored["net_clv"], expected_net, rtol=1e-10, atol=1e-6)
    # Scored in slices (customer_clv at millions of customers): the same rows, in the same order.
    monkeypatch.setattr(equity, "SCORE_CHUNK_ROWS", 7)
    sliced = equity.score_clv(
        inputs, fit, horizon_months=12, monthly_discount_rate=0.01, cost_per_ticket=TICKET, windows_days=[30]
    )
    assert_frame_equal(sliced, scored)
    empty = equity.score_clv(
        inputs.clear(), fit, horizon_months=12, monthly_discount_rate=0.01, cost_per_ticket=TICKET, windows_days=[30]
    )
    assert empty.is_empty() and empty.columns == scored.columns
    np.testing.assert_allclose(
        scored["expected_purchases_30d"], clv.expected_purchases(fit.bgnbd, *args[2:5], 30.0), rtol=1e-10
    )
    # Without a usable Gamma-Gamma fit each customer's own mean purchase value is used.
    no_gamma_gamma = replace(fit, gamma_gamma=equity.unfitted_gamma_gamma(), gamma_gamma_error="none")
    fallback = equity.score_clv(
        inputs, no_gamma_gamma, horizon_months=12, monthly_discount_rate=0.01, cost_per_ticket=TICKET, windows_days=[30]
    )
    assert (fallback["expected_order_value"] == 50_000.0).all()


def test_customer_clv_relation_joins_every_profile_customer_in_duckdb():
    """Every profile customer once; a non-buyer gets clv = cost = net = 0 and null predictions, a buyer whose
    prediction is undefined (a degenerate fit) keeps its nulls; every row carries the run date."""
    con = duckdb.connect()
    profile = con.sql("select * from (values ('A', 'x'), ('B', 'y'), ('C', 'z')) as profile (customer_id, city)")
    run = con.sql("select date '2026-06-30' as run_date")
    scored = pl.DataFrame(
        {
            "customer_id": ["A", "C"],
            "frequency": [2, 0],
            "p_alive": [0.5, None],
            "clv": [100.0, None],
            "expected_cost_to_serve": [10.0, None],
            "net_clv": [90.0, None],
        }
    )
    table = equity.customer_clv_relation(profile, run, con.from_arrow(scored.to_arrow())).pl().sort("customer_id")
    assert table.columns == [*scored.columns, "has_purchase", "as_of_date"]
    assert table.rows() == [
        ("A", 2, 0.5, 100.0, 10.0, 90.0, True, AS_OF),
        ("B", None, None, 0.0, 0.0, 0.0, False, AS_OF),
        ("C", 0, None, None, None, None, True, AS_OF),
    ]


def test_backtest_as_of_is_the_latest_schedule_date():
    monday = date(2026, 6, 29)
    assert monday.weekday() == 0
    # Weekly: Mondays; every run of the week measures as of its Monday.
    assert {equity.backtest_as_of(monday + timedelta(days=d), 7) for d in range(7)} == {monday}
    assert equity.backtest_as_of(monday + timedelta(days=7), 7) == monday + timedelta(days=7)
    assert equity.backtest_as_of(monday + timedelta(days=3), 1) == monday + timedelta(days=3)
    with pytest.raises(ValueError, match="every_days"):
        equity.backtest_as_of(monday, 0)
