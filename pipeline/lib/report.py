"""The customer-base report: one static, self-contained HTML page of charts, KPI tiles and small tables.

Charts are drawn server-side by matplotlib and inlined as SVG, so the page opens offline with no scripts.
Figures are built with the object API (`Figure`, never pyplot): no GUI backend, no global figure state. Output is
byte-for-byte deterministic for the same input: a fixed SVG hash salt, no dates in the SVG metadata, and every
ordering made explicit.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import jinja2
import matplotlib
import numpy as np
import polars as pl
from markupsafe import Markup
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "customer_base_report.html.j2"

# One palette for page and charts, so a segment's colour means the same thing everywhere.
INK = "#1f2937"
MUTED = "#6b7280"
GRID = "#e5e7eb"
CURRENT = "#2563eb"  # value already realised
FUTURE = "#f59e0b"  # value still expected
LIFETIME = "#0f766e"
ACCENT = "#7c3aed"

HISTOGRAM_BINS = 30
# The CLV tail is long: bins span up to this quantile and the last bin also holds everything above it.
HISTOGRAM_CAP_QUANTILE = 0.99
CLV_PERCENTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
CLV_PERCENTILE_LABELS = ("p10", "p25", "median", "p75", "p90", "p99")
# The Lorenz curve is drawn through this many points whatever the customer count (keeps the SVG small).
LORENZ_POINTS = 201

_CHART_RC = {
    "svg.fonttype": "none",  # text stays text: small SVG, crisp labels, searchable numbers
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.edgecolor": GRID,
    "axes.labelcolor": INK,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlecolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": GRID,
    "grid.linewidth": 0.8,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
}


@dataclass(frozen=True)
class CustomerBaseInputs:
    """The frames the report is drawn from (column names are the report's own; the asset maps to them).

    segments: segment, customers, revenue — one row per segment.
    clv: clv — one row per customer.
    equity: segment, current_value, future_value, lifetime_value — one row per segment.
    equity_history: snapshot_date, lifetime_value, future_value — one row per snapshot (totals).
    revenue: revenue — one row per customer, every customer including those with no revenue.
    as_of: the data's "as of" date shown in the header (None when unknown).
    """

    segments: pl.DataFrame
    clv: pl.DataFrame
    equity: pl.DataFrame
    equity_history: pl.DataFrame
    revenue: pl.DataFrame
    as_of: date | None = None


# ---------------------------------------------------------------- Indonesian number formatting


def format_count(value: float) -> str:
    """A whole number with Indonesian thousands dots: 12345 -> "12.345"."""
    return f"{round(value):,}".replace(",", ".")


def _decimal_comma(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}".replace(",", "_").replace(".", ",").replace("_", ".")


def format_idr(value: float | None) -> str:
    """Whole rupiah: 12345.6 -> "Rp 12.346", -500 -> "-Rp 500"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    sign = "-" if value < 0 else ""
    return f"{sign}Rp {format_count(abs(value))}"


# Indonesian short scales: ribu (10^3), juta (10^6), miliar (10^9), triliun (10^12).
_IDR_SCALES = ((1e12, "T"), (1e9, "M"), (1e6, "jt"), (1e3, "rb"))


def format_idr_compact(value: float | None) -> str:
    """Rupiah on the Indonesian short scale, one decimal (comma) unless whole.

    1.2e9 -> "Rp 1,2 M", 5e5 -> "Rp 500 rb".
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    for threshold, suffix in _IDR_SCALES:
        # Largest scale first, judged after rounding, so 999.960 reads "Rp 1,0 jt" rather than "Rp 1.000,0 rb".
        scaled = round(magnitude / threshold, 1)
        if scaled >= 1:
            number = _decimal_comma(scaled, 1).removesuffix(",0")
            return f"{sign}Rp {number} {suffix}"
    return f"{sign}Rp {format_count(magnitude)}"


def format_percent(share: float, decimals: int = 1) -> str:
    """A share in [0, 1] as an Indonesian percentage: 0.1234 -> "12,3%"."""
    return f"{_decimal_comma(share * 100, decimals)}%"


def _axis_idr(ax_axis) -> None:
    # Ticks on 1-2-5 steps, so one decimal on the short scale always states them exactly.
    ax_axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))
    ax_axis.set_major_formatter(FuncFormatter(lambda v, _pos: format_idr_compact(v) if v else "0"))


def _axis_count(ax_axis) -> None:
    ax_axis.set_major_formatter(FuncFormatter(lambda v, _pos: format_count(v)))


# ---------------------------------------------------------------- measures


@dataclass(frozen=True)
class Lorenz:
    customer_share: np.ndarray  # x: cumulative share of customers, lowest revenue first
    revenue_share: np.ndarray  # y: cumulative share of revenue
    gini: float
    shares: dict[str, float]  # share of revenue held by a named group of customers, e.g. "top 10%"


# Groups of customers whose revenue share the report states in words: (label, lower and upper customer quantile).
LORENZ_GROUPS = (("top 1%", 0.99, 1.0), ("top 10%", 0.9, 1.0), ("top 20%", 0.8, 1.0), ("bottom 50%", 0.0, 0.5))


def lorenz_curve(revenue: np.ndarray) -> Lorenz | None:
    """Lorenz curve and Gini of per-customer revenue (None when there is no positive revenue).

    Negative revenue (net refunds) is clipped to zero: the curve describes who brings the money in.
    """
    values = np.asarray(revenue, dtype=float)
    values = np.sort(np.clip(values[~np.isnan(values)], 0, None))
    total = values.sum()
    if values.size == 0 or total <= 0:
        return None
    n = values.size
    cumulative = np.concatenate(([0.0], np.cumsum(values) / total))
    customers = np.arange(n + 1) / n
    # Gini = 1 - 2 * area under the Lorenz curve (trapezoids over equal customer steps).
    gini = float(1.0 - (cumulative[1:] + cumulative[:-1]).sum() / n)
    shares = {
        label: float(np.interp(upper, customers, cumulative) - np.interp(lower, customers, cumulative))
        for label, lower, upper in LORENZ_GROUPS
    }
    grid = np.linspace(0.0, 1.0, min(LORENZ_POINTS, n + 1))
    return Lorenz(grid, np.interp(grid, customers, cumulative), gini, shares)


# ---------------------------------------------------------------- charts


_SVG_ID_REFERENCE = re.compile(r'( id="|href="#|url\(#)')


def _svg(fig: Figure, name: str) -> Markup:
    """The figure as an inline <svg> element whose element ids are prefixed with `name` (unique within the page)."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "cdp-report"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight", transparent=True)
    text = buffer.getvalue()
    # Inside HTML only the <svg> element belongs: drop the XML prolog and DOCTYPE.
    svg = _SVG_ID_REFERENCE.sub(lambda match: f"{match.group(1)}{name}-", text[text.index("<svg") :])
    # Let CSS size the chart to its card; the viewBox keeps the aspect ratio.
    head, rest = svg.split(">", 1)
    head = head.replace(' width="', ' data-width="').replace(' height="', ' data-height="')
    return Markup(f'{head} class="chart" role="img" aria-label="{name.replace("-", " ")}">{rest}')


