"""Customer lifetime value: the fitted model, per-customer scores, the backtest, and the fit-health check."""

import dagster as dg

from pipeline.defs.clv.assets import CLV_ASSETS
from pipeline.defs.clv.checks import CLV_CHECKS

defs = dg.Definitions(assets=CLV_ASSETS, asset_checks=CLV_CHECKS)
