"""The Dagster code location: every asset, check, job, schedule, sensor and resource of the CDP."""

import dagster as dg

from pipeline.defs.clv.assets import CLV_ASSETS
from pipeline.defs.clv.checks import CLV_CHECKS
from pipeline.defs.dbt.assets import dbt_models
from pipeline.defs.dbt.resources import dbt_resource
from pipeline.defs.equity.assets import EQUITY_ASSETS
from pipeline.defs.identity.assets import identity_summary
from pipeline.defs.ingest.assets import helpdesk_tickets, survey_responses, webshop
from pipeline.defs.ingest.sensors import survey_files_sensor
from pipeline.defs.jobs import nightly_job, nightly_schedule
from pipeline.defs.quality.checks import quality_checks
from pipeline.defs.report.assets import customer_base_report
from pipeline.defs.resources import resources_for
from pipeline.defs.segments.assets import SEGMENT_ASSETS
from pipeline.defs.serving.assets import build_serving_asset

MART_PRODUCERS = [dbt_models, *SEGMENT_ASSETS, *CLV_ASSETS, *EQUITY_ASSETS, identity_summary]
# Published for BI after every mart of the run is built (and the report, so a run that failed anywhere publishes
# nothing).
cdp_serving = build_serving_asset(
    [key for asset in MART_PRODUCERS for key in asset.keys if key.path[0] == "marts"] + list(customer_base_report.keys)
)

ASSETS = [webshop, helpdesk_tickets, survey_responses, *MART_PRODUCERS, customer_base_report, cdp_serving]


# The lineage reads left to right in these groups: raw -> staging -> identity -> profile -> segments / value -> serving.
GROUPS = ("raw", "staging", "identity", "profile", "segments", "value", "serving")


def lineage_group(key: dg.AssetKey) -> str:
    """The UI group of an asset, from its layer and, for the marts, what the table is about."""
    layer, name = key.path[0], key.path[-1]
    if layer in ("raw", "staging"):
        return layer
    if layer in ("reports", "serving"):
        return "serving"
    if layer == "intermediate" or name.startswith("identity"):
        return "identity"
    if name == "customer_profile" or name.startswith("fct_"):
        return "profile"
    if "segment" in name or "rfm" in name or "base_shape" in name:
        return "segments"
    return "value"


def _ui_spec(spec: dg.AssetSpec) -> dg.AssetSpec:
    """The lineage group, and kinds: Python assets that declare none work on DuckDB."""
    return spec.replace_attributes(group_name=lineage_group(spec.key), kinds=spec.kinds or {"python", "duckdb"})


# Every run executes its steps one after another in one process, the only writer of the DuckDB file: the nightly
# job, a backfill of the job launched from the UI (one run over the whole range: the raw assets have a single-run
# backfill policy, the models and marts are rebuilt once) and runs of any asset selection alike. Every asset carries
# the single-run policy, so `dagster asset materialize --select '*' --partition-range A...B` is one run too.
defs = dg.Definitions(
    assets=[asset.with_attributes(backfill_policy=dg.BackfillPolicy.single_run()) for asset in ASSETS],
    asset_checks=[*CLV_CHECKS, *quality_checks],
    jobs=[nightly_job],
    schedules=[nightly_schedule],
    sensors=[survey_files_sensor],
    resources={"dbt": dbt_resource, **resources_for()},
    executor=dg.in_process_executor,
).map_resolved_asset_specs(func=_ui_spec)
