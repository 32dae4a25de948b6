"""Customer lifetime value: BG/NBD purchase counts, Gamma-Gamma order values, discounted CLV (numpy/scipy only).

Models (maximum likelihood, optimised on log-parameters with analytic gradients):
- BG/NBD, Fader, Hardie & Lee (2005) "Counting your customers the easy way": per customer `frequency` x = repeat
  purchases, `recency` t_x = time from first to last purchase, `T` = time from first purchase to the as-of date.
- Gamma-Gamma, Fader, Hardie & Lee (2005) "RFM and CLV" / Fader & Hardie (2013) note: the mean value of the x repeat
  purchases, fitted on repeat customers only.

Time unit: every time quantity (recency, T, horizons given in periods) is in the model *period*, "days" or "weeks",
chosen when the summary is built and recorded in the fitted `BGNBDParams.period`; CLV horizons are given in months
and converted with `PERIODS_PER_MONTH`.

Multiple orders of one customer on one calendar day count as one purchase (their amounts are summed), so an order
split into several checkouts is not read as repeat buying.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import polars as pl
from scipy.optimize import minimize
from scipy.special import expit, gammaln, hyp2f1, psi

Period = Literal["days", "weeks"]
DAYS_PER_PERIOD: dict[str, float] = {"days": 1.0, "weeks": 7.0}
DAYS_PER_MONTH = 365.25 / 12
PERIODS_PER_MONTH: dict[str, float] = {p: DAYS_PER_MONTH / d for p, d in DAYS_PER_PERIOD.items()}

# The optimiser works on log-parameters of data rescaled to mean 1, so these bounds are the same for any currency or
# time unit; a parameter that ends on one means the likelihood kept improving towards a limit model (degenerate fit).
LOG_PARAM_BOUND = 12.0
# Shape parameters outside this range are numerically a limit model (e.g. r, alpha -> inf is a plain Poisson; r -> 0
# is what a history without repeat purchases drives the fit to) rather than a usable estimate.
MIN_SHAPE, MAX_SHAPE = 1e-3, 1e4
# |gradient| of the mean log-likelihood (per customer, w.r.t. log-parameters) below which a fit counts as converged.
GRADIENT_TOLERANCE = 1e-5


@dataclass(frozen=True)
class BGNBDParams:
    """A fitted BG/NBD: purchase rate ~ Gamma(r, alpha), dropout probability after each purchase ~ Beta(a, b)."""

    r: float
    alpha: float  # in `period` units
    a: float
    b: float
    period: Period
    log_likelihood: float  # total over customers, in `period` units
    converged: bool
    iterations: int
    n_customers: float  # sum of weights
    at_bounds: bool  # some log-parameter ended on the optimiser's bound


@dataclass(frozen=True)
class GammaGammaParams:
    """A fitted Gamma-Gamma: order value ~ Gamma(p, v) per customer, v ~ Gamma(q, gamma) across customers."""

    p: float
    q: float
    gamma: float  # in currency units
    log_likelihood: float
    converged: bool
    iterations: int
    n_customers: int
    at_bounds: bool
    # Repeat customers left out of the fit because their mean order value is not positive (e.g. fully discounted
    # repeat orders): the model has no zero in its support, and one such customer would otherwise stop the fit.
    zero_spend_excluded: int = 0


def _check_period(period: str) -> None:
    if period not in DAYS_PER_PERIOD:
        raise ValueError(f"period must be one of {sorted(DAYS_PER_PERIOD)}, got {period!r}")


def _as_float(*arrays) -> list[np.ndarray]:
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def _group_rows(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Unique rows of the given equal-length columns, and for each input row the index of its unique row."""
    order = np.lexsort(columns[::-1])
    ordered = [c[order] for c in columns]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = np.any([np.diff(c) != 0 for c in ordered], axis=0)
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = np.cumsum(starts) - 1
    return [c[starts] for c in ordered], inverse


def _dot(u: np.ndarray, v: np.ndarray) -> float:
    """Inner product of long vectors without BLAS, whose threads contend with other work on small shared machines."""
    return float(np.multiply(u, v).sum())