def _segment_chart(segments: pl.DataFrame) -> Markup | None:
    if segments.is_empty():
        return None
    rows = segments.sort(["customers", "segment"], descending=[False, True])  # largest on top
    labels = rows["segment"].to_list()
    y = np.arange(len(labels))
    customer_share = (rows["customers"] / rows["customers"].sum()).to_numpy()
    revenue_total = rows["revenue"].sum()
    revenue_share = (rows["revenue"] / revenue_total).to_numpy() if revenue_total else np.zeros(len(labels))
    height = 1.2 + 0.42 * len(labels)
    fig = Figure(figsize=(7.2, height))
    ax = fig.subplots()
    bar = 0.38
    for offset, share, colour, label in (
        (bar / 2, customer_share, CURRENT, "share of customers"),
        (-bar / 2, revenue_share, LIFETIME, "share of revenue"),
    ):
        bars = ax.barh(y + offset, share, height=bar, color=colour, label=label)
        ax.bar_label(bars, [format_percent(value, 0) for value in share], padding=3, fontsize=8, color=MUTED)
    ax.set_yticks(y, labels)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", length=0, labelcolor=INK)
    ax.set_xlim(0, max(customer_share.max(), revenue_share.max()) * 1.18)
    ax.legend(loc="lower right", ncols=2, bbox_to_anchor=(1.0, 1.0), fontsize=9)
    return _svg(fig, "segment-sizes")


