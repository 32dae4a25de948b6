"""Every dbt model is an asset and every dbt test an asset check, all built by one `dbt build` per run.

The models are not partitioned: staging models are incremental on the raw load time (macro `newly_loaded`), so a
run stages exactly what its ingest steps landed, one night or a backfilled range alike. Intermediate and mart models
are rebuilt whole.
"""

import json
import os

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from pipeline.defs.dbt.resources import dbt_project
from pipeline.lib.config import shop_calendar, warehouse_path
from pipeline.lib.dbt_translator import CdpDbtTranslator


@dbt_assets(
    manifest=dbt_project.manifest_path,
    dagster_dbt_translator=CdpDbtTranslator(),
    pool="warehouse",
    name="dbt_models",
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    # dbt runs in its own process and finds the warehouse through the environment.
    os.environ["CDP_WAREHOUSE"] = str(warehouse_path())
    dbt_vars = {"timezone": shop_calendar().timezone}
    yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()