def _weight_by_value(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of x and the total weight of each: terms that depend on x alone are summed over these."""
    values, inverse = np.unique(x, return_inverse=True)
    return values, np.bincount(inverse.reshape(-1), weights=w, minlength=len(values))


def _start(n_params: int, start_log_params) -> np.ndarray:
    """Where the optimiser starts: all log-parameters 0 (cold), or given ones (warm) moved inside the bounds."""
    if start_log_params is None:
        return np.zeros(n_params)
    start = np.asarray(start_log_params, dtype=np.float64)
    if start.shape != (n_params,) or not np.all(np.isfinite(start)):
        return np.zeros(n_params)  # a broken previous fit (NaN parameters) is no place to start from
    return np.clip(start, -LOG_PARAM_BOUND + 1e-3, LOG_PARAM_BOUND - 1e-3)


def _minimise(neg_mean_ll, n_params: int, start_log_params=None):
    """L-BFGS-B from all log-parameters = 0, or from `start_log_params` (a warm start: the previous night's fit is
    a few iterations from tonight's optimum); returns (scipy result, converged, some parameter on its bound)."""
    result = minimize(
        neg_mean_ll,
        _start(n_params, start_log_params),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-LOG_PARAM_BOUND, LOG_PARAM_BOUND)] * n_params,
        options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9},
    )
    _, grad = neg_mean_ll(result.x)
    on_bound = np.abs(result.x) >= LOG_PARAM_BOUND - 1e-6
    # L-BFGS-B also reports success when its line search stalls on a flat ridge, so judge by the gradient
    # itself; parameters pinned on a bound are reported through `at_bounds` instead.
    converged = bool(np.all(np.isfinite(result.x)) and np.all(np.abs(grad[~on_bound]) < GRADIENT_TOLERANCE))
    return result, converged, bool(on_bound.any())


# ------------------------------------------------------------------------------------------------------------ BG/NBD


def _log_dropout_odds(r, a, b, x, log_age, log_recency):
    """log P(dropped out right after the last purchase) / P(alive at T), given x repeat purchases and
    log_age = log(alpha + T), log_recency = log(alpha + t_x); -inf without repeat purchases (no dropout yet)."""
    repeat = x > 0
    b_x1 = np.where(repeat, b + x - 1, 1.0)
    return np.where(repeat, np.log(a) - np.log(b_x1) + (r + x) * (log_age - log_recency), -np.inf)


def _bgnbd_ll_and_grad(log_params, x, t_x, T, w, x_values, x_weights):
    """Weighted log-likelihood and its gradient w.r.t. (log r, log alpha, log a, log b).

    Terms that depend on the purchase count alone are evaluated once per distinct count (`x_values`, `x_weights`).
    """
    r, alpha, a, b = np.exp(log_params)
    k, n_k = x_values, x_weights
    count_ll = (
        gammaln(r + k)
        - gammaln(r)
        + r * np.log(alpha)
        + gammaln(b + k)
        - gammaln(b)
        + gammaln(a + b)
        - gammaln(a + b + k)
    )
    log_age, log_recency = np.log(alpha + T), np.log(alpha + t_x)
    # The history is explained either by the customer being alive through T or by a dropout right after the last
    # purchase; mix = alive * (1 + dropout odds), and the dropout share of the mix is expit(odds).
    log_odds = _log_dropout_odds(r, a, b, x, log_age, log_recency)
    log_mix = -(r + x) * log_age + np.logaddexp(0.0, log_odds)
    share_dropped = w * expit(log_odds)
    share_alive = w - share_dropped
    d_r = n_k @ (psi(r + k) - psi(r) + np.log(alpha)) - _dot(share_alive, log_age) - _dot(share_dropped, log_recency)
    d_alpha = (
        n_k.sum() * r / alpha - _dot(share_alive, (r + x) / (alpha + T)) - _dot(share_dropped, (r + x) / (alpha + t_x))
    )
    d_a = n_k @ (psi(a + b) - psi(a + b + k)) + share_dropped.sum() / a
    d_b = n_k @ (psi(a + b) + psi(b + k) - psi(b) - psi(a + b + k))
    d_b -= _dot(share_dropped, 1 / np.where(x > 0, b + x - 1, 1.0))
    return n_k @ count_ll + _dot(w, log_mix), np.array([r * d_r, alpha * d_alpha, a * d_a, b * d_b])


