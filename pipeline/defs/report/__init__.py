"""The customer-base report page."""

import dagster as dg

from pipeline.defs.report.assets import customer_base_report

defs = dg.Definitions(assets=[customer_base_report])
