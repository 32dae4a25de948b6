"""Customer lifetime value around the CLV models of `pipeline.lib.clv` (plain functions, polars/numpy): the fit of
one run, scoring, the stored parameter table and the holdout backtest. The dbt Python models of
`dbt_project/models/marts/value/` call these; the relational parts (purchases, margins, customer value, equity
roll-ups) are dbt SQL models next to them.

Definitions (money in the shop's currency, calendar.currency; "purchase" = an order with is_purchase, i.e.
paid/shipped/completed; margins per customer come from the dbt model int_customer_margins):
- gross_margin_ratio of a customer: margin / net_amount over their purchases with item costs (the default margin
  when they have none). `clv` applies it to the predicted order values.
- tickets_per_purchase: the customer's helpdesk tickets / purchases so far; every expected future purchase is charged
  tickets_per_purchase * cost_per_ticket (expected cost to serve).
- clv = sum over the horizon's months of E[purchases] * E[order value] * gross_margin_ratio / (1 + rate)^month;
  expected_cost_to_serve = the same sum with tickets_per_purchase * cost_per_ticket instead of the margin;
  net_clv = clv - expected_cost_to_serve.
Customers without a purchase by as_of cannot be scored: p_alive and expectations are null, clv and net_clv are 0.
A degenerate fit that cannot predict (0/0) leaves null predictions; equity counts their future value as 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import polars as pl
import polars.selectors as cs

from pipeline.lib import clv
from pipeline.lib.warehouse import quote_identifier

# customer_clv scores this many customers at a time (score_clv).
SCORE_CHUNK_ROWS = 200_000
# Backtest rows are grouped by calibration-period repeat purchases up to this many, the rest in one "N+" bucket.
BACKTEST_MAX_FREQUENCY = 7


# ------------------------------------------------------------------------------------------------------ CLV fit


@dataclass(frozen=True)
class ClvFit:
    """The two fitted models of one run; `gamma_gamma_error` says why Gamma-Gamma could not be fitted at all."""

    bgnbd: clv.BGNBDParams
    gamma_gamma: clv.GammaGammaParams
    gamma_gamma_error: str | None
    fit_seconds: float

    def problems(self) -> list[str]:
        """Why the fit must not be trusted (empty when both models are healthy)."""
        problems = [f"BG/NBD: {reason}" for reason in clv.degenerate_reasons(self.bgnbd)]
        if self.gamma_gamma_error:
            problems.append(f"Gamma-Gamma could not be fitted: {self.gamma_gamma_error}")
        problems += [f"Gamma-Gamma: {reason}" for reason in clv.degenerate_reasons(self.gamma_gamma)]
        return problems

    @property
    def gamma_gamma_usable(self) -> bool:
        return not self.gamma_gamma_error and not clv.is_degenerate(self.gamma_gamma)


def unfitted_gamma_gamma() -> clv.GammaGammaParams:
    """Stand-in parameters (NaN, not converged) when Gamma-Gamma cannot be fitted at all."""
    nan = float("nan")
    return clv.GammaGammaParams(nan, nan, nan, nan, converged=False, iterations=0, n_customers=0, at_bounds=False)


def fit_clv(histories: pl.DataFrame, spend: pl.DataFrame, *, period: clv.Period, start: ClvFit | None = None) -> ClvFit:
    """Fit BG/NBD on `histories` - distinct (frequency, recency, T) with the number of `customers` sharing each, so
    the fit reads thousands of rows, not one per customer - and Gamma-Gamma on `spend` (frequency, monetary_value of
    the repeat customers). `start`, an earlier fit, warm-starts each optimiser whose model it holds a healthy fit of
    (same optimum, fewer iterations); from a degenerate one (a flat ridge) each starts cold, as a full build does."""
    started = time.perf_counter()
    bgnbd = clv.fit_bgnbd(
        histories["frequency"],
        histories["recency"],
        histories["T"],
        period=period,
        weights=histories["customers"],
        start=start.bgnbd if start and not clv.is_degenerate(start.bgnbd) else None,
    )
    try:
        gamma_gamma = clv.fit_gamma_gamma(
            spend["frequency"],
            spend["monetary_value"],
            start=start.gamma_gamma if start and start.gamma_gamma_usable else None,
        )
        error = None
    except ValueError as exc:  # e.g. nobody has bought twice: there is nothing to fit
        gamma_gamma, error = unfitted_gamma_gamma(), str(exc)
    return ClvFit(bgnbd, gamma_gamma, error, time.perf_counter() - started)


MODEL_NAMES = {"bgnbd": clv.BGNBDParams, "gamma_gamma": clv.GammaGammaParams}
FIELD_TYPES = {"float": float, "int": int, "bool": bool}


def params_table(fit: ClvFit, fitted_at: datetime, as_of: date) -> pl.DataFrame:
    """The fit as rows (model, param, value, converged, fitted_at, as_of_date, error) for marts.clv_model_params;
    `period` is stored as days per period, booleans as 0/1. The fit time is run metadata, not stored here, so the
    table is the same for the same data."""
    rows = []
    for model, params in (("bgnbd", fit.bgnbd), ("gamma_gamma", fit.gamma_gamma)):
        for field in fields(params):
            if field.name == "converged":
                continue
            value = getattr(params, field.name)
            value = clv.DAYS_PER_PERIOD[value] if field.name == "period" else float(value)
            rows.append((model, field.name, value, params.converged))
    return pl.DataFrame(
        rows,
        schema={"model": pl.String, "param": pl.String, "value": pl.Float64, "converged": pl.Boolean},
        orient="row",
    ).with_columns(
        fitted_at=pl.lit(fitted_at, dtype=pl.Datetime("us")),
        as_of_date=pl.lit(as_of, dtype=pl.Date),
        error=pl.when(pl.col("model") == "gamma_gamma").then(pl.lit(fit.gamma_gamma_error, dtype=pl.String)),
    )


def fit_from_params_table(table: pl.DataFrame) -> ClvFit:
    """Inverse of `params_table` (what the asset check reads back from the warehouse)."""
    period_by_days = {days: name for name, days in clv.DAYS_PER_PERIOD.items()}
    models = {}
    for model, cls in MODEL_NAMES.items():
        rows = table.filter(pl.col("model") == model)
        if rows.is_empty():
            raise ValueError(f"no {model} parameters stored")
        values = dict(rows.select("param", "value").iter_rows())
        kwargs = {}
        for field in fields(cls):
            if field.name == "converged":
                kwargs[field.name] = bool(rows["converged"].all())
            elif field.name == "period":
                kwargs[field.name] = period_by_days[values[field.name]]
            else:  # clv.py uses postponed annotations: field.type is the type's name
                kwargs[field.name] = FIELD_TYPES[field.type](values[field.name])
        models[model] = cls(**kwargs)
    error = table.filter(pl.col("model") == "gamma_gamma")["error"].drop_nulls()
    return ClvFit(models["bgnbd"], models["gamma_gamma"], error[0] if len(error) else None, fit_seconds=0.0)


# ---------------------------------------------------------------------------------------------------- scoring


def in_periods(histories: pl.DataFrame, period: clv.Period) -> pl.DataFrame:
    """Purchase histories in days (recency_days, age_days, as dbt's int_clv_inputs holds them) as the models'
    recency and T in `period` units; other columns pass through."""
    days, names = clv.DAYS_PER_PERIOD[period], {"recency_days": "recency", "age_days": "T"}
    return histories.select((pl.col(c) / days).alias(names[c]) if c in names else pl.col(c) for c in histories.columns)


def score_clv(
    inputs: pl.DataFrame,
    fit: ClvFit,
    *,
    horizon_months: int,
    monthly_discount_rate: float,
    cost_per_ticket: float,
    windows_days: list[int],
) -> pl.DataFrame:
    """Per customer inputs (int_clv_inputs, `in_periods`) plus p_alive, expected_purchases_<n>d per window,
    expected_purchases (over the horizon), discounted_purchases (each month's expected purchases / (1 + rate)^month,
    summed), expected_order_value, clv, expected_cost_to_serve and net_clv (see the module docstring).

    Without a usable Gamma-Gamma fit the expected order value is the customer's own mean purchase value. Scored in
    slices of SCORE_CHUNK_ROWS customers: the per-month expectations are a customers x horizon_months matrix, which
    at millions of customers would otherwise take gigabytes at once.
    """

    def score(part: pl.DataFrame) -> pl.DataFrame:
        x, t_x, T, zbar = (part[c].to_numpy() for c in ("frequency", "recency", "T", "monetary_value"))
        days_per_period = clv.DAYS_PER_PERIOD[fit.bgnbd.period]
        in_windows, monthly = clv.expected_purchases_by_history(
            fit.bgnbd, x, t_x, T, [days / days_per_period for days in windows_days], horizon_months
        )
        windows = {f"expected_purchases_{days}d": n for days, n in zip(windows_days, in_windows, strict=True)}
        order_value = (
            clv.expected_order_value(fit.gamma_gamma, x, zbar)
            if fit.gamma_gamma_usable
            else part["mean_purchase_value"].to_numpy()
        )
        return (
            part.with_columns(
                p_alive=clv.probability_alive(fit.bgnbd, x, t_x, T),
                **windows,
                expected_purchases=monthly.sum(axis=1),
                discounted_purchases=monthly @ (1.0 + monthly_discount_rate) ** -np.arange(1, horizon_months + 1),
                expected_order_value=order_value,
            )
            .with_columns(
                clv=pl.col("discounted_purchases") * pl.col("expected_order_value") * pl.col("gross_margin_ratio"),
                expected_cost_to_serve=pl.col("discounted_purchases")
                * pl.col("tickets_per_purchase")
                * cost_per_ticket,
            )
            .with_columns(net_clv=pl.col("clv") - pl.col("expected_cost_to_serve"))
            .with_columns(
                # A degenerate fit can predict 0/0 (e.g. dropout a = 1): store "no prediction" rather than NaN.
                cs.float().fill_nan(None)
            )
        )

    slices = [inputs.slice(start, SCORE_CHUNK_ROWS) for start in range(0, max(inputs.height, 1), SCORE_CHUNK_ROWS)]
    return pl.concat([score(part) for part in slices])


def customer_clv_relation(
    profile: duckdb.DuckDBPyRelation, run: duckdb.DuckDBPyRelation, scored: duckdb.DuckDBPyRelation
) -> duckdb.DuckDBPyRelation:
    """Every profile customer (`profile`) with their scores (`scored`: `score_clv`'s rows in the same DuckDB) as of
    the run date (`run`: int_run_date); customers without a purchase get clv = net_clv = 0 and nulls. Joined in
    DuckDB, so the million-row join and the write never go through Python."""
    zeroed = ("clv", "expected_cost_to_serve", "net_clv")
    columns = [
        f"case when frequency is not null then {quote_identifier(c)} else 0.0 end as {quote_identifier(c)}"
        if c in zeroed
        else quote_identifier(c)
        for c in scored.columns
        if c != "customer_id"
    ]
    columns += ["frequency is not null as has_purchase", "run_date as as_of_date"]
    return (
        profile.project("customer_id")
        .join(scored, "customer_id", how="left")
        .cross(run.project("run_date"))
        .project(", ".join(["customer_id", *columns]))
    )


# --------------------------------------------------------------------------------------------------- backtest


def backtest_as_of(run_date: date, every_days: int) -> date:
    """The date the backtest is measured as of on a run: the latest day on or before the run date that lies a whole
    number of `every_days` after 0001-01-01 (a Monday: 7 gives Mondays; 1 gives the run date itself). Every run
    between two such days finds the backtest as of the same date, so the backtest is computed once per `every_days`
    (by the first run that reaches a new date) and reused by the runs in between, and a full build measures it as of
    the same date as the nightly runs do."""
    if every_days < 1:
        raise ValueError(f"clv.backtest.every_days must be a whole number of days >= 1, not {every_days!r}")
    ordinal = run_date.toordinal()
    return date.fromordinal(ordinal - (ordinal - 1) % every_days)


def backtest(
    purchases: pl.DataFrame, as_of: date, *, holdout_days: int, period: clv.Period
) -> tuple[pl.DataFrame, clv.BGNBDParams | None, str | None]:
    """Fit BG/NBD on purchases up to as_of - holdout_days and predict each customer's purchase days in the holdout:
    the `calibration_holdout_summary` plus predicted_holdout, the calibration fit, and None.

    History shorter than the holdout leaves nobody to calibrate on: then no rows, no fit and the reason the
    backtest was skipped (a young shop or a short first window is not an error)."""
    calibration_end = as_of - timedelta(days=holdout_days)
    frame = clv.calibration_holdout_summary(purchases, calibration_end, as_of, period=period, amount_col="net_amount")
    if frame.is_empty():
        first = purchases["order_date"].min()
        history = f"history starts {first} ({(as_of - first).days} days before {as_of})" if first else "no purchases"
        reason = f"{history}: shorter than the {holdout_days}-day holdout, nothing to calibrate on"
        return frame.with_columns(predicted_holdout=pl.lit(None, dtype=pl.Float64)), None, reason
    params = clv.fit_bgnbd(frame["frequency"], frame["recency"], frame["T"], period=period)
    predicted = clv.expected_purchases(
        params, frame["frequency"], frame["recency"], frame["T"], frame["duration_holdout"]
    )
    return frame.with_columns(predicted_holdout=predicted), params, None


def _bucket_errors(frame: pl.DataFrame, grouping: str, bucket: pl.Expr, order: pl.Expr) -> pl.DataFrame:
    error = pl.col("predicted_holdout") - pl.col("frequency_holdout")
    return (
        frame.group_by(bucket=bucket, bucket_order=order)
        .agg(
            customers=pl.len().cast(pl.Int64),
            predicted_purchases=pl.col("predicted_holdout").sum(),
            actual_purchases=pl.col("frequency_holdout").sum().cast(pl.Float64),
            mean_absolute_error=error.abs().mean(),
        )
        .with_columns(
            grouping=pl.lit(grouping),
            relative_error=pl.when(pl.col("actual_purchases") > 0).then(
                pl.col("predicted_purchases") / pl.col("actual_purchases") - 1
            ),
        )
    )


def backtest_summary(frame: pl.DataFrame) -> pl.DataFrame:
    """Predicted vs actual holdout purchases: grouping 'total' (one row), 'frequency' (calibration repeat purchases,
    0 .. N-1 and 'N+') and 'decile' (of predicted purchases, 1 = lowest; ties by customer_id)."""
    capped = pl.min_horizontal(pl.col("frequency"), BACKTEST_MAX_FREQUENCY)
    frequency_label = (
        pl.when(capped == BACKTEST_MAX_FREQUENCY)
        .then(pl.lit(f"{BACKTEST_MAX_FREQUENCY}+"))
        .otherwise(capped.cast(pl.String))
    )
    rank = pl.struct("predicted_holdout", "customer_id").rank("ordinal")
    decile = ((rank - 1) * 10 // pl.len() + 1).cast(pl.Int64)
    parts = [
        _bucket_errors(frame, "total", pl.lit("all"), pl.lit(0, dtype=pl.Int64)),
        _bucket_errors(frame, "frequency", frequency_label, capped.cast(pl.Int64)),
        _bucket_errors(frame, "decile", decile.cast(pl.String), decile),
    ]
    columns = [
        "grouping",
        "bucket",
        "bucket_order",
        "customers",
        "predicted_purchases",
        "actual_purchases",
        "mean_absolute_error",
        "relative_error",
    ]
    grouping_order = pl.col("grouping").replace_strict({"total": 0, "frequency": 1, "decile": 2})
    return pl.concat([p.select(columns) for p in parts]).sort(grouping_order, "bucket_order").drop("bucket_order")
