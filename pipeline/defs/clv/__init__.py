"""Checks on the CLV models (dbt Python models in dbt_project/models/marts/value): fit health, backtest ran."""

import dagster as dg

from pipeline.defs.clv.checks import CLV_CHECKS

defs = dg.Definitions(asset_checks=CLV_CHECKS)
