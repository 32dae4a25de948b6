"""The customer-base report: one static, self-contained HTML page of charts, KPI tiles and small tables.

The page speaks Bahasa Indonesia or English (every text in templates/report_text.yaml) and writes money in the shop's
currency on the language's own short scale via Babel: "Rp6,2 M" is 6.2 miliar to an Indonesian reader, "IDR6.2B"
to an English one.

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
import yaml
from babel import Locale
from babel.numbers import format_compact_currency, format_decimal, format_percent, parse_pattern
from markupsafe import Markup
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from pipeline.lib.concentration import Lorenz, lorenz_curve

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

    segments: segment, customers, revenue — one row per segment (segment = the segment code).
    clv: clv — one row per customer.
    equity: segment, current_value, future_value, lifetime_value — one row per segment, where
        lifetime_value = value to date + future_value and current_value is the part of value to date earned in the
        last `current_period_days` days.
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
    current_period_days: int = 365
    horizon_months: int = 12


LANGUAGES = ("id", "en")
TEXT_FILE = TEMPLATE_DIR / "report_text.yaml"


def report_texts() -> dict[str, dict]:
    """Every text of the page per language ({"en": {...}, "id": {...}})."""
    return yaml.safe_load(TEXT_FILE.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class ReportStyle:
    """How the page speaks: its language, the shop's currency and the Babel locale numbers are written in.

    `locale` defaults to the language's own ("id_ID" / "en"); a configured locale of another language is not used,
    so an English page never writes "6,2 M" (Indonesian miliar) for 6.2 billion.
    """

    currency: str  # ISO 4217 code of the shop (`calendar.currency`): no default, every shop names its own
    language: str = "en"
    minor_units: int = 0
    locale: str | None = None

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise ValueError(f"report language {self.language!r} is not one of {', '.join(LANGUAGES)}")

    @property
    def number_locale(self) -> str:
        if self.locale and Locale.parse(self.locale).language == self.language:
            return self.locale
        return {"id": "id_ID", "en": "en"}[self.language]


class Numbers:
    """Counts, shares and money written for one style: full amounts and short scales (rb/jt/M/T, K/M/B/T) by Babel."""

    def __init__(self, style: ReportStyle) -> None:
        self.locale = Locale.parse(style.number_locale)
        self.currency = style.currency
        self.minor_units = style.minor_units
        pattern = parse_pattern(self.locale.currency_formats["standard"].pattern)
        pattern.frac_prec = (style.minor_units, style.minor_units)
        self._money_pattern = pattern

    def count(self, value: float) -> str:
        """A whole number with the locale's grouping: 12345 -> "12.345" (id) / "12,345" (en)."""
        return format_decimal(round(value), locale=self.locale)

    def decimal(self, value: float, decimals: int) -> str:
        return format_decimal(value, format="0." + "0" * decimals if decimals else "0", locale=self.locale)

    def percent(self, share: float, decimals: int = 1) -> str:
        """A share in [0, 1]: 0.1234 -> "12,3%" (id) / "12.3%" (en)."""
        return format_percent(
            share, format="#,##0" + ("." + "0" * decimals if decimals else "") + "%", locale=self.locale
        )

    def money(self, value: float | None) -> str:
        """The full amount in the currency's minor units: "Rp12.346" (id), "IDR12,346" (en)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        return self._money_pattern.apply(
            round(value, self.minor_units), self.locale, currency=self.currency, currency_digits=False
        )

    def money_compact(self, value: float | None) -> str:
        """On the language's short scale, one decimal at most: 6.2e9 -> "Rp6,2 M" (id) / "IDR6.2B" (en)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        magnitude = abs(value)
        if magnitude >= 1000:
            # A value that rounds up to 1000 of a scale is 1 of the next one: "1 jt", never "1000 rb".
            scale = 1000 ** int(math.log10(magnitude) // 3)
            if round(magnitude / scale, 1) >= 1000:
                value = math.copysign(scale * 1000, value)
        return format_compact_currency(value, self.currency, locale=self.locale, fraction_digits=1)


def exact_equity(equity: pl.DataFrame, minor_units: int) -> pl.DataFrame:
    """Equity rows whose shown figures add up: value to date and future value rounded to the currency's minor units,
    lifetime value = their sum (so "to date + future = lifetime" holds for every row and for the totals)."""
    return equity.select(
        "segment",
        value_to_date=(pl.col("lifetime_value") - pl.col("future_value")).round(minor_units),
        future_value=pl.col("future_value").round(minor_units),
        current_value=pl.col("current_value").round(minor_units),
    ).with_columns(lifetime_value=pl.col("value_to_date") + pl.col("future_value"))


def segment_label(code: str, texts: dict) -> str:
    """The human name of a segment code in the page's language (unknown codes: the code, spaced and capitalised)."""
    return texts["segment_names"].get(code) or code.replace("_", " ").capitalize()


def _axis_money(ax_axis, numbers: Numbers) -> None:
    # Ticks on 1-2-5 steps, so one decimal on the short scale always states them exactly.
    ax_axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))
    ax_axis.set_major_formatter(FuncFormatter(lambda v, _pos: numbers.money_compact(v) if v else "0"))


