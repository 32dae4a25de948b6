"""Every dbt model is an asset and every dbt test an asset check.

Staging models are incremental and share the raw assets' daily partitions: a run passes its partition window to dbt
as vars, and a backfill is one dbt run over the whole range. Intermediate and mart models are rebuilt whole.
"""


import json
import os

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from pipeline.defs.dbt.resources import dbt_project
from pipeline.lib.config import warehouse_path
from pipeline.lib.dbt_translator import CdpDbtTranslator
from pipeline.lib.partitions import daily_partitions, window_dates

translator = CdpDbtTranslator()
STAGING = "tag:staging"  # the incremental, partitioned layer


def _build(context: dg.AssetExecutionContext, dbt: DbtCliResource, extra_args: list[str]):
    # dbt runs in its own process and finds the warehouse through the environment.
    os.environ["CDP_WAREHOUSE"] = str(warehouse_path())
    yield from dbt.cli(["build", *extra_args], context=context).stream()


@dbt_assets(
    manifest=dbt_project.manifest_path,
    select=STAGING,
    dagster_dbt_translator=translator,
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="warehouse",
    name="dbt_staging",
)
def dbt_staging(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    start, end = window_dates(context)
    yield from _build(context, dbt, ["--vars", json.dumps({"min_date": str(start), "max_date": str(end)})])


@dbt_assets(
    manifest=dbt_project.manifest_path,
    exclude=STAGING,
    dagster_dbt_translator=translator,
    pool="warehouse",
    name="dbt_models",
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    yield from _build(context, dbt, [])
