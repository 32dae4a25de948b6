"""Data-quality checks on the raw tables and the published marts (GX suites, freshness, volume, row count)."""

import dagster as dg

from pipeline.defs.quality.checks import quality_checks

defs = dg.Definitions(asset_checks=quality_checks)
