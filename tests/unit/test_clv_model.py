"""BG/NBD + Gamma-Gamma CLV models: published CDNOW estimates, predictions, RFM summaries, synthetic recovery.

The CDNOW data ship with the `lifetimes` wheel (dev dependency); they are read as package files without importing
lifetimes itself, which needs an older pandas.
"""

from __future__ import annotations

import importlib.util
import io
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.optimize import approx_fprime

from pipeline.lib import clv

# find_spec locates the package without running its __init__ (importlib.resources.files would import it, and with
# it pandas: ~1 s of every xdist worker's collection).
DATASETS = Path(importlib.util.find_spec("lifetimes").submodule_search_locations[0]) / "datasets"
CDNOW_CALIBRATION_END = date(1997, 9, 30)  # 39 weeks after the cohort's first day, 1997-01-01


def _dataset_csv(name: str) -> pl.DataFrame:
    return pl.read_csv(DATASETS.joinpath(name).read_bytes())


@pytest.fixture(scope="module")
def cdnow_summary() -> pl.DataFrame:
    """The published 2,357-customer CDNOW calibration summary: frequency, recency, T in weeks."""
    return _dataset_csv("cdnow_customers_summary.csv")


@pytest.fixture(scope="module")
def cdnow_transactions() -> pl.DataFrame:
    """The raw CDNOW sample: master id, sample id, yyyymmdd, number of CDs, dollar value (whitespace separated)."""
    fields = np.loadtxt(io.StringIO(DATASETS.joinpath("CDNOW_sample.txt").read_text()), dtype=str)
    return pl.DataFrame(
        {
            "customer_id": fields[:, 1].astype(np.int64),
            "ordered_at": pl.Series(fields[:, 2]).str.strptime(pl.Date, "%Y%m%d"),
            "amount": fields[:, 4].astype(np.float64),
        }
    )


@pytest.fixture(scope="module")
def cdnow_bgnbd(cdnow_summary) -> clv.BGNBDParams:
    return clv.fit_bgnbd(cdnow_summary["frequency"], cdnow_summary["recency"], cdnow_summary["T"], period="weeks")


def test_bgnbd_reproduces_the_published_cdnow_estimates(cdnow_bgnbd):
    # Fader, Hardie & Lee (2005), CDNOW 39-week calibration: r=0.243, alpha=4.414, a=0.793, b=2.426, LL=-9582.4.
    fit = cdnow_bgnbd
    assert (round(fit.r, 3), round(fit.alpha, 3), round(fit.a, 3), round(fit.b, 3)) == (0.243, 4.414, 0.793, 2.426)
    assert round(fit.log_likelihood, 1) == -9582.4
    assert fit.converged and not fit.at_bounds and fit.n_customers == 2357 and fit.period == "weeks"
    assert clv.degenerate_reasons(fit) == []


def test_summary_from_raw_cdnow_transactions_matches_the_published_one_and_gamma_gamma_estimates(cdnow_transactions):
    summary = clv.rfm_summary(cdnow_transactions, CDNOW_CALIBRATION_END, period="weeks")
    published = _dataset_csv("cdnow_customers_summary_with_transactions.csv")  # ID, x, t_x, T, zbar (2 decimals)
    both = summary.join(published, left_on="customer_id", right_on="ID", how="full", coalesce=True)
    assert both.height == summary.height == published.height == 2357
    assert (both["frequency"] == both["x"]).all()
    for ours, theirs in (("recency", "t_x"), ("T", "T_right"), ("monetary_value", "zbar")):
        assert (both[ours] - both[theirs]).abs().max() <= 0.005 + 1e-9, ours

    # Fader & Hardie's Gamma-Gamma note, 946 repeat customers: p=6.25, q=3.74, gamma=15.44.
    spend = clv.fit_gamma_gamma(summary["frequency"], summary["monetary_value"])
    assert (round(spend.p, 2), round(spend.q, 2), round(spend.gamma, 2)) == (6.25, 3.74, 15.44)
    assert spend.n_customers == 946 and spend.converged and clv.degenerate_reasons(spend) == []
    # The published file's zbar is rounded to cents, which moves gamma by under 0.01.
    rounded = clv.fit_gamma_gamma(published["x"], published["zbar"])
    assert (round(rounded.p, 2), round(rounded.q, 2)) == (6.25, 3.74) and abs(rounded.gamma - 15.44) < 0.01