def _clv_histogram(clv: np.ndarray) -> Markup | None:
    if clv.size == 0:
        return None
    cap = float(np.quantile(clv, HISTOGRAM_CAP_QUANTILE))
    low = min(0.0, float(clv.min()))
    if cap <= low:
        cap = low + 1.0
    counts, edges = np.histogram(np.clip(clv, low, cap), bins=HISTOGRAM_BINS, range=(low, cap))
    fig = Figure(figsize=(7.2, 3.4))
    ax = fig.subplots()
    ax.bar(
        edges[:-1],
        counts,
        width=np.diff(edges),
        align="edge",
        color=ACCENT,
        alpha=0.85,
        edgecolor="white",
        linewidth=0.6,
    )
    median, mean = float(np.median(clv)), float(clv.mean())
    ax.axvline(median, color=INK, linewidth=1.2, linestyle="--", label=f"median {format_idr_compact(median)}")
    if low <= mean <= cap:
        ax.axvline(mean, color=FUTURE, linewidth=1.2, label=f"mean {format_idr_compact(mean)}")
    _axis_idr(ax.xaxis)
    _axis_count(ax.yaxis)
    ax.set_xlabel(f"CLV per customer (last bar holds everything ≥ {format_idr_compact(edges[-2])})")
    ax.set_ylabel("customers")
    ax.grid(axis="x", visible=False)
    ax.legend(loc="upper right", fontsize=9)
    return _svg(fig, "clv-distribution")


def _equity_chart(equity: pl.DataFrame) -> Markup | None:
    if equity.is_empty():
        return None
    rows = equity.sort(["lifetime_value", "segment"], descending=[False, True])
    labels = rows["segment"].to_list()
    y = np.arange(len(labels))
    current = rows["current_value"].to_numpy()
    future = rows["future_value"].to_numpy()
    fig = Figure(figsize=(7.2, 1.2 + 0.42 * len(labels)))
    ax = fig.subplots()
    ax.barh(y, current, color=CURRENT, height=0.6, label="current value")
    stacked = ax.barh(y, future, left=current, color=FUTURE, height=0.6, label="future value")
    lifetime = [format_idr_compact(value) for value in rows["lifetime_value"]]
    ax.bar_label(stacked, lifetime, padding=4, fontsize=8, color=INK)
    ax.set_yticks(y, labels)
    ax.tick_params(axis="y", length=0, labelcolor=INK)
    ax.grid(axis="y", visible=False)
    ax.set_xlim(0, float(np.max(current + future)) * 1.2 or 1.0)
    _axis_idr(ax.xaxis)
    ax.legend(loc="lower right", ncols=2, bbox_to_anchor=(1.0, 1.0), fontsize=9)
    return _svg(fig, "equity-by-segment")


def _equity_history_chart(history: pl.DataFrame) -> Markup | None:
    if history.is_empty():
        return None
    rows = history.sort("snapshot_date")
    dates = rows["snapshot_date"].to_numpy()
    fig = Figure(figsize=(7.2, 3.2))
    ax = fig.subplots()
    marker = "o" if rows.height <= 24 else None
    ax.plot(
        dates,
        rows["lifetime_value"].to_numpy(),
        color=LIFETIME,
        linewidth=2,
        marker=marker,
        markersize=4,
        label="customer equity (lifetime value)",
    )
    ax.plot(
        dates,
        rows["future_value"].to_numpy(),
        color=FUTURE,
        linewidth=2,
        marker=marker,
        markersize=4,
        label="future value",
    )
    ax.set_ylim(bottom=0)
    _axis_idr(ax.yaxis)
    ax.grid(axis="x", visible=False)
    locator = AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.legend(loc="lower right", ncols=2, bbox_to_anchor=(1.0, 1.0), fontsize=9)
    return _svg(fig, "equity-over-time")


