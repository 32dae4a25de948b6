"""Raw data: one asset per source and the sensor that notices new survey files."""

import dagster as dg

from pipeline.defs.ingest.assets import helpdesk_tickets, survey_responses, webshop
from pipeline.defs.ingest.sensors import survey_files_sensor

defs = dg.Definitions(assets=[webshop, helpdesk_tickets, survey_responses], sensors=[survey_files_sensor])