def test_analytic_gradients_match_finite_differences(cdnow_summary):
    rng = np.random.default_rng(3)
    x = cdnow_summary["frequency"].to_numpy().astype(float)
    t_x, T = cdnow_summary["recency"].to_numpy() / 39, cdnow_summary["T"].to_numpy() / 39
    w = rng.integers(1, 4, len(x)).astype(float)
    x_values, x_weights = clv._weight_by_value(x, w)
    point = np.log([0.5, 0.2, 1.7, 3.0])
    bgnbd = lambda lp: clv._bgnbd_ll_and_grad(lp, x, t_x, T, w, x_values, x_weights)  # noqa: E731
    np.testing.assert_allclose(bgnbd(point)[1], approx_fprime(point, lambda lp: bgnbd(lp)[0], 1e-7), rtol=1e-4)

    repeat = x > 0
    x_r = x[repeat]
    total_spend = x_r * rng.gamma(2.0, 1.0, repeat.sum())
    k, n_k = clv._weight_by_value(x_r, np.ones(repeat.sum()))
    sums = (x_r @ np.log(total_spend), np.log(total_spend).sum(), np.log(x_r).sum())
    spend = lambda lp: clv._gamma_gamma_ll_and_grad(lp, x_r, total_spend, k, n_k, sums)  # noqa: E731
    point = np.log([3.0, 2.5, 0.7])
    np.testing.assert_allclose(spend(point)[1], approx_fprime(point, lambda lp: spend(lp)[0], 1e-7), rtol=1e-4)


def test_weights_equal_repeated_rows():
    donations = _dataset_csv("donations.csv")  # frequency, recency, periods, weights: a pre-aggregated table
    weighted = clv.fit_bgnbd(
        donations["frequency"], donations["recency"], donations["periods"], period="days", weights=donations["weights"]
    )
    counts = donations["weights"].to_numpy()
    expanded = clv.fit_bgnbd(
        *(np.repeat(donations[c].to_numpy(), counts) for c in ("frequency", "recency", "periods")), period="days"
    )
    assert weighted.n_customers == expanded.n_customers == counts.sum()
    for name in ("r", "alpha", "a", "b", "log_likelihood"):
        assert getattr(weighted, name) == pytest.approx(getattr(expanded, name), rel=1e-6), name


def test_grouped_cdnow_histories_and_a_warm_start_give_the_per_customer_fit(cdnow_summary, cdnow_bgnbd):
    """What the nightly fit does: one row per distinct (x, t_x, T) weighted by its customers, started from the
    previous night's parameters (here in days, as stored), gives the published per-customer estimates."""
    grouped = cdnow_summary.group_by("frequency", "recency", "T").agg(customers=pl.len())
    assert grouped.height < cdnow_summary.height / 2

    def fit_grouped(start=None):
        return clv.fit_bgnbd(
            grouped["frequency"],
            grouped["recency"],
            grouped["T"],
            period="weeks",
            weights=grouped["customers"],
            start=start,
        )

    previous = clv.BGNBDParams(0.25, 4.5 * 7, 0.8, 2.5, "days", 0.0, True, 0, 2000.0, False)
    cold, warm = fit_grouped(), fit_grouped(previous)
    for fit in (cold, warm):
        assert (round(fit.r, 3), round(fit.alpha, 3), round(fit.a, 3), round(fit.b, 3)) == (0.243, 4.414, 0.793, 2.426)
        assert fit.converged and fit.n_customers == 2357
        for name in ("r", "alpha", "a", "b", "log_likelihood"):
            assert getattr(fit, name) == pytest.approx(getattr(cdnow_bgnbd, name), rel=1e-6), name
    assert warm.iterations < cold.iterations
    # A broken previous fit is no place to start: the fit starts cold instead.
    assert fit_grouped(replace(previous, r=float("nan"))).iterations == cold.iterations


def test_gamma_gamma_warm_start_reaches_the_published_estimates(cdnow_transactions):
    summary = clv.rfm_summary(cdnow_transactions, CDNOW_CALIBRATION_END, period="weeks")
    cold = clv.fit_gamma_gamma(summary["frequency"], summary["monetary_value"])
    warm = clv.fit_gamma_gamma(summary["frequency"], summary["monetary_value"], start=replace(cold, p=6.0, q=3.5))
    assert (round(warm.p, 2), round(warm.q, 2), round(warm.gamma, 2)) == (6.25, 3.74, 15.44)
    for name in ("p", "q", "gamma"):
        assert getattr(warm, name) == pytest.approx(getattr(cold, name), rel=1e-6), name
    assert warm.iterations < cold.iterations


