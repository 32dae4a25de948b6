"""How concentrated revenue is: the Lorenz curve and Gini coefficient of per-customer revenue.

Plain numpy, shared by the segment base-shape verdict and the report's chart (which must not pull matplotlib into
computing segments).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LORENZ_POINTS = 201  # points of the curve kept for drawing


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
