"""History assets: a mart table kept as one dated snapshot per run date (for trends and migrations)."""

import dagster as dg

from pipeline.defs.resources import WarehouseResource
from pipeline.lib.warehouse import read_frame, replace_snapshot


def snapshot_history_asset(source: str, history: str, group_name: str) -> dg.AssetsDefinition:
    """An asset copying `marts.<source>` into `marts.<history>` as the snapshot of its as_of_date (re-runs replace
    it)."""

    @dg.asset(
        key=["marts", history],
        group_name=group_name,
        deps=[dg.AssetKey(["marts", source])],
        pool="warehouse",
        description=f"Dated snapshots of marts.{source}, one per run date (a re-run replaces its date).",
    )
    def _snapshot(warehouse: WarehouseResource) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            current = read_frame(con, f"select * from marts.{source}")
            run_date = current["as_of_date"].max()
            if run_date is None:
                raise ValueError(f"marts.{source} is empty: no as_of_date to snapshot")
            snapshots = replace_snapshot(con, f"marts.{history}", current, run_date)
        return dg.MaterializeResult(
            metadata={
                "rows": current.height,
                "snapshot_date": str(run_date),
                "snapshots": snapshots,
            }
        )

    return _snapshot