def test_time_unit_only_rescales_alpha_and_leaves_clv_unchanged(cdnow_summary, cdnow_bgnbd):
    in_days = clv.fit_bgnbd(
        cdnow_summary["frequency"], cdnow_summary["recency"] * 7, cdnow_summary["T"] * 7, period="days"
    )
    assert in_days.alpha == pytest.approx(cdnow_bgnbd.alpha * 7, rel=1e-5)
    assert (in_days.r, in_days.a, in_days.b) == pytest.approx((cdnow_bgnbd.r, cdnow_bgnbd.a, cdnow_bgnbd.b), rel=1e-5)
    spend = clv.GammaGammaParams(6.25, 3.74, 15.44, 0.0, True, 0, 946, False)
    x, t_x, T = (cdnow_summary[c].to_numpy() for c in ("frequency", "recency", "T"))
    zbar = np.full(len(x), 20.0)
    kwargs = {"horizon_months": 12, "monthly_discount_rate": 0.01, "margin": 0.3}
    weekly = clv.customer_lifetime_value(cdnow_bgnbd, spend, x, t_x, T, zbar, **kwargs)
    daily = clv.customer_lifetime_value(in_days, spend, x, t_x * 7, T * 7, zbar, **kwargs)
    np.testing.assert_allclose(daily, weekly, rtol=1e-4)


def test_probability_alive_behaves(cdnow_bgnbd):
    fit = cdnow_bgnbd
    assert np.all(clv.probability_alive(fit, [0, 0, 0], [0, 0, 0], [1.0, 20.0, 80.0]) == 1.0)
    recency = np.linspace(1, 38.86, 40)
    by_recency = clv.probability_alive(fit, np.full(40, 3), recency, np.full(40, 38.86))
    assert np.all(np.diff(by_recency) > 0) and by_recency[-1] < 1 and by_recency[0] > 0
    by_age = clv.probability_alive(fit, np.full(40, 3), np.full(40, 10.0), np.linspace(10, 80, 40))
    assert np.all(np.diff(by_age) < 0)
    # The same recent last purchase, but more purchases: a frequent buyer who went quiet is likelier gone.
    by_frequency = clv.probability_alive(fit, np.arange(1, 20), np.full(19, 20.0), np.full(19, 38.86))
    assert np.all(np.diff(by_frequency) < 0)


def test_expected_purchases_behave(cdnow_bgnbd):
    fit = cdnow_bgnbd
    horizons = np.linspace(0, 104, 30)
    active = clv.expected_purchases(fit, 5, 37.0, 38.86, horizons)
    assert active[0] == 0 and np.all(np.diff(active) > 0)
    newcomer = clv.expected_purchases(fit, np.zeros(10), np.zeros(10), np.linspace(1, 60, 10), 39)
    assert np.all(newcomer > 0) and np.all(np.diff(newcomer) < 0)
    # Buying more (by the same recent date) predicts more purchases; a long silence predicts fewer.
    assert np.all(np.diff(clv.expected_purchases(fit, np.arange(1, 15), np.full(14, 38.0), 38.86, 39)) > 0)
    assert np.all(np.diff(clv.expected_purchases(fit, np.full(10, 4), np.linspace(2, 38, 10), 38.86, 39)) > 0)
    # A reseller with 600 purchase days in 30 weeks stays finite and below the alive-forever Poisson mean.
    heavy = clv.expected_purchases(fit, 600, 29.9, 30.0, 39)
    assert 0 < heavy < (fit.r + 600) / (fit.alpha + 30.0) * 39


@pytest.mark.parametrize("true", [(0.25, 4.0, 0.8, 2.5), (0.6, 8.0, 2.5, 6.0)], ids=["a<1", "a>1"])
def test_conditional_expectation_matches_simulated_holdout_purchases(true):
    rng = np.random.default_rng(21)
    r, alpha, a, b = true
    n = 60_000
    sample = clv.sample_bgnbd(n, r, alpha, a, b, rng.uniform(5, 60, n), rng, holdout=39.0)
    params = clv.BGNBDParams(r, alpha, a, b, "weeks", 0.0, True, 0, n, False)
    predicted = clv.expected_purchases(params, sample["frequency"], sample["recency"], sample["T"], 39.0)
    actual = sample["frequency_holdout"]
    assert predicted.mean() == pytest.approx(actual.mean(), rel=0.03)
    for group in (
        sample["frequency"] == 0,
        (sample["frequency"] >= 1) & (sample["frequency"] <= 3),
        sample["frequency"] > 3,
    ):
        assert predicted[group].mean() == pytest.approx(actual[group].mean(), rel=0.06)


