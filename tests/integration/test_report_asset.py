"""The customer-base report asset on a real warehouse, and a real headless Chromium rendering of the page
(screenshot + DOM)."""

from __future__ import annotations

import os
import subprocess
from datetime import date
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from PIL import Image

from pipeline.defs.clv.report import customer_base_report
from pipeline.lib.report import format_idr_compact
from pipeline.lib.warehouse import connect, replace_table
from tests.support.report_inputs import (
    SEGMENT_NAMES,
    svg_elements,
    synthetic_history,
)

CHROMIUM = Path("/usr/bin/chromium")


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


@pytest.mark.browser
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


@pytest.mark.browser
def test_chromium_dom_holds_the_inline_svgs(materialized, tmp_path):
    _data, metadata, _ = materialized
    dom = run_chromium(tmp_path, "--dump-dom", metadata["url"].value).stdout
    assert dom.count("<svg") == 5
    assert 'aria-label="revenue concentration"' in dom
    for name in SEGMENT_NAMES:
        assert f"<td>{name}</td>" in dom