def fit_bgnbd(frequency, recency, T, *, period: Period, weights=None, start: BGNBDParams | None = None) -> BGNBDParams:
    """Fit BG/NBD by maximum likelihood.

    `frequency` = repeat purchases, `recency` and `T` in `period` units (days or weeks). `weights` counts customers
    per row (e.g. a pre-aggregated table); identical (frequency, recency, T) rows are grouped internally anyway.
    `start` (an earlier fit, e.g. the previous night's) warm-starts the optimiser; the optimum is the same.
    """
    _check_period(period)
    x, t_x, T = _as_float(frequency, recency, T)
    w_in = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(x) == 0:
        raise ValueError("BG/NBD needs at least one customer")
    if not (np.all(x >= 0) and np.all(t_x >= 0) and np.all(t_x <= T) and np.all(w_in >= 0)):
        raise ValueError("BG/NBD needs frequency >= 0, 0 <= recency <= T and non-negative weights")
    if np.any((x > 0) & (t_x <= 0)):
        raise ValueError("a customer with repeat purchases must have recency > 0")
    (x, t_x, T), inverse = _group_rows(x, t_x, T)
    w = np.bincount(inverse, weights=w_in, minlength=len(x))
    total = w.sum()
    # Rescale time so the mean age is 1: alpha scales with time, r/a/b do not, and the optimiser sees O(1) values.
    scale = _dot(w, T) / total or 1.0
    t_x_s, T_s = t_x / scale, T / scale
    x_values, x_weights = _weight_by_value(x, w)

    def neg_mean_ll(log_params):
        ll, grad = _bgnbd_ll_and_grad(log_params, x, t_x_s, T_s, w, x_values, x_weights)
        return -ll / total, -grad / total

    warm = None
    if start is not None:
        alpha_per_period = start.alpha * DAYS_PER_PERIOD[start.period] / DAYS_PER_PERIOD[period]
        with np.errstate(divide="ignore", invalid="ignore"):
            warm = np.log([start.r, alpha_per_period / scale, start.a, start.b])
    result, converged, at_bounds = _minimise(neg_mean_ll, 4, warm)
    r, alpha_s, a, b = np.exp(result.x)
    # Rescaling times by c adds x*log(c) per customer (purchase times are densities); report the original units.
    log_likelihood = -result.fun * total - np.log(scale) * _dot(w, x)
    return BGNBDParams(
        r=float(r),
        alpha=float(alpha_s * scale),
        a=float(a),
        b=float(b),
        period=period,
        log_likelihood=float(log_likelihood),
        converged=converged,
        iterations=int(result.nit),
        n_customers=float(total),
        at_bounds=at_bounds,
    )


def probability_alive(params: BGNBDParams, frequency, recency, T) -> np.ndarray:
    """P(customer still active at T | history); exactly 1 for customers without a repeat purchase."""
    x, t_x, T = _as_float(frequency, recency, T)
    log_odds = _log_dropout_odds(params.r, params.a, params.b, x, np.log(params.alpha + T), np.log(params.alpha + t_x))
    return expit(-log_odds)