def test_bgnbd_and_gamma_gamma_recover_simulated_parameters():
    rng = np.random.default_rng(7)
    n = 200_000
    true_bgnbd = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
    sample = clv.sample_bgnbd(n, T=rng.uniform(5, 80, n), rng=rng, **true_bgnbd)
    fit = clv.fit_bgnbd(sample["frequency"], sample["recency"], sample["T"], period="weeks")
    assert fit.converged and clv.degenerate_reasons(fit) == []
    for name, value in true_bgnbd.items():
        assert getattr(fit, name) == pytest.approx(value, rel=0.10), name

    true_spend = {"p": 6.0, "q": 4.0, "gamma": 150_000.0}  # IDR scale
    monetary = clv.sample_gamma_gamma(sample["frequency"], rng=rng, **true_spend)
    spend = clv.fit_gamma_gamma(sample["frequency"], monetary)
    assert spend.n_customers == int(np.sum(sample["frequency"] > 0)) and clv.degenerate_reasons(spend) == []
    for name, value in true_spend.items():
        assert getattr(spend, name) == pytest.approx(value, rel=0.10), name


def test_expected_order_value_shrinks_towards_the_population_mean():
    spend = clv.GammaGammaParams(6.25, 3.74, 15.44, 0.0, True, 0, 946, False)
    population_mean = spend.p * spend.gamma / (spend.q - 1)
    values = clv.expected_order_value(spend, [0, 1, 5, 50, 5000], [999.0, 80.0, 80.0, 80.0, 80.0])
    assert values[0] == pytest.approx(population_mean)
    assert population_mean < values[1] < values[2] < values[3] < values[4] < 80.0
    assert values[4] == pytest.approx(80.0, rel=1e-3)


def test_scoring_by_history_gives_each_customer_its_own_prediction(cdnow_summary, cdnow_bgnbd):
    """customer_clv scores every window and month on the distinct (frequency, T) once: the same numbers, bit for
    bit, as each customer scored alone; CDNOW shares many histories (one purchase, the same cohort day)."""
    x, t_x, T = (cdnow_summary[c].to_numpy() for c in ("frequency", "recency", "T"))
    assert len(np.unique(np.column_stack([x, T]), axis=0)) < len(x) / 2
    windows, monthly = clv.expected_purchases_by_history(cdnow_bgnbd, x, t_x, T, [4.0, 13.0], 12)
    for window, t in zip(windows, (4.0, 13.0), strict=True):
        np.testing.assert_array_equal(window, clv.expected_purchases(cdnow_bgnbd, x, t_x, T, t))
    month_ends = np.arange(1, 13) * clv.PERIODS_PER_MONTH["weeks"]
    cumulative = np.column_stack([clv.expected_purchases(cdnow_bgnbd, x, t_x, T, t) for t in month_ends])
    np.testing.assert_allclose(monthly, np.diff(cumulative, axis=1, prepend=0.0), rtol=1e-9, atol=1e-15)