def _lorenz_chart(lorenz: Lorenz | None) -> Markup | None:
    if lorenz is None:
        return None
    fig = Figure(figsize=(4.6, 4.2))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color=MUTED, linewidth=1, linestyle="--", label="perfect equality")
    ax.fill_between(lorenz.customer_share, lorenz.revenue_share, lorenz.customer_share, color=ACCENT, alpha=0.12)
    ax.plot(
        lorenz.customer_share,
        lorenz.revenue_share,
        color=ACCENT,
        linewidth=2,
        label=f"revenue (Gini {_decimal_comma(lorenz.gini, 2)})",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel("cumulative share of customers (lowest revenue first)")
    ax.set_ylabel("cumulative share of revenue")
    ax.legend(loc="upper left", fontsize=9)
    return _svg(fig, "revenue-concentration")


# ---------------------------------------------------------------- page


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        idr=format_idr,
        idr_compact=format_idr_compact,
        count=format_count,
        percent=format_percent,
        decimal=_decimal_comma,
    )
    return env


def render_customer_base_report(inputs: CustomerBaseInputs) -> str:
    """The report page as one HTML string (charts inline as SVG, no external resources)."""
    segments = inputs.segments.select("segment", "customers", "revenue").sort(
        ["customers", "segment"], descending=[True, False]
    )
    equity = inputs.equity.select("segment", "current_value", "future_value", "lifetime_value").sort(
        ["lifetime_value", "segment"], descending=[True, False]
    )
    history = inputs.equity_history.select("snapshot_date", "lifetime_value", "future_value").sort("snapshot_date")
    clv = inputs.clv["clv"].drop_nulls().cast(pl.Float64).to_numpy()
    revenue = inputs.revenue["revenue"].fill_null(0).cast(pl.Float64).to_numpy()
    lorenz = lorenz_curve(revenue)

    customer_total = int(segments["customers"].sum())
    revenue_total = float(segments["revenue"].sum())
    segment_rows = segments.with_columns(
        customer_share=pl.col("customers") / customer_total if customer_total else pl.lit(0.0),
        revenue_share=pl.col("revenue") / revenue_total if revenue_total else pl.lit(0.0),
        revenue_per_customer=pl.when(pl.col("customers") > 0).then(pl.col("revenue") / pl.col("customers")),
    ).to_dicts()
    equity_totals = equity.select(pl.col("current_value", "future_value", "lifetime_value").sum()).row(0, named=True)

    tiles = [
        ("Customers", format_count(customer_total), f"in {segments.height} segments"),
        ("Revenue to date", format_idr_compact(revenue_total), format_idr(revenue_total)),
        (
            "Customer equity",
            format_idr_compact(equity_totals["lifetime_value"]),
            f"{format_idr_compact(equity_totals['future_value'])} still to come",
        ),
        (
            "Median CLV",
            format_idr_compact(float(np.median(clv))) if clv.size else "–",
            f"mean {format_idr_compact(float(clv.mean()))}" if clv.size else "no CLV yet",
        ),
        (
            "Revenue Gini",
            _decimal_comma(lorenz.gini, 2) if lorenz else "–",
            f"top 10% bring {format_percent(lorenz.shares['top 10%'], 0)} of revenue" if lorenz else "no revenue yet",
        ),
    ]
    with matplotlib.rc_context(_CHART_RC):
        charts = {
            "segments": _segment_chart(segments),
            "clv": _clv_histogram(clv),
            "equity": _equity_chart(equity),
            "history": _equity_history_chart(history),
            "lorenz": _lorenz_chart(lorenz),
        }
    return (
        _environment()
        .get_template(TEMPLATE_NAME)
        .render(
            as_of=inputs.as_of.isoformat() if inputs.as_of else None,
            tiles=tiles,
            charts=charts,
            segment_rows=segment_rows,
            equity_rows=equity.to_dicts(),
            equity_totals=equity_totals,
            history_rows=history.sort("snapshot_date", descending=True).head(12).to_dicts(),
            lorenz=lorenz,
            clv_customers=clv.size,
            clv_quantiles=list(zip(CLV_PERCENTILE_LABELS, np.quantile(clv, CLV_PERCENTILES).tolist(), strict=True))
            if clv.size
            else [],
            revenue_customers=revenue.size,
        )
    )
