"""The serving asset: after the marts are rebuilt, publish them to the read-only BI copy (pipeline/lib/serving.py)."""

from collections.abc import Sequence

import dagster as dg

from pipeline.defs.resources import SettingsResource, WarehouseResource
from pipeline.lib import serving

# Every marts asset the serving copy must wait for; the lead extends this list (or passes its own to
# build_serving_asset) as segment / CLV / equity assets land. Tables are published whatever this list says:
# every table present in the published schemas is copied.
MART_DEPS: list[dg.AssetKey] = [dg.AssetKey(["marts", "customer_profile"])]


def build_serving_asset(deps: Sequence[dg.AssetKey] = MART_DEPS) -> dg.AssetsDefinition:
    @dg.asset(
        key=["serving", "cdp_serving"],
        kinds={"duckdb", "parquet"},
        deps=list(deps),
        pool="warehouse",
        description="Read-only copy of the marts for BI tools: <data_dir>/serving/cdp.duckdb and "
        "<data_dir>/serving/parquet/<table>.parquet, swapped in atomically after a successful run.",
    )
    def cdp_serving(
        context: dg.AssetExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        # Publish only what a successful run built: a failed step anywhere earlier in the run (even one this asset
        # does not depend on) keeps the last good copy in place.
        failed = context.instance.all_logs(context.run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        if failed:
            raise dg.Failure(
                f"not publishing: step(s) {sorted({e.step_key for e in failed})} failed in this run; "
                "the last good serving copy stays in place"
            )
        cdp = settings.get()
        options = serving.ServingOptions.from_config(cdp.serving)
        result = serving.publish(
            warehouse.file(),
            serving.serving_dir(cdp.data_dir),
            options,
            memory_limit=cdp.duckdb.memory_limit,
            temp_directory=cdp.duckdb_temp_directory(warehouse.file()),
        )
        context.log.info(f"published {len(result.tables)} tables ({result.rows} rows) to {result.serving_file}")
        return dg.MaterializeResult(
            metadata={
                "tables_published": dg.MetadataValue.json(result.tables),
                "table_count": dg.MetadataValue.int(len(result.tables)),
                "rows": dg.MetadataValue.int(result.rows),
                "path": dg.MetadataValue.path(str(result.serving_file)),
                "parquet_dir": dg.MetadataValue.path(str(result.parquet_dir)),
                "pseudonymised": dg.MetadataValue.bool(result.pseudonymised),
            }
        )

    return cdp_serving


cdp_serving = build_serving_asset()
