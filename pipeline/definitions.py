"""The Dagster code location: every asset, check, job, schedule, sensor and resource of the CDP."""

import dagster as dg

from pipeline.defs import dbt, ingest, quality, report, runs
from pipeline.defs.jobs import nightly_job, nightly_schedule
from pipeline.defs.resources import resources_for
from pipeline.defs.serving.assets import build_serving_asset

# One Definitions per concern (pipeline/defs/<concern>/__init__.py), merged here with what they share.
CONCERNS = [ingest.defs, dbt.defs, report.defs, quality.defs, runs.defs]
# Published for BI after every mart of the run is built (and the report, so a run that failed anywhere publishes
# nothing).
cdp_serving = build_serving_asset(
    [key for concern in CONCERNS for asset in concern.assets or [] for key in asset.keys if key.path[0] == "marts"]
    + list(report.customer_base_report.keys)
)


# The lineage reads left to right in these groups: raw -> staging -> identity -> profile -> segments / value -> serving.
GROUPS = ("raw", "staging", "identity", "profile", "segments", "value", "serving")


def lineage_group(key: dg.AssetKey) -> str:
    """The UI group of an asset, from its layer and, for the marts, what the table is about."""
    layer, name = key.path[0], key.path[-1]
    if layer in ("raw", "staging"):
        return layer
    if layer in ("reports", "serving"):
        return "serving"
    if name in ("int_purchases", "int_customer_margins", "int_clv_inputs"):  # intermediate, built for CLV and value
        return "value"
    if name in ("customer_profile", "int_customer_traits") or name.startswith("fct_"):
        return "profile"
    if layer == "intermediate" or name.startswith("identity"):
        return "identity"
    if "segment" in name or "rfm" in name or "base_shape" in name:
        return "segments"
    return "value"


def _ui_spec(spec: dg.AssetSpec) -> dg.AssetSpec:
    """The lineage group, and kinds: Python assets that declare none work on DuckDB."""
    return spec.replace_attributes(group_name=lineage_group(spec.key), kinds=spec.kinds or {"python", "duckdb"})


# Every run executes its steps one after another in one process, the only writer of the DuckDB file: the nightly
# job, a backfill launched from the UI (one run over the whole range: the raw assets have a single-run backfill
# policy, the models and marts are rebuilt once; the UI backfills any selection through the nightly job, see
# pipeline/defs/jobs.py) and runs of any asset selection alike. Every asset carries the single-run policy.
def _definitions() -> dg.Definitions:
    # Built inside a function: Dagster loads a code location from the one Definitions object at module scope.
    shared = dg.Definitions(
        assets=[cdp_serving],
        jobs=[nightly_job],
        schedules=[nightly_schedule],
        resources=resources_for(),
        executor=dg.in_process_executor,
    )
    merged = dg.Definitions.merge(*CONCERNS, shared)
    return dg.Definitions(
        assets=[asset.with_attributes(backfill_policy=dg.BackfillPolicy.single_run()) for asset in merged.assets],
        asset_checks=merged.asset_checks,
        jobs=merged.jobs,
        schedules=merged.schedules,
        sensors=merged.sensors,
        resources=merged.resources,
        executor=merged.executor,
    ).map_resolved_asset_specs(func=_ui_spec)


defs = _definitions()
