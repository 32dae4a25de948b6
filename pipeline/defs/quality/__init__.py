"""Every data-quality check written in Python, in one place: the generic checks of the raw sources and the published
marts (checks.py: GX suites, freshness, volume, row count) and the checks of the CLV models (clv.py: fit health,
backtest ran). dbt's tests become asset checks of the dbt assets (pipeline/defs/dbt)."""

import dagster as dg

from pipeline.defs.quality.checks import quality_checks
from pipeline.defs.quality.clv import CLV_CHECKS

defs = dg.Definitions(asset_checks=[*quality_checks, *CLV_CHECKS])
