"""Customer value and customer equity, with a snapshot per run date."""

import dagster as dg

from pipeline.defs.equity.assets import EQUITY_ASSETS

defs = dg.Definitions(assets=EQUITY_ASSETS)
