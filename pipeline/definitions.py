"""The Dagster code location: every asset, check, job, schedule, sensor and resource of the CDP."""

import dagster as dg

from pipeline.defs.clv.assets import CLV_ASSETS
from pipeline.defs.clv.checks import CLV_CHECKS
from pipeline.defs.clv.report import customer_base_report
from pipeline.defs.dbt.assets import dbt_models
from pipeline.defs.dbt.resources import dbt_resource
from pipeline.defs.identity.assets import identity_summary
from pipeline.defs.ingest.assets import helpdesk_tickets, survey_responses, webshop
from pipeline.defs.ingest.sensors import survey_files_sensor
from pipeline.defs.jobs import nightly_job, nightly_schedule
from pipeline.defs.quality.checks import quality_checks
from pipeline.defs.segments.assets import SEGMENT_ASSETS
from pipeline.defs.serving.assets import build_serving_asset

MART_PRODUCERS = [dbt_models, *SEGMENT_ASSETS, *CLV_ASSETS, identity_summary]
# Published for BI after every mart of the run is built (and the report, so a run that failed anywhere publishes
# nothing).
cdp_serving = build_serving_asset(
    [key for asset in MART_PRODUCERS for key in asset.keys if key.path[0] == "marts"] + list(customer_base_report.keys)
)

defs = dg.Definitions(
    assets=[webshop, helpdesk_tickets, survey_responses, *MART_PRODUCERS, customer_base_report, cdp_serving],
    asset_checks=[*CLV_CHECKS, *quality_checks],
    jobs=[nightly_job],
    schedules=[nightly_schedule],
    sensors=[survey_files_sensor],
    resources={"dbt": dbt_resource},
)