def _axis_count(ax_axis, numbers: Numbers) -> None:
    ax_axis.set_major_formatter(FuncFormatter(lambda v, _pos: numbers.count(v)))


# ---------------------------------------------------------------- measures


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


def _segment_chart(segments: pl.DataFrame, texts: dict, numbers: Numbers) -> Markup | None:
    if segments.is_empty():
        return None
    rows = segments.sort(["customers", "segment"], descending=[False, True])  # largest on top
    labels = rows["label"].to_list()
    y = np.arange(len(labels))
    customer_share = (rows["customers"] / rows["customers"].sum()).to_numpy()
    revenue_total = rows["revenue"].sum()
    revenue_share = (rows["revenue"] / revenue_total).to_numpy() if revenue_total else np.zeros(len(labels))
    height = 1.2 + 0.42 * len(labels)
    fig = Figure(figsize=(7.2, height))
    ax = fig.subplots()
    bar = 0.38
    for offset, share, colour, label in (
        (bar / 2, customer_share, CURRENT, texts["share_of_customers"]),
        (-bar / 2, revenue_share, LIFETIME, texts["share_of_revenue"]),
    ):
        bars = ax.barh(y + offset, share, height=bar, color=colour, label=label)
        ax.bar_label(bars, [numbers.percent(value, 0) for value in share], padding=3, fontsize=8, color=MUTED)
    ax.set_yticks(y, labels)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: numbers.percent(v, 0)))
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", length=0, labelcolor=INK)
    ax.set_xlim(0, max(customer_share.max(), revenue_share.max()) * 1.18)
    ax.legend(loc="lower right", ncols=2, bbox_to_anchor=(1.0, 1.0), fontsize=9)
    return _svg(fig, "segment-sizes")


def _clv_histogram(clv: np.ndarray, texts: dict, numbers: Numbers) -> Markup | None:
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
    ax.axvline(
        median, color=INK, linewidth=1.2, linestyle="--", label=f"{texts['median']} {numbers.money_compact(median)}"
    )
    if low <= mean <= cap:
        ax.axvline(mean, color=FUTURE, linewidth=1.2, label=f"{texts['mean']} {numbers.money_compact(mean)}")
    _axis_money(ax.xaxis, numbers)
    _axis_count(ax.yaxis, numbers)
    ax.set_xlabel(texts["clv_axis"].format(cap=numbers.money_compact(edges[-2])))
    ax.set_ylabel(texts["customers_axis"])
    ax.grid(axis="x", visible=False)
    ax.legend(loc="upper right", fontsize=9)
    return _svg(fig, "clv-distribution")


def _equity_chart(equity: pl.DataFrame, texts: dict, numbers: Numbers) -> Markup | None:
    """Value to date and future value side by side per segment (negatives left of zero), lifetime value labelled."""
    if equity.is_empty():
        return None
    rows = equity.sort(["lifetime_value", "segment"], descending=[False, True])
    labels = rows["label"].to_list()
    y = np.arange(len(labels))
    to_date = rows["value_to_date"].to_numpy()
    future = rows["future_value"].to_numpy()
    fig = Figure(figsize=(7.2, 1.2 + 0.5 * len(labels)))
    ax = fig.subplots()
    bar = 0.38
    ax.barh(y + bar / 2, to_date, height=bar, color=CURRENT, label=texts["col_value_to_date"])
    ax.barh(y - bar / 2, future, height=bar, color=FUTURE, label=texts["col_future"])
    ax.axvline(0, color=INK, linewidth=0.8)
    right = float(max(np.max(to_date), np.max(future), 0.0))
    left = float(min(np.min(to_date), np.min(future), 0.0))
    for row, lifetime in zip(y, rows["lifetime_value"], strict=True):
        ax.annotate(
            f"= {numbers.money_compact(lifetime)}",
            (right, row),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            color=LIFETIME,
        )
    ax.set_yticks(y, labels)
    ax.tick_params(axis="y", length=0, labelcolor=INK)
    ax.grid(axis="y", visible=False)
    span = (right - left) or 1.0
    ax.set_xlim(left - 0.02 * span, right + 0.3 * span)
    _axis_money(ax.xaxis, numbers)
    ax.legend(loc="lower right", ncols=2, bbox_to_anchor=(1.0, 1.0), fontsize=9)
    return _svg(fig, "equity-by-segment")


def _equity_history_chart(history: pl.DataFrame, texts: dict, numbers: Numbers) -> Markup | None:
    """A line over time, so only from two snapshots on (one point is no trend)."""
    if history["snapshot_date"].n_unique() < 2:
        return None
    rows = history.sort("snapshot_date")
    dates = rows["snapshot_date"].to_numpy()
    fig = Figure(figsize=(7.2, 3.2))
    ax = fig.subplots()
    marker = "o" if rows.height <= 24 else None
    for column, colour, label in (
        ("lifetime_value", LIFETIME, texts["col_lifetime"]),
        ("future_value", FUTURE, texts["col_future"]),
    ):
        ax.plot(dates, rows[column].to_numpy(), color=colour, linewidth=2, marker=marker, markersize=4, label=label)
    ax.set_ylim(bottom=min(0.0, float(rows["future_value"].min()), float(rows["lifetime_value"].min())))
    _axis_money(ax.yaxis, numbers)
    ax.grid(axis="x", visible=False)
    locator = AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.legend(loc="lower right", ncols=2, bbox_to_anchor=(1.0, 1.0), fontsize=9)
    return _svg(fig, "equity-over-time")


