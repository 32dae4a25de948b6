"""Synthetic inputs for the customer-base report: customers with segment, revenue and CLV, equity history."""

from __future__ import annotations

import re
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

# Segment codes as the marts hold them (the report shows their human names).
SEGMENT_CODES = ["advocate", "loyal", "high_value", "lapsed", "promo_driven", "new"]


def synthetic_customers(n: int, seed: int) -> pl.DataFrame:
    """One row per customer: id, segment, revenue (lognormal, some zero) and CLV."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "customer_id": [f"C{i:010d}" for i in range(n)],
            "segment": rng.choice(SEGMENT_CODES, n, p=[0.08, 0.17, 0.2, 0.15, 0.25, 0.15]),
            "revenue": rng.lognormal(13, 1.3, n) * (rng.random(n) > 0.1),
            "clv": rng.lognormal(13.5, 1.1, n),
        }
    )


def synthetic_history(snapshots: int) -> pl.DataFrame:
    """Monthly equity snapshots per segment (long format, as the history mart has them)."""
    dates = [date(2024, 1, 31) + timedelta(days=30 * i) for i in range(snapshots)]
    frame = pl.DataFrame({"snapshot_date": dates}).join(pl.DataFrame({"dimension_value": SEGMENT_CODES}), how="cross")
    step = pl.int_range(pl.len()).cast(pl.Float64)
    return frame.with_columns(
        dimension=pl.lit("segment"),
        current_value=1e8 + 5e6 * step,
        future_value=2e8 + 3e6 * step,
    ).with_columns(lifetime_value=pl.col("current_value") + pl.col("future_value"))


@pytest.fixture(scope="module")
def customers() -> pl.DataFrame:
    return synthetic_customers(3000, seed=11)


def svg_elements(page: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", page, flags=re.DOTALL)
