"""The customer-base report asset on a real warehouse in each configured language, and a real headless Chromium
rendering of the page (screenshot + DOM)."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import date
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
import yaml
from PIL import Image

from pipeline.defs.report.assets import customer_base_report
from pipeline.defs.resources import resources_for
from pipeline.lib.report import LANGUAGES, Numbers, ReportStyle, report_texts
from pipeline.lib.warehouse import connect, replace_table
from pipeline.settings import DEFAULT_CONFIG
from tests.support.report_inputs import (
    SEGMENT_CODES,
    svg_elements,
    synthetic_history,
)

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module", params=LANGUAGES)
def materialized(request, tmp_path_factory, customers):
    """The asset run against a real DuckDB warehouse holding the five marts tables, in each configured language."""
    language = request.param
    data = tmp_path_factory.mktemp(f"cdp_data_{language}")
    config = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    config["report"] = {"language": language}
    config_file = data / "cdp.yaml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
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
        env.setenv("CDP_CONFIG", str(config_file))
        env.delenv("CDP_WAREHOUSE", raising=False)
        with connect(data / "warehouse.duckdb") as con:
            replace_table(con, "marts.customer_segments", customers.select("customer_id", primary_segment="segment"))
            replace_table(con, "marts.customer_clv", customers.select("customer_id", "clv"))
            replace_table(con, "marts.customer_equity", pl.concat([equity, other_dimension]))
            history_rows = history.select(
                "snapshot_date", "dimension", "dimension_value", "current_value", "future_value", "lifetime_value"
            )
            replace_table(
                con,
                "marts.customer_equity_history",
                pl.concat(
                    [
                        history_rows,
                        history_rows.head(1).with_columns(dimension=pl.lit("channel"), dimension_value=pl.lit("web")),
                    ]
                ),
            )
            replace_table(
                con,
                "marts.customer_profile",
                customers.select("customer_id", "revenue", as_of_date=pl.lit(date(2024, 12, 31))),
            )
        result = dg.materialize([customer_base_report], resources=resources_for())
    assert result.success
    [event] = result.get_asset_materialization_events()
    return data, event.materialization.metadata, history, language


def test_asset_writes_the_page_and_links_it(materialized, customers):
    data, metadata, history, language = materialized
    numbers = Numbers(ReportStyle(language=language, currency="IDR", locale="id_ID"))
    page = data / "reports" / "customer_base_report.html"
    assert page.is_file()
    assert metadata["path"].value == str(page)
    assert metadata["url"].value == page.resolve().as_uri()
    assert metadata["customers"].value == customers.height
    assert metadata["segments"].value == len(SEGMENT_CODES)
    assert metadata["clv_customers"].value == customers.height
    assert metadata["equity_snapshots"].value == history["snapshot_date"].n_unique()
    assert metadata["as_of"].value == "2024-12-31"
    text = page.read_text(encoding="utf-8")
    assert metadata["size_bytes"].value == len(text.encode("utf-8"))
    assert len(svg_elements(text)) == 5
    assert "<td>web</td>" not in text
    latest = history.filter(pl.col("snapshot_date") == pl.col("snapshot_date").max())
    assert numbers.money_compact(latest["lifetime_value"].sum()) in text
    assert metadata["language"].value == language
    assert f'<html lang="{language}">' in text


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
    _data, metadata, _, _language = materialized
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
def test_chromium_dom_holds_the_inline_svgs_in_the_configured_language(materialized, tmp_path):
    _data, metadata, _, language = materialized
    texts = report_texts()[language]
    dom = run_chromium(tmp_path, "--dump-dom", metadata["url"].value).stdout
    assert dom.count("<svg") == 5
    assert 'aria-label="revenue concentration"' in dom
    for code in SEGMENT_CODES:
        assert f"<td>{texts['segment_names'][code]}</td>" in dom
    for key in ("title", "segments_title", "equity_title", "history_title", "clv_title", "concentration_title"):
        assert texts[key] in dom
    # Amounts on the language's own scale: miliar is "M" in Indonesian, "B" in English.
    scale = re.compile(r"Rp[\d.,]+(\u00a0|&nbsp;)(rb|jt|M|T)\b" if language == "id" else r"IDR[\d.,]+[KMBT]\b")
    assert scale.search(dom)
