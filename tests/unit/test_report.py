"""The customer-base report: number formatting, Lorenz/Gini and the rendered page."""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import polars as pl
import pytest

from pipeline.lib.report import (
    CustomerBaseInputs,
    format_count,
    format_idr,
    format_idr_compact,
    format_percent,
    lorenz_curve,
    render_customer_base_report,
)
from tests.support.report_inputs import (
    svg_elements,
    synthetic_customers,
    synthetic_history,
)


def inputs_from(customers: pl.DataFrame, history: pl.DataFrame) -> CustomerBaseInputs:
    equity = (
        customers.group_by("segment")
        .agg(current_value=pl.col("revenue").sum(), future_value=pl.col("clv").sum())
        .with_columns(lifetime_value=pl.col("current_value") + pl.col("future_value"))
    )
    return CustomerBaseInputs(
        segments=customers.group_by("segment").agg(customers=pl.len(), revenue=pl.col("revenue").sum()),
        clv=customers.select("clv"),
        equity=equity,
        equity_history=history.group_by("snapshot_date").agg(pl.col("lifetime_value", "future_value").sum()),
        revenue=customers.select("revenue"),
        as_of=date(2024, 12, 31),
    )


@pytest.fixture(scope="module")
def inputs(customers) -> CustomerBaseInputs:
    return inputs_from(customers, synthetic_history(12))


@pytest.fixture(scope="module")
def html(inputs) -> str:
    return render_customer_base_report(inputs)


# ---------------------------------------------------------------- formatting and measures


def test_indonesian_number_formats():
    assert format_count(1234567) == "1.234.567"
    assert format_idr(12345.6) == "Rp 12.346"
    assert format_idr(-500) == "-Rp 500"
    assert format_idr_compact(1.2e9) == "Rp 1,2 M"
    assert format_idr_compact(3.4e6) == "Rp 3,4 jt"
    assert format_idr_compact(5e5) == "Rp 500 rb"
    assert format_idr_compact(2.5e12) == "Rp 2,5 T"
    assert format_idr_compact(999_960) == "Rp 1 jt"  # rounds up into the next scale, never "1.000 rb"
    assert format_idr_compact(750) == "Rp 750"
    assert format_percent(0.1234) == "12,3%"


def test_gini_matches_mean_absolute_difference_definition():
    revenue = np.random.default_rng(3).lognormal(12, 1.5, 800)
    lorenz = lorenz_curve(revenue)
    mean_abs_difference = np.abs(revenue[:, None] - revenue[None, :]).mean()
    assert lorenz.gini == pytest.approx(mean_abs_difference / (2 * revenue.mean()), rel=1e-9)
    top = np.sort(revenue)[-80:].sum() / revenue.sum()
    assert lorenz.shares["top 10%"] == pytest.approx(top, rel=1e-9)
    assert lorenz.revenue_share[0] == 0 and lorenz.revenue_share[-1] == pytest.approx(1.0)
    assert np.all(np.diff(lorenz.revenue_share) >= 0)


def test_gini_extremes_and_no_revenue():
    assert lorenz_curve(np.full(50, 1000.0)).gini == pytest.approx(0.0, abs=1e-12)
    one_has_all = np.zeros(50)
    one_has_all[7] = 1e6
    assert lorenz_curve(one_has_all).gini == pytest.approx(1 - 1 / 50)
    assert lorenz_curve(np.zeros(10)) is None
    assert lorenz_curve(np.array([])) is None


# ---------------------------------------------------------------- rendered page


def test_page_has_five_inline_svg_charts_and_no_external_resources(html):
    charts = svg_elements(html)
    labels = [re.search(r'aria-label="([^"]+)"', svg).group(1) for svg in charts]
    assert labels == [
        "segment sizes",
        "equity by segment",
        "equity over time",
        "clv distribution",
        "revenue concentration",
    ]
    assert "<script" not in html and "<link" not in html and not re.search(r'\bsrc="', html)
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "element ids must be unique across the inline charts"
    # Each chart has drawn shapes (bars, lines), not just an empty frame.
    assert all(svg.count("<path") > 10 for svg in charts)


def test_page_shows_numbers_from_the_inputs(html, inputs, customers):
    assert "data as of 2024-12-31" in html
    assert f">{format_count(customers.height)}<" in html
    assert format_idr(customers["revenue"].sum()) in html  # revenue tile note, whole rupiah
    for row in inputs.segments.iter_rows(named=True):
        assert f"<td>{row['segment']}</td><td>{format_count(row['customers'])} " in html
        assert format_idr_compact(row["revenue"]) in html
    for row in inputs.equity.iter_rows(named=True):
        assert format_idr_compact(row["lifetime_value"]) in html
    total_equity = inputs.equity["lifetime_value"].sum()
    assert f"<td>{format_idr_compact(total_equity)}</td></tr></tfoot>" in html
    assert format_idr(float(np.quantile(customers["clv"].to_numpy(), 0.9))) in html
    # The histogram's legend (SVG text) carries the median CLV.
    clv_svg = next(svg for svg in svg_elements(html) if 'aria-label="clv distribution"' in svg)
    assert f"median {format_idr_compact(float(customers['clv'].median()))}" in clv_svg
    gini = lorenz_curve(customers["revenue"].to_numpy()).gini
    assert f"Gini {gini:.2f}".replace(".", ",") in html
    for snapshot in inputs.equity_history["snapshot_date"]:
        assert f"<td>{snapshot.isoformat()}</td>" in html


def test_render_is_deterministic_and_follows_the_data(html, customers):
    again = render_customer_base_report(inputs_from(customers, synthetic_history(12)))
    assert again == html
    other = render_customer_base_report(inputs_from(synthetic_customers(3000, seed=12), synthetic_history(12)))
    assert other != html


def test_empty_inputs_render_placeholders():
    empty = CustomerBaseInputs(
        segments=pl.DataFrame(schema={"segment": pl.String, "customers": pl.UInt32, "revenue": pl.Float64}),
        clv=pl.DataFrame(schema={"clv": pl.Float64}),
        equity=pl.DataFrame(
            schema={
                "segment": pl.String,
                "current_value": pl.Float64,
                "future_value": pl.Float64,
                "lifetime_value": pl.Float64,
            }
        ),
        equity_history=pl.DataFrame(
            schema={"snapshot_date": pl.Date, "lifetime_value": pl.Float64, "future_value": pl.Float64}
        ),
        revenue=pl.DataFrame(schema={"revenue": pl.Float64}),
    )
    page = render_customer_base_report(empty)
    assert svg_elements(page) == []
    assert page.count('<div class="empty">') == 5
    assert "as-of date unknown" in page