def test_clv_is_discounted_expected_margin(cdnow_summary, cdnow_bgnbd):
    spend = clv.GammaGammaParams(6.25, 3.74, 15.44, 0.0, True, 0, 946, False)
    summary = cdnow_summary.rename({"ID": "customer_id"}).with_columns(
        monetary_value=pl.when(pl.col("frequency") > 0).then(pl.lit(25.0)).otherwise(0.0)
    )
    x, t_x, T, zbar = (summary[c].to_numpy() for c in ("frequency", "recency", "T", "monetary_value"))
    order_value = clv.expected_order_value(spend, x, zbar)
    year = clv.expected_purchases(cdnow_bgnbd, x, t_x, T, 12 * clv.PERIODS_PER_MONTH["weeks"])

    monthly = clv.monthly_expected_purchases(cdnow_bgnbd, x, t_x, T, 12)
    assert monthly.shape == (len(x), 12) and np.all(monthly > 0)
    np.testing.assert_allclose(monthly.sum(axis=1), year, rtol=1e-10)

    undiscounted = clv.customer_lifetime_value(
        cdnow_bgnbd, spend, x, t_x, T, zbar, horizon_months=12, monthly_discount_rate=0.0
    )
    np.testing.assert_allclose(undiscounted, year * order_value, rtol=1e-10)
    scored = clv.score_customers(
        summary, cdnow_bgnbd, spend, horizon_months=12, monthly_discount_rate=0.01, margin=0.35, cost_per_purchase=1.5
    )
    discount = 1.01 ** -np.arange(1, 13)
    np.testing.assert_allclose(scored["clv"].to_numpy(), (monthly @ discount) * (order_value * 0.35 - 1.5), rtol=1e-10)
    assert np.all(scored["clv"].to_numpy() < undiscounted * 0.35)
    assert scored.columns == [*summary.columns, "p_alive", "expected_purchases", "expected_order_value", "clv"]
    np.testing.assert_allclose(scored["expected_purchases"].to_numpy(), year, rtol=1e-10)
    np.testing.assert_allclose(scored["p_alive"].to_numpy(), clv.probability_alive(cdnow_bgnbd, x, t_x, T))
    # Per-customer margins are accepted as arrays.
    margins = np.where(x > 2, 0.5, 0.2)
    per_customer = clv.customer_lifetime_value(
        cdnow_bgnbd, spend, x, t_x, T, zbar, horizon_months=12, monthly_discount_rate=0.0, margin=margins
    )
    np.testing.assert_allclose(per_customer, undiscounted * margins, rtol=1e-10)


def test_degenerate_fits_are_flagged(cdnow_bgnbd):
    rng = np.random.default_rng(5)
    nobody_returns = clv.fit_bgnbd(np.zeros(500), np.zeros(500), rng.uniform(1, 50, 500), period="weeks")
    assert clv.is_degenerate(nobody_returns)
    every_order_alike = clv.fit_gamma_gamma(rng.integers(1, 5, 500), np.full(500, 50_000.0))
    assert clv.is_degenerate(every_order_alike)

    assert not clv.is_degenerate(cdnow_bgnbd)
    assert any("converge" in r for r in clv.degenerate_reasons(replace(cdnow_bgnbd, converged=False)))
    assert any("bound" in r for r in clv.degenerate_reasons(replace(cdnow_bgnbd, at_bounds=True)))
    assert any("alpha" in r for r in clv.degenerate_reasons(replace(cdnow_bgnbd, alpha=float("nan"))))
    assert any("b=" in r for r in clv.degenerate_reasons(replace(cdnow_bgnbd, b=3e5)))
    heavy_tail = clv.GammaGammaParams(6.25, 0.9, 15.44, -10.0, True, 10, 946, False)
    assert clv.degenerate_reasons(heavy_tail) == ["q=0.9 <= 1: the expected order value is infinite"]


def test_fit_rejects_impossible_histories():
    with pytest.raises(ValueError, match="recency"):
        clv.fit_bgnbd([1, 2], [5.0, 9.0], [4.0, 10.0], period="days")
    with pytest.raises(ValueError, match="recency > 0"):
        clv.fit_bgnbd([1], [0.0], [4.0], period="days")
    with pytest.raises(ValueError, match="period"):
        clv.fit_bgnbd([1], [1.0], [4.0], period="months")
    with pytest.raises(ValueError, match="positive mean order value \\(2 repeat customers without spend left out"):
        clv.fit_gamma_gamma([1, 2, 0], [0.0, 0.0, 10.0])


def test_repeat_customers_without_spend_are_left_out_of_gamma_gamma_and_counted():
    published = _dataset_csv("cdnow_customers_summary_with_transactions.csv")  # x repeat purchases, zbar mean value
    spending = clv.fit_gamma_gamma(published["x"], published["zbar"])
    # Two repeat customers whose repeat orders were free (zero mean value) and one with a missing value.
    frequency = np.concatenate([published["x"].to_numpy(), [3, 1, 2]])
    monetary = np.concatenate([published["zbar"].to_numpy(), [0.0, 0.0, np.nan]])
    fitted = clv.fit_gamma_gamma(frequency, monetary)
    assert fitted.zero_spend_excluded == 3 and spending.zero_spend_excluded == 0
    assert fitted.n_customers == spending.n_customers == 946
    assert (fitted.p, fitted.q, fitted.gamma) == pytest.approx((spending.p, spending.q, spending.gamma), rel=1e-6)


