"""The customer-base report: number formatting, Lorenz/Gini, the rendered page, the Dagster asset, and a real
headless Chromium rendering of the page (screenshot + DOM)."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from PIL import Image

from pipeline.defs.clv.report import customer_base_report
from pipeline.lib.report import (
    CustomerBaseInputs,
    format_count,
    format_idr,
    format_idr_compact,
    format_percent,
    lorenz_curve,
    render_customer_base_report,
)
from pipeline.lib.warehouse import connect, replace_table

CHROMIUM = Path("/usr/bin/chromium")
SEGMENT_NAMES = ["Champions", "Loyal", "Potential loyalists", "At risk", "Hibernating", "New customers"]


def synthetic_customers(n: int, seed: int) -> pl.DataFrame:
    """One row per customer: id, segment, revenue (lognormal, some zero) and CLV."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "customer_id": [f"C{i:010d}" for i in range(n)],
            "segment": rng.choice(SEGMENT_NAMES, n, p=[0.08, 0.17, 0.2, 0.15, 0.25, 0.15]),
            "revenue": rng.lognormal(13, 1.3, n) * (rng.random(n) > 0.1),
            "clv": rng.lognormal(13.5, 1.1, n),
        }
    )


def synthetic_history(snapshots: int) -> pl.DataFrame:
    """Monthly equity snapshots per segment (long format, as the history mart has them)."""
    dates = [date(2024, 1, 31) + timedelta(days=30 * i) for i in range(snapshots)]
    frame = pl.DataFrame({"snapshot_date": dates}).join(pl.DataFrame({"dimension_value": SEGMENT_NAMES}), how="cross")
    step = pl.int_range(pl.len()).cast(pl.Float64)
    return frame.with_columns(
        dimension=pl.lit("segment"),
        current_value=1e8 + 5e6 * step,
        future_value=2e8 + 3e6 * step,
    ).with_columns(lifetime_value=pl.col("current_value") + pl.col("future_value"))


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
def customers() -> pl.DataFrame:
    return synthetic_customers(3000, seed=11)


@pytest.fixture(scope="module")
def inputs(customers) -> CustomerBaseInputs:
    return inputs_from(customers, synthetic_history(12))


@pytest.fixture(scope="module")
def html(inputs) -> str:
    return render_customer_base_report(inputs)


def svg_elements(page: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", page, flags=re.DOTALL)


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


# ---------------------------------------------------------------- Dagster asset on a real warehouse


@pytest.fixture(scope="module")
def materialized(tmp_path_factory, customers):
    """The asset run against a real DuckDB warehouse holding the five marts tables."""
    data = tmp_path_factory.mktemp("cdp_data")
    history = synthetic_history(6)
    equity = (
        customers.group_by("segment")
        .agg(customers=pl.len(), current_value=pl.col("revenue").sum(), future_value=pl.col("clv").sum())
        .select(
            dimension=pl.lit("segment"),
            dimension_value="segment",
            customers="customers",
            current_value="current_value",
            future_value="future_value",
            lifetime_value=pl.col("current_value") + pl.col("future_value"),
        )
    )
    # A non-segment dimension in the same tables must not leak into the report.
    other_dimension = equity.head(1).with_columns(dimension=pl.lit("channel"), dimension_value=pl.lit("web"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CDP_DATA_DIR", str(data))
        env.delenv("CDP_WAREHOUSE", raising=False)
        with connect() as con:
            replace_table(con, "marts.customer_segments", customers.select("customer_id", primary_segment="segment"))
            replace_table(con, "marts.customer_clv", customers.select("customer_id", "clv"))
            replace_table(con, "marts.customer_equity", pl.concat([equity, other_dimension]))
            replace_table(
                con,
                "marts.customer_equity_history",
                pl.concat(
                    [
                        history.select(
                            "snapshot_date",
                            "dimension",
                            "dimension_value",
                            "current_value",
                            "future_value",
                            "lifetime_value",
                        ),
                        history.head(1)
                        .with_columns(dimension=pl.lit("channel"), dimension_value=pl.lit("web"))
                        .select(
                            "snapshot_date",
                            "dimension",
                            "dimension_value",
                            "current_value",
                            "future_value",
                            "lifetime_value",
                        ),
                    ]
                ),
            )
            replace_table(
                con,
                "marts.customer_profile",
                customers.select("customer_id", "revenue", as_of_date=pl.lit(date(2024, 12, 31))),
            )
        result = dg.materialize([customer_base_report])
    assert result.success
    [event] = result.get_asset_materialization_events()
    return data, event.materialization.metadata, history


def test_asset_writes_the_page_and_links_it(materialized, customers):
    data, metadata, history = materialized
    page = data / "reports" / "customer_base_report.html"
    assert page.is_file()
    assert metadata["path"].value == str(page)
    assert metadata["url"].value == page.resolve().as_uri()
    assert metadata["customers"].value == customers.height
    assert metadata["segments"].value == len(SEGMENT_NAMES)
    assert metadata["clv_customers"].value == customers.height
    assert metadata["equity_snapshots"].value == history["snapshot_date"].n_unique()
    assert metadata["as_of"].value == "2024-12-31"
    text = page.read_text(encoding="utf-8")
    assert metadata["size_bytes"].value == len(text.encode("utf-8"))
    assert len(svg_elements(text)) == 5
    assert "<td>web</td>" not in text
    latest = history.filter(pl.col("snapshot_date") == pl.col("snapshot_date").max())
    assert format_idr_compact(latest["lifetime_value"].sum()) in text


# ---------------------------------------------------------------- real headless Chromium


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    if not CHROMIUM.exists() and not os.environ.get("CI"):
        pytest.skip("/usr/bin/chromium is not installed (apt-get install -y chromium)")
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_chromium_screenshot_shows_the_charts(materialized, tmp_path):
    _data, metadata, _ = materialized
    shot = tmp_path / "shot.png"
    run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", metadata["url"].value)
    assert shot.is_file() and shot.stat().st_size > 50_000
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (2000, 1280, 3)
    packed = (pixels[..., 0].astype(np.int32) << 16) | (pixels[..., 1].astype(np.int32) << 8) | pixels[..., 2]
    assert np.unique(packed).size > 500, "a blank or unstyled page has only a handful of colours"
    # The chart palette is on screen: bars of current value (blue) and of future value (amber).
    for rgb in [(0x25, 0x63, 0xEB), (0xF5, 0x9E, 0x0B)]:
        assert (np.abs(pixels.astype(int) - rgb).sum(axis=2) < 12).sum() > 2000, f"chart colour {rgb} missing"


def test_chromium_dom_holds_the_inline_svgs(materialized, tmp_path):
    _data, metadata, _ = materialized
    dom = run_chromium(tmp_path, "--dump-dom", metadata["url"].value).stdout
    assert dom.count("<svg") == 5
    assert 'aria-label="revenue concentration"' in dom
    for name in SEGMENT_NAMES:
        assert f"<td>{name}</td>" in dom