def _purchases_if_alive(params: BGNBDParams, x, T, t) -> np.ndarray:
    """E[purchases in (T, T + t] | x repeat purchases by T and still alive at T] (depends on x and T, not recency)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + T + t)
    # FHL (2005) eq. 10 has (1-z)^(r+x) * 2F1(r+x, b+x; a+b+x-1; z), whose factors over/underflow for heavy buyers
    # (x in the hundreds); Euler's transformation gives the same product as (1-z)^(a-1) * 2F1 with bounded parameters.
    survival_term = np.power(1 - z, a - 1) * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
    return (a + b + x - 1) / (a - 1) * (1 - survival_term)


def expected_purchases(params: BGNBDParams, frequency, recency, T, t) -> np.ndarray:
    """E[number of purchases in (T, T + t] | history], t in the model's period units (scalar or per customer)."""
    x, t_x, T, t = np.broadcast_arrays(*_as_float(frequency, recency, T, t))
    return _purchases_if_alive(params, x, T, t) * probability_alive(params, x, t_x, T)


# ------------------------------------------------------------------------------------------------------- Gamma-Gamma


def _gamma_gamma_ll_and_grad(log_params, x, spend, x_values, x_counts, log_spend_sums):
    """Log-likelihood of the mean repeat order values and its gradient w.r.t. (log p, log q, log gamma).

    f(zbar | x) = Gamma(px+q) / (Gamma(px) Gamma(q)) * gamma^q * x^(px) * zbar^(px-1) / (gamma + x zbar)^(px+q),
    with spend = x * zbar. The gamma-function terms depend on x alone and are evaluated once per distinct x;
    `log_spend_sums` = (sum(x log spend), sum(log spend), sum(log x)) are parameter-free and computed once.
    """
    p, q, gamma = np.exp(log_params)
    x_log_spend, sum_log_spend, sum_log_x = log_spend_sums
    k, n_k = x_values, x_counts
    n = n_k.sum()
    log_gamma_spend = np.log(gamma + spend)
    ll = (
        n_k @ (gammaln(p * k + q) - gammaln(p * k) - gammaln(q))
        + n * q * np.log(gamma)
        + p * x_log_spend
        - sum_log_spend
        + sum_log_x
        - _dot(p * x + q, log_gamma_spend)
    )
    d_p = n_k @ (k * (psi(p * k + q) - psi(p * k))) + x_log_spend - _dot(x, log_gamma_spend)
    d_q = n_k @ (psi(p * k + q) - psi(q)) + n * np.log(gamma) - log_gamma_spend.sum()
    d_gamma = n * q / gamma - ((p * x + q) / (gamma + spend)).sum()
    return ll, np.array([p * d_p, q * d_q, gamma * d_gamma])


def fit_gamma_gamma(frequency, monetary_value, *, start: GammaGammaParams | None = None) -> GammaGammaParams:
    """Fit Gamma-Gamma on repeat customers with a positive mean order value: rows with frequency == 0 are ignored,
    repeat customers without positive spend are left out and counted (`zero_spend_excluded`). `start` (an earlier
    fit) warm-starts the optimiser."""
    x, zbar = _as_float(frequency, monetary_value)
    repeat = x > 0
    spending = repeat & (zbar > 0)  # NaN is not positive either
    excluded = int((repeat & ~spending).sum())
    x, zbar = x[spending], zbar[spending]
    if len(x) == 0:
        left_out = f" ({excluded} repeat customers without spend left out)" if excluded else ""
        raise ValueError(f"Gamma-Gamma needs repeat customers with a positive mean order value{left_out}")
    # Rescale money to mean 1: gamma scales with the currency, p and q do not.
    scale = float(zbar.mean())
    zbar_s = zbar / scale
    n = len(x)
    x_values, x_counts = _weight_by_value(x, np.ones_like(x))
    spend = x * zbar_s
    log_spend = np.log(spend)
    log_spend_sums = (_dot(x, log_spend), log_spend.sum(), np.log(x).sum())

    def neg_mean_ll(log_params):
        ll, grad = _gamma_gamma_ll_and_grad(log_params, x, spend, x_values, x_counts, log_spend_sums)
        return -ll / n, -grad / n

    warm = None
    if start is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            warm = np.log([start.p, start.q, start.gamma / scale])
    result, converged, at_bounds = _minimise(neg_mean_ll, 3, warm)
    p, q, gamma_s = np.exp(result.x)
    return GammaGammaParams(
        p=float(p),
        q=float(q),
        gamma=float(gamma_s * scale),
        # zbar is a density: rescaling by c adds log(c) per customer.
        log_likelihood=float(-result.fun * n - n * np.log(scale)),
        converged=converged,
        iterations=int(result.nit),
        n_customers=n,
        at_bounds=at_bounds,
        zero_spend_excluded=excluded,
    )


