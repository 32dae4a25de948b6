"""The identity summary of each run (the identity graph itself is built by dbt)."""

import dagster as dg

from pipeline.defs.identity.assets import identity_summary

defs = dg.Definitions(assets=[identity_summary])
