"""The customer-base report: number formatting in both languages, Lorenz/Gini and the rendered page."""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import polars as pl
import pytest

from pipeline.lib.report import (
    LANGUAGES,
    CustomerBaseInputs,
    Numbers,
    ReportStyle,
    exact_equity,
    lorenz_curve,
    render_customer_base_report,
    report_texts,
)
from tests.support.report_inputs import (
    svg_elements,
    synthetic_customers,
    synthetic_history,
)

INDONESIAN = ReportStyle(language="id", currency="IDR", minor_units=0, locale="id_ID")
ENGLISH = ReportStyle(language="en", currency="IDR", minor_units=0, locale="id_ID")
ID_NUMBERS, EN_NUMBERS = Numbers(INDONESIAN), Numbers(ENGLISH)


def inputs_from(customers: pl.DataFrame, history: pl.DataFrame) -> CustomerBaseInputs:
    equity = (
        customers.group_by("segment")
        .agg(
            current_value=pl.col("revenue").sum() * 0.4,
            future_value=pl.col("clv").sum(),
            to_date=pl.col("revenue").sum() * 0.9,
        )
        # One segment costs more to serve than it brings in (negative future value).
        .with_columns(
            future_value=pl.when(pl.col("segment") == "lapsed")
            .then(-pl.col("future_value") / 50)
            .otherwise(pl.col("future_value"))
        )
        .with_columns(lifetime_value=pl.col("to_date") + pl.col("future_value"))
        .drop("to_date")
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
    return render_customer_base_report(inputs, INDONESIAN)


@pytest.fixture(scope="module")
def html_en(inputs) -> str:
    return render_customer_base_report(inputs, ENGLISH)


# ---------------------------------------------------------------- formatting and measures


def test_amounts_on_each_languages_short_scale():
    # Number and scale are joined by a no-break space (Babel), so a line never breaks between them.
    assert ID_NUMBERS.count(1234567) == "1.234.567" and EN_NUMBERS.count(1234567) == "1,234,567"
    assert ID_NUMBERS.money(12345.6) == "Rp12.346" and EN_NUMBERS.money(12345.6) == "IDR12,346"
    assert ID_NUMBERS.money(-500) == "-Rp500"
    # miliar is "M" in Indonesian and "B" in English: the same number never reads as million to an English reader.
    assert ID_NUMBERS.money_compact(6.2e9) == "Rp6,2\u00a0M" and EN_NUMBERS.money_compact(6.2e9) == "IDR6.2B"
    assert ID_NUMBERS.money_compact(3.4e6) == "Rp3,4\u00a0jt" and EN_NUMBERS.money_compact(3.4e6) == "IDR3.4M"
    assert ID_NUMBERS.money_compact(5e5) == "Rp500\u00a0rb" and EN_NUMBERS.money_compact(5e5) == "IDR500K"
    assert ID_NUMBERS.money_compact(2.5e12) == "Rp2,5\u00a0T" and EN_NUMBERS.money_compact(2.5e12) == "IDR2.5T"
    assert ID_NUMBERS.money_compact(999_960) == "Rp1\u00a0jt"  # rounds up into the next scale, never "1000 rb"
    assert EN_NUMBERS.money_compact(-999_960) == "-IDR1M"
    assert ID_NUMBERS.money_compact(750) == "Rp750"
    assert ID_NUMBERS.percent(0.1234) == "12,3%" and EN_NUMBERS.percent(0.1234) == "12.3%"
    # The currency comes from the style (config), with its own minor units.
    dollars = Numbers(ReportStyle(language="en", currency="USD", minor_units=2, locale="en_US"))
    assert dollars.money(1234.5) == "$1,234.50"
    with pytest.raises(ValueError, match="language"):
        ReportStyle(currency="USD", language="fr")


def test_both_languages_are_complete():
    texts = report_texts()
    assert set(texts) == set(LANGUAGES)
    keys = {language: set(t) for language, t in texts.items()}
    assert keys["id"] == keys["en"]
    for key in ("segment_names", "groups", "percentiles"):
        assert set(texts["id"][key]) == set(texts["en"][key]), key
    # Every text differs between the languages except names that are the same in both.
    same = {k for k in keys["en"] if texts["en"][k] == texts["id"][k] and isinstance(texts["en"][k], str)}
    assert same <= {"tile_median_clv", "median", "total", "col_snapshot"}, same


def test_equity_figures_add_up_exactly():
    equity = pl.DataFrame(
        {
            "segment": ["a", "b"],
            "current_value": [1.4, 2.6],
            "future_value": [10.4, -3.3],
            "lifetime_value": [20.6, 7.9],
        }
    )
    exact = exact_equity(equity, minor_units=0)
    assert exact["value_to_date"].to_list() == [10.0, 11.0]  # 20.6 - 10.4 and 7.9 + 3.3, rounded
    assert (exact["value_to_date"] + exact["future_value"] == exact["lifetime_value"]).all()


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


@pytest.mark.parametrize("language", LANGUAGES)
def test_page_shows_numbers_from_the_inputs(language, html, html_en, inputs, customers):
    page, numbers = (html, ID_NUMBERS) if language == "id" else (html_en, EN_NUMBERS)
    texts = report_texts()[language]
    assert f'<html lang="{language}">' in page
    assert texts["as_of"].format(date="2024-12-31") in page
    assert f">{numbers.count(customers.height)}<" in page
    assert numbers.money(customers["revenue"].sum()) in page  # revenue tile note, whole rupiah
    for row in inputs.segments.iter_rows(named=True):
        name = texts["segment_names"][row["segment"]]
        assert f"<td>{name}</td><td>{numbers.count(row['customers'])} " in page
        assert numbers.money_compact(row["revenue"]) in page
        assert f">{row['segment']}<" not in page, "raw segment codes must not reach the reader"
    # The equity table: value to date + future value = lifetime value, row by row and in the totals.
    exact = exact_equity(inputs.equity, 0)
    for row in exact.iter_rows(named=True):
        cells = re.search(rf"<td>{re.escape(texts['segment_names'][row['segment']])}</td>(.*?)</tr>", page).group(1)
        shown = [numbers.money(row[c]) for c in ("value_to_date", "future_value", "lifetime_value", "current_value")]
        assert re.findall(r"<td[^>]*>([^<]*)</td>", cells) == shown
        assert row["value_to_date"] + row["future_value"] == row["lifetime_value"]
    total = exact["lifetime_value"].sum()
    assert total == exact["value_to_date"].sum() + exact["future_value"].sum()
    assert f"{numbers.money(total)}</td>" in page.split("<tfoot>")[1].split("</tfoot>")[0]
    # The lapsed segment costs more than it brings: shown in red and explained (cost to serve).
    assert 'class="negative"' in page and texts["equity_negative"] in page
    assert texts["equity_lead"].format(horizon=12, current_days=365) in page
    assert numbers.money(float(np.quantile(customers["clv"].to_numpy(), 0.9))) in page
    clv_svg = next(svg for svg in svg_elements(page) if 'aria-label="clv distribution"' in svg)
    assert f"{texts['median']} {numbers.money_compact(float(customers['clv'].median()))}" in clv_svg
    gini = lorenz_curve(customers["revenue"].to_numpy()).gini
    assert f"Gini {numbers.decimal(gini, 2)}" in page
    for snapshot in inputs.equity_history["snapshot_date"]:
        assert f"<td>{snapshot.isoformat()}</td>" in page


def test_equity_over_time_needs_two_snapshots(customers):
    texts = report_texts()["en"]
    one = render_customer_base_report(inputs_from(customers, synthetic_history(1)), ENGLISH)
    labels = re.findall(r'aria-label="([^"]+)"', one)
    assert "equity over time" not in labels and len(svg_elements(one)) == 4
    assert texts["history_one_snapshot"].format(date="2024-01-31") in one
    two = render_customer_base_report(inputs_from(customers, synthetic_history(2)), ENGLISH)
    assert "equity over time" in re.findall(r'aria-label="([^"]+)"', two)


def test_render_is_deterministic_and_follows_the_data(html, customers):
    again = render_customer_base_report(inputs_from(customers, synthetic_history(12)), INDONESIAN)
    assert again == html
    other = render_customer_base_report(
        inputs_from(synthetic_customers(3000, seed=12), synthetic_history(12)), INDONESIAN
    )
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
    page = render_customer_base_report(empty, ENGLISH)
    assert svg_elements(page) == []
    assert page.count('<div class="empty">') == 5
    assert "as-of date unknown" in page