# Hand-made orders, as of 2024-02-10:
#   A buys 100 + 50 on Jan 1 (one purchase day, 150), 200 on Jan 11, 300 on Jan 31 23:59.
#   B buys only on Feb 1.  D buys on Jan 5 and again after the as-of date.  C buys only after it.
#   A guest order (no customer_id) is ignored.
HAND_ORDERS = pl.DataFrame(
    {
        "customer_id": ["A", "A", "A", "A", "B", "C", "D", "D", None],
        "ordered_at": [
            datetime(2024, 1, 1, 9),
            datetime(2024, 1, 1, 21),
            datetime(2024, 1, 11, 12),
            datetime(2024, 1, 31, 23, 59),
            datetime(2024, 2, 1, 8),
            datetime(2024, 2, 15, 10),
            datetime(2024, 1, 5, 7),
            datetime(2024, 2, 20, 9),
            datetime(2024, 1, 2, 10),
        ],
        "amount": [100.0, 50.0, 200.0, 300.0, 80.0, 60.0, 40.0, 70.0, 999.0],
    }
)


def test_rfm_summary_on_hand_made_orders():
    days = clv.rfm_summary(HAND_ORDERS, date(2024, 2, 10), period="days")
    assert days.to_dicts() == [
        # A: 3 purchase days -> 2 repeats; Jan 1 -> Jan 31 = 30 days; Jan 1 -> Feb 10 = 40 days; (200 + 300) / 2.
        {"customer_id": "A", "frequency": 2, "recency": 30.0, "T": 40.0, "monetary_value": 250.0},
        {"customer_id": "B", "frequency": 0, "recency": 0.0, "T": 9.0, "monetary_value": 0.0},
        {"customer_id": "D", "frequency": 0, "recency": 0.0, "T": 36.0, "monetary_value": 0.0},
    ]
    weeks = clv.rfm_summary(HAND_ORDERS, date(2024, 2, 10), period="weeks")
    assert weeks["recency"].to_list() == pytest.approx([30 / 7, 0.0, 0.0])
    assert weeks["T"].to_list() == pytest.approx([40 / 7, 9 / 7, 36 / 7])
    # The as-of date itself is included: A's order at 23:59 on Jan 31 counts when as of Jan 31.
    jan31 = clv.rfm_summary(HAND_ORDERS, date(2024, 1, 31), period="days")
    assert jan31.filter(pl.col("customer_id") == "A").row(0) == ("A", 2, 30.0, 30.0, 250.0)
    renamed = HAND_ORDERS.rename({"customer_id": "cid", "ordered_at": "ts", "amount": "net_amount"})
    assert clv.rfm_summary(
        renamed, date(2024, 2, 10), period="days", customer_col="cid", time_col="ts", amount_col="net_amount"
    ).equals(days)


def test_calibration_holdout_summary_on_hand_made_orders():
    split = clv.calibration_holdout_summary(HAND_ORDERS, date(2024, 1, 20), date(2024, 2, 19), period="days")
    assert split.to_dicts() == [
        # A by Jan 20: Jan 1 (150) and Jan 11 (200); holdout: Jan 31 (300).
        {
            "customer_id": "A",
            "frequency": 1,
            "recency": 10.0,
            "T": 19.0,
            "monetary_value": 200.0,
            "frequency_holdout": 1,
            "revenue_holdout": 300.0,
            "duration_holdout": 30.0,
        },
        # D: Jan 5 only; the Feb 20 order is after the holdout. B and C start in/after the holdout: not scored.
        {
            "customer_id": "D",
            "frequency": 0,
            "recency": 0.0,
            "T": 15.0,
            "monetary_value": 0.0,
            "frequency_holdout": 0,
            "revenue_holdout": 0.0,
            "duration_holdout": 30.0,
        },
    ]
    weekly = clv.calibration_holdout_summary(HAND_ORDERS, date(2024, 1, 20), date(2024, 2, 20), period="weeks")
    assert weekly["frequency_holdout"].to_list() == [1, 1] and weekly["duration_holdout"][0] == pytest.approx(31 / 7)
    with pytest.raises(ValueError, match="after"):
        clv.calibration_holdout_summary(HAND_ORDERS, date(2024, 1, 20), date(2024, 1, 20), period="days")