def _lorenz_chart(lorenz: Lorenz | None, texts: dict, numbers: Numbers) -> Markup | None:
    if lorenz is None:
        return None
    fig = Figure(figsize=(4.6, 4.2))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color=MUTED, linewidth=1, linestyle="--", label=texts["perfect_equality"])
    ax.fill_between(lorenz.customer_share, lorenz.revenue_share, lorenz.customer_share, color=ACCENT, alpha=0.12)
    ax.plot(
        lorenz.customer_share,
        lorenz.revenue_share,
        color=ACCENT,
        linewidth=2,
        label=texts["revenue_gini"].format(gini=numbers.decimal(lorenz.gini, 2)),
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: numbers.percent(v, 0)))
    ax.set_xlabel(texts["lorenz_x"])
    ax.set_ylabel(texts["lorenz_y"])
    ax.legend(loc="upper left", fontsize=9)
    return _svg(fig, "revenue-concentration")


# ---------------------------------------------------------------- page


def _environment(numbers: Numbers) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        money=numbers.money,
        money_compact=numbers.money_compact,
        count=numbers.count,
        percent=numbers.percent,
        decimal=numbers.decimal,
    )
    return env


def render_customer_base_report(inputs: CustomerBaseInputs, style: ReportStyle) -> str:
    """The report page as one HTML string in the style's language (charts inline as SVG, no external resources)."""
    texts = report_texts()[style.language]
    numbers = Numbers(style)
    label = pl.col("segment").map_elements(lambda code: segment_label(code, texts), return_dtype=pl.String)
    segments = (
        inputs.segments.select("segment", "customers", "revenue")
        .sort(["customers", "segment"], descending=[True, False])
        .with_columns(label=label)
    )
    equity = (
        exact_equity(inputs.equity, style.minor_units)
        .sort(["lifetime_value", "segment"], descending=[True, False])
        .with_columns(label=label)
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
    equity_totals = equity.select(pl.col("value_to_date", "future_value", "current_value", "lifetime_value").sum()).row(
        0, named=True
    )

    tiles = [
        (
            texts["tile_customers"],
            numbers.count(customer_total),
            texts["tile_customers_note"].format(segments=segments.height),
        ),
        (texts["tile_revenue"], numbers.money_compact(revenue_total), numbers.money(revenue_total)),
        (
            texts["tile_equity"],
            numbers.money_compact(equity_totals["lifetime_value"]),
            texts["tile_equity_note"].format(future=numbers.money_compact(equity_totals["future_value"])),
        ),
        (
            texts["tile_median_clv"],
            numbers.money_compact(float(np.median(clv))) if clv.size else "–",
            texts["tile_median_clv_note"].format(mean=numbers.money_compact(float(clv.mean())))
            if clv.size
            else texts["tile_no_clv"],
        ),
        (
            texts["tile_gini"],
            numbers.decimal(lorenz.gini, 2) if lorenz else "–",
            texts["tile_gini_note"].format(share=numbers.percent(lorenz.shares["top 10%"], 0))
            if lorenz
            else texts["tile_no_revenue"],
        ),
    ]
    with matplotlib.rc_context(_CHART_RC):
        charts = {
            "segments": _segment_chart(segments, texts, numbers),
            "clv": _clv_histogram(clv, texts, numbers),
            "equity": _equity_chart(equity, texts, numbers),
            "history": _equity_history_chart(history, texts, numbers),
            "lorenz": _lorenz_chart(lorenz, texts, numbers),
        }
    return (
        _environment(numbers)
        .get_template(TEMPLATE_NAME)
        .render(
            t=texts,
            as_of=inputs.as_of.isoformat() if inputs.as_of else None,
            currency=style.currency,
            current_days=inputs.current_period_days,
            horizon=inputs.horizon_months,
            tiles=tiles,
            charts=charts,
            segment_rows=segment_rows,
            equity_rows=equity.to_dicts(),
            equity_totals=equity_totals,
            equity_has_negatives=bool(
                equity.select((pl.col("value_to_date", "future_value", "lifetime_value") < 0).any()).row(0).count(True)
            ),
            history_rows=history.sort("snapshot_date", descending=True).head(12).to_dicts(),
            lorenz=lorenz,
            clv_customers=clv.size,
            clv_quantiles=list(zip(CLV_PERCENTILE_LABELS, np.quantile(clv, CLV_PERCENTILES).tolist(), strict=True))
            if clv.size
            else [],
            revenue_customers=revenue.size,
        )
    )
