"""Customer value and equity computations (pipeline/lib/equity.py) on small hand-made frames."""

from dataclasses import replace
from datetime import date, datetime

import numpy as np
import polars as pl
import pytest

from pipeline.lib import clv, equity

AS_OF = date(2026, 6, 30)
MARGIN = 0.35
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


ORDERS = make_orders(
    [
        # A: one costed order last year (margin 100k-10k-50k = 40k), one uncosted old order (200k * 0.35 = 70k)
        ("A", date(2025, 12, 1), "web", 100_000.0, 10_000.0, 50_000.0, True),
        ("A", date(2024, 3, 5), "app", 200_000.0, 0.0, None, True),
        ("A", date(2026, 1, 1), "web", 999_999.0, 0.0, 1.0, False),  # cancelled: ignored everywhere
        # B: two app orders and one store order, all costed
        ("B", date(2026, 6, 1), "store", 50_000.0, 0.0, 30_000.0, True),
        ("B", date(2026, 5, 1), "app", 50_000.0, 0.0, 30_000.0, True),
        ("B", date(2025, 5, 1), "app", 100_000.0, 0.0, 60_000.0, True),
        (None, date(2026, 6, 1), "web", 10_000.0, 0.0, None, True),  # guest checkout: no customer
    ]
)
TICKETS = pl.DataFrame(
    {
        "customer_id": ["A", "A", "A", "C", None],
        "created_at": [
            datetime(2026, 6, 1),
            datetime(2024, 1, 1),
            datetime(2025, 6, 30),
            datetime(2026, 2, 1),
            datetime(2026, 2, 1),
        ],
    }
)
PROFILE = pl.DataFrame(
    {
        "customer_id": ["A", "B", "C"],
        "customer_type": ["end_customer", "reseller", None],
        "first_order_at": [datetime(2024, 3, 5), datetime(2025, 5, 1), None],
        "ticket_count": [3, 0, 1],
        "as_of_date": [AS_OF] * 3,
    }
)


def test_margins_use_item_costs_and_the_default_margin_otherwise():
    purchases = equity.purchases_until(ORDERS, AS_OF)
    margins = equity.customer_margins(purchases, default_margin=MARGIN).sort("customer_id")
    assert margins.rows() == [
        ("A", 2, 300_000.0, 40_000.0 + 70_000.0, 0.4),  # ratio from the costed order only
        ("B", 3, 200_000.0, 80_000.0, 0.4),
    ]
    uncosted = equity.customer_margins(purchases.filter(pl.col("cost_amount").is_null()), default_margin=MARGIN)
    assert uncosted.filter(pl.col("customer_id") == "A")["gross_margin_ratio"].item() == MARGIN


def test_ticket_counts_and_main_channel():
    assert dict(equity.ticket_counts(TICKETS).rows()) == {"A": 3, "C": 1}
    assert dict(equity.ticket_counts(TICKETS, since=date(2025, 6, 30)).rows()) == {"A": 1, "C": 1}
    purchases = equity.purchases_until(ORDERS, AS_OF)
    assert dict(equity.main_channels(purchases).rows()) == {"A": "web", "B": "app"}
    # A tie (one web, one app order): the most recently used channel wins.
    tie = make_orders(
        [("D", date(2026, 1, 1), "web", 1.0, 0.0, None, True), ("D", date(2026, 2, 1), "app", 1.0, 0.0, None, True)]
    )
    assert equity.main_channels(tie)["channel"].to_list() == ["app"]


def test_customer_value_parts_and_equity_rollups():
    purchases = equity.purchases_until(ORDERS, AS_OF)
    scores = pl.DataFrame(
        {"customer_id": ["A", "B", "C"], "clv": [30_000.0, 60_000.0, 0.0], "net_clv": [10_000.0, 60_000.0, 0.0]}
    )
    segments = pl.DataFrame({"customer_id": ["A", "B"], "primary_segment": ["loyal", "new"]})
    values = equity.customer_value(
        PROFILE,
        purchases,
        TICKETS,
        scores,
        segments,
        AS_OF,
        default_margin=MARGIN,
        cost_per_ticket=TICKET,
        current_days=365,
    )
    rows = {r["customer_id"]: r for r in values.iter_rows(named=True)}
    a, b, c = rows["A"], rows["B"], rows["C"]
    assert a["net_value_to_date"] == 110_000.0 - 3 * TICKET
    # Current year (after 2025-06-30): A's costed December order and one ticket.
    assert (a["current_revenue"], a["current_margin"], a["current_tickets"]) == (100_000.0, 40_000.0, 1)
    assert a["current_value"] == 40_000.0 - TICKET
    assert a["lifetime_value"] == a["net_value_to_date"] + 10_000.0
    assert (a["acquisition_cohort"], a["channel"], a["segment"]) == ("2024-Q1", "web", "loyal")
    assert b["current_value"] == 40_000.0 and b["lifetime_value"] == 80_000.0 + 60_000.0
    # C never bought but cost a ticket.
    assert (c["acquisition_cohort"], c["channel"], c["segment"], c["customer_type"]) == (
        equity.NO_PURCHASE,
        equity.NO_PURCHASE,
        equity.UNSEGMENTED,
        equity.UNKNOWN,
    )
    assert c["lifetime_value"] == c["current_value"] == -TICKET

    rollup = equity.equity_by_dimension(values)
    overall = rollup.filter(pl.col("dimension") == "overall").row(0, named=True)
    assert overall["customers"] == 3
    assert overall["lifetime_value"] == pytest.approx(sum(r["lifetime_value"] for r in rows.values()))
    by_type = {
        r["dimension_value"]: r["future_value"]
        for r in rollup.filter(pl.col("dimension") == "customer_type").iter_rows(named=True)
    }
    assert by_type == {"end_customer": 10_000.0, "reseller": 60_000.0, equity.UNKNOWN: 0.0}
    for dimension in equity.EQUITY_DIMENSIONS:
        part = rollup.filter(pl.col("dimension") == dimension)
        assert part["customers"].sum() == 3
        assert part["current_value"].sum() == pytest.approx(overall["current_value"])


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
    markdown = equity.backtest_markdown(summary, "frequency", "repeat purchases")
    assert markdown.splitlines()[2].startswith("| 0 | 10 | 4.5 | 0 | n/a |")


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


def test_score_clv_matches_the_model_library():
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
    fit = equity.fit_clv(inputs, period="days")
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
    np.testing.assert_allclose(
        scored["expected_purchases_30d"], clv.expected_purchases(fit.bgnbd, *args[2:5], 30.0), rtol=1e-10
    )
    # Without a usable Gamma-Gamma fit each customer's own mean purchase value is used.
    no_gamma_gamma = replace(fit, gamma_gamma=equity.unfitted_gamma_gamma(), gamma_gamma_error="none")
    fallback = equity.score_clv(
        inputs, no_gamma_gamma, horizon_months=12, monthly_discount_rate=0.01, cost_per_ticket=TICKET, windows_days=[30]
    )
    assert (fallback["expected_order_value"] == 50_000.0).all()
