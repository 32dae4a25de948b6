"""The Dagster code location: every asset, check, job, schedule, sensor and resource of the CDP."""

from __future__ import annotations

import dagster as dg

from pipeline.defs.dbt.assets import dbt_models, dbt_staging
from pipeline.defs.dbt.resources import dbt_resource
from pipeline.defs.ingest.assets import helpdesk_tickets, survey_responses, webshop
from pipeline.defs.jobs import nightly_job, nightly_schedule

defs = dg.Definitions(
    assets=[webshop, helpdesk_tickets, survey_responses, dbt_staging, dbt_models],
    jobs=[nightly_job],
    schedules=[nightly_schedule],
    resources={"dbt": dbt_resource},
)