def expected_order_value(params: GammaGammaParams, frequency, monetary_value) -> np.ndarray:
    """E[value of a future order | x repeat orders with mean value zbar]; the population mean when x == 0."""
    x, zbar = _as_float(frequency, monetary_value)
    zbar = np.where(x > 0, zbar, 0.0)
    return params.p * (params.gamma + x * zbar) / (params.p * x + params.q - 1)


# --------------------------------------------------------------------------------------------------------------- CLV


def monthly_expected_purchases(params: BGNBDParams, frequency, recency, T, horizon_months: int) -> np.ndarray:
    """Expected purchases in each of the next `horizon_months` months, shape (customers, months).

    The costly hypergeometric part is computed once per distinct (frequency, T), far fewer than customers.
    """
    _, monthly = expected_purchases_by_history(params, frequency, recency, T, [], horizon_months)
    return monthly


def expected_purchases_by_history(
    params: BGNBDParams, frequency, recency, T, windows, horizon_months: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """`expected_purchases` over each window (periods) and `monthly_expected_purchases`, with the costly
    hypergeometric part once per distinct (frequency, T) for all of them: a few tens of thousands at any number of
    customers (frequency and age in days are bounded), so scoring millions costs little more than the grouping."""
    x, t_x, T = _as_float(frequency, recency, T)
    (ux, uT), inverse = _group_rows(x, T)
    alive = probability_alive(params, x, t_x, T)
    in_windows = [_purchases_if_alive(params, ux, uT, np.float64(t))[inverse] * alive for t in windows]
    month_ends = np.arange(1, horizon_months + 1) * PERIODS_PER_MONTH[params.period]
    cumulative = _purchases_if_alive(params, ux[:, None], uT[:, None], month_ends[None, :])
    monthly_if_alive = np.diff(cumulative, axis=1, prepend=0.0)[inverse]
    return in_windows, monthly_if_alive * alive[:, None]


def _discounted_value(monthly_purchases, order_value, monthly_discount_rate, margin, cost_per_purchase) -> np.ndarray:
    """Sum over months of purchases * (order value * margin - cost per purchase), discounted at each month's end."""
    discount = (1.0 + monthly_discount_rate) ** -np.arange(1, monthly_purchases.shape[1] + 1)
    return (monthly_purchases @ discount) * (order_value * margin - cost_per_purchase)


def customer_lifetime_value(
    bgnbd: BGNBDParams,
    gamma_gamma: GammaGammaParams,
    frequency,
    recency,
    T,
    monetary_value,
    *,
    horizon_months: int,
    monthly_discount_rate: float,
    margin=1.0,
    cost_per_purchase=0.0,
) -> np.ndarray:
    """Discounted margin of the next `horizon_months` months per customer.

    sum_m E[purchases in month m] * (E[order value] * margin - cost_per_purchase) / (1 + rate)^m.
    `margin` and `cost_per_purchase` (e.g. expected service cost per order) are scalars or per-customer arrays;
    recency and T are in `bgnbd.period` units.
    """
    monthly = monthly_expected_purchases(bgnbd, frequency, recency, T, horizon_months)
    order_value = expected_order_value(gamma_gamma, frequency, monetary_value)
    return _discounted_value(monthly, order_value, monthly_discount_rate, margin, cost_per_purchase)


def score_customers(
    summary: pl.DataFrame,
    bgnbd: BGNBDParams,
    gamma_gamma: GammaGammaParams,
    *,
    horizon_months: int,
    monthly_discount_rate: float,
    margin=1.0,
    cost_per_purchase=0.0,
) -> pl.DataFrame:
    """`summary` (from `rfm_summary`) plus p_alive, expected_purchases (undiscounted, over the horizon),
    expected_order_value and clv (discounted, see `customer_lifetime_value`)."""
    x, t_x, T, zbar = (summary[c].to_numpy() for c in ("frequency", "recency", "T", "monetary_value"))
    monthly = monthly_expected_purchases(bgnbd, x, t_x, T, horizon_months)
    order_value = expected_order_value(gamma_gamma, x, zbar)
    return summary.with_columns(
        p_alive=probability_alive(bgnbd, x, t_x, T),
        expected_purchases=monthly.sum(axis=1),
        expected_order_value=order_value,
        clv=_discounted_value(monthly, order_value, monthly_discount_rate, margin, cost_per_purchase),
    )


# ------------------------------------------------------------------------------------------------------ fit health


def degenerate_reasons(params: BGNBDParams | GammaGammaParams) -> list[str]:
    """Why a fit must not be used for scoring; empty when it looks healthy (for a Dagster asset check)."""
    if isinstance(params, BGNBDParams):
        values = {"r": params.r, "alpha": params.alpha, "a": params.a, "b": params.b}
        shapes = ("r", "a", "b")
    else:
        values = {"p": params.p, "q": params.q, "gamma": params.gamma}
        shapes = ("p", "q")
    reasons = [
        f"{k} is not a positive finite number ({v})" for k, v in values.items() if not (np.isfinite(v) and v > 0)
    ]
    if not np.isfinite(params.log_likelihood):
        reasons.append("log-likelihood is not finite")
    if not params.converged:
        reasons.append("optimiser did not converge")
    if params.at_bounds:
        reasons.append("a parameter ended on the optimiser bound (likelihood runs off to a limit model)")
    reasons += [
        f"{k}={values[k]:.3g} is outside [{MIN_SHAPE:g}, {MAX_SHAPE:g}]"
        for k in shapes
        if np.isfinite(values[k]) and not MIN_SHAPE <= values[k] <= MAX_SHAPE
    ]
    if isinstance(params, GammaGammaParams) and params.q <= 1:
        reasons.append(f"q={params.q:.3g} <= 1: the expected order value is infinite")
    return reasons


def is_degenerate(params: BGNBDParams | GammaGammaParams) -> bool:
    return bool(degenerate_reasons(params))


# -------------------------------------------------------------------------------------------------- RFM summaries


def _purchase_days(orders: pl.DataFrame, customer_col: str, time_col: str, amount_col: str) -> pl.LazyFrame:
    """One row per customer and calendar day with purchases: customer_id, purchase_date, amount (day total)."""
    return (
        orders.lazy()
        .select(
            pl.col(customer_col).alias("customer_id"),
            pl.col(time_col).cast(pl.Date).alias("purchase_date"),
            pl.col(amount_col).cast(pl.Float64).alias("amount"),
        )
        .filter(pl.col("customer_id").is_not_null())
        .group_by("customer_id", "purchase_date")
        .agg(pl.col("amount").sum())
    )


def rfm_summary(
    orders: pl.DataFrame,
    as_of: date,
    *,
    period: Period,
    customer_col: str = "customer_id",
    time_col: str = "ordered_at",
    amount_col: str = "amount",
) -> pl.DataFrame:
    """Per customer with a purchase on or before `as_of`: frequency (repeat purchase days), recency (first to last
    purchase) and T (first purchase to `as_of`) in `period` units, monetary_value (mean of the repeat purchase days'
    amounts, 0 without repeats), sorted by customer_id. `orders` must hold purchases only."""
    _check_period(period)
    days = DAYS_PER_PERIOD[period]
    first = pl.col("purchase_date").min()
    first_amount = pl.col("amount").filter(pl.col("purchase_date") == first).sum()
    frequency = pl.len().cast(pl.Int64) - 1
    return (
        _purchase_days(orders, customer_col, time_col, amount_col)
        .filter(pl.col("purchase_date") <= as_of)
        .group_by("customer_id")
        .agg(
            frequency=frequency,
            recency=(pl.col("purchase_date").max() - first).dt.total_days() / days,
            T=(pl.lit(as_of, dtype=pl.Date) - first).dt.total_days() / days,
            monetary_value=pl.when(frequency > 0)
            .then((pl.col("amount").sum() - first_amount) / frequency)
            .otherwise(0.0),
        )
        .sort("customer_id")
        .collect()
    )


def calibration_holdout_summary(
    orders: pl.DataFrame,
    calibration_end: date,
    holdout_end: date,
    *,
    period: Period,
    customer_col: str = "customer_id",
    time_col: str = "ordered_at",
    amount_col: str = "amount",
) -> pl.DataFrame:
    """Backtest frame: `rfm_summary` as of `calibration_end` for customers who bought by then, plus what they did in
    (calibration_end, holdout_end]: frequency_holdout (purchase days), revenue_holdout, duration_holdout (periods).
    Customers whose first purchase falls in the holdout are left out (the model cannot score them)."""
    if holdout_end <= calibration_end:
        raise ValueError("holdout_end must be after calibration_end")
    calibration = rfm_summary(
        orders, calibration_end, period=period, customer_col=customer_col, time_col=time_col, amount_col=amount_col
    )
    holdout = (
        _purchase_days(orders, customer_col, time_col, amount_col)
        .filter((pl.col("purchase_date") > calibration_end) & (pl.col("purchase_date") <= holdout_end))
        .group_by("customer_id")
        .agg(frequency_holdout=pl.len().cast(pl.Int64), revenue_holdout=pl.col("amount").sum())
        .collect()
    )
    return calibration.join(holdout, on="customer_id", how="left").with_columns(
        pl.col("frequency_holdout").fill_null(0),
        pl.col("revenue_holdout").fill_null(0.0),
        duration_holdout=pl.lit((holdout_end - calibration_end).days / DAYS_PER_PERIOD[period]),
    )


# ------------------------------------------------------------------------------------- synthetic data (tests, bench)


def sample_bgnbd(
    n: int, r: float, alpha: float, a: float, b: float, T, rng: np.random.Generator, holdout: float = 0.0
) -> dict[str, np.ndarray]:
    """Draw customers from the BG/NBD process observed for `T` periods (scalar or per customer), and count their
    purchases in the `holdout` periods after T. Returns frequency, recency, T, frequency_holdout."""
    T = np.broadcast_to(np.asarray(T, dtype=np.float64), (n,))
    rate = rng.gamma(r, 1.0 / alpha, n)
    dropout = np.clip(rng.beta(a, b, n), 1e-12, 1.0)
    # Repeat purchases made before dropping out: the customer leaves right after the k-th one.
    lifetime_purchases = rng.geometric(dropout)
    arrivals = rng.poisson(rate * T)
    frequency = np.minimum(lifetime_purchases, arrivals)
    # Given n arrivals in (0, T], the x-th arrival time is T times the x-th of n sorted uniforms ~ Beta(x, n - x + 1).
    recency = np.where(frequency > 0, T * rng.beta(np.maximum(frequency, 1), arrivals - frequency + 1), 0.0)
    still_alive = lifetime_purchases > arrivals
    frequency_holdout = np.where(still_alive, np.minimum(lifetime_purchases - arrivals, rng.poisson(rate * holdout)), 0)
    return {"frequency": frequency, "recency": recency, "T": T.copy(), "frequency_holdout": frequency_holdout}


def sample_gamma_gamma(frequency, p: float, q: float, gamma: float, rng: np.random.Generator) -> np.ndarray:
    """Mean value of each customer's `frequency` repeat orders under Gamma-Gamma (0 where frequency == 0)."""
    x = np.asarray(frequency, dtype=np.float64)
    spend_rate = rng.gamma(q, 1.0 / gamma, len(x))
    repeat = x > 0
    zbar = np.zeros_like(x)
    # The mean of x Gamma(p, rate v) order values is Gamma(p x, rate x v).
    zbar[repeat] = rng.gamma(p * x[repeat], 1.0 / (x[repeat] * spend_rate[repeat]))
    return zbar
