"""Every dbt model is an asset and every dbt test an asset check, all built by one `dbt build` per run.

The models are not partitioned: staging models are incremental on the raw load time (macro `newly_loaded`), so a
run stages exactly what its ingest steps landed, one night or a backfilled range alike. Intermediate and mart models
are rebuilt whole.
"""

import json

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from pipeline.defs.dbt.resources import dbt_project
from pipeline.defs.dbt.translator import CdpDbtTranslator
from pipeline.defs.resources import SettingsResource, WarehouseResource
from pipeline.defs.table_metadata import table_metadata


@dbt_assets(
    manifest=dbt_project.manifest_path,
    dagster_dbt_translator=CdpDbtTranslator(),
    pool="warehouse",
    name="dbt_models",
)
def dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: SettingsResource, warehouse: WarehouseResource
):
    # dbt runs in its own process: the warehouse path, DuckDB limits and model settings go in as vars.
    dbt_vars = settings.get().dbt_vars(warehouse.file())
    invocation = dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context, raise_on_error=False)
    # Collected first: the dbt process holds the warehouse until it ends, then every built table gets its row count
    # and DuckDB's column types and descriptions in the UI.
    events = list(invocation.stream())
    with warehouse.connect(read_only=True) as con:
        for event in events:
            if isinstance(event, dg.Output | dg.AssetMaterialization):
                key = (
                    event.asset_key
                    if isinstance(event, dg.AssetMaterialization)
                    else context.asset_key_for_output(event.output_name)
                )
                event = event.with_metadata({**event.metadata, **table_metadata(con, key)})
            yield event
    if not invocation.is_successful():
        raise invocation.get_error()
