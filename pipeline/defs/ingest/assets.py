"""Ingestion assets, one per source, landing raw rows (and quarantined ones) for a window of daily partitions.

Backfills run as a single run over the whole range (BackfillPolicy.single_run) because each source is read
set-wise by DuckDB; re-running a partition replaces that partition's rows.
"""


import dagster as dg

from pipeline.lib import ingest
from pipeline.lib.config import data_dir, section
from pipeline.lib.partitions import daily_partitions, window_dates
from pipeline.lib.warehouse import connect

RAW_GROUP = "raw"
_COMMON = dict(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="warehouse",
)


def _source(name: str) -> dict:
    cfg = dict(section("sources").get(name) or {})
    if "location" in cfg:
        cfg["location"] = str(cfg["location"]).format(data_dir=data_dir())
    return cfg


def _result_metadata(results: list[ingest.LoadResult]) -> dict:
    metadata: dict = {}
    for result in results:
        metadata.update(result.as_metadata())
    return metadata


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["raw", name], group_name=RAW_GROUP, description=f"Webshop `{name.split('_', 1)[1]}` rows as delivered "
                     "(typed), one version per updated_at, partitioned by the date of updated_at.")
        for name in ("webshop_customers", "webshop_orders", "webshop_order_items")
    ],
    **_COMMON,
)
def webshop(context: dg.AssetExecutionContext):
    """Customers, orders and order lines from the webshop database."""
    window = window_dates(context)
    cfg = _source("webshop")
    with connect() as con:
        ingest.prepare_session(con)
        staged = ingest.stage_webshop_sqlite(con, cfg["location"])
        customers = ingest.land(con, ingest.WEBSHOP_CUSTOMERS, staged["webshop_customers"], window, cfg["kind"])
        orders = ingest.land(con, ingest.WEBSHOP_ORDERS, staged["webshop_orders"], window, cfg["kind"])
        items = ingest.land(con, ingest.WEBSHOP_ORDER_ITEMS,
                            ingest.stage_order_items(con, "webshop_src.order_items"), window, cfg["kind"])
    for result in (customers, orders, items):
        yield dg.MaterializeResult(asset_key=["raw", result.table], metadata=result.as_metadata())


@dg.asset(key=["raw", "helpdesk_tickets"], group_name=RAW_GROUP, **_COMMON)
def helpdesk_tickets(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Support tickets from the helpdesk (JSONL exports in the demo), partitioned by the date of updated_at."""
    window = window_dates(context)
    cfg = _source("helpdesk")
    with connect() as con:
        ingest.prepare_session(con)
        files = ingest.files_in_window(cfg["location"], window)
        result = ingest.land(con, ingest.HELPDESK_TICKETS, ingest.stage_tickets_jsonl(con, files), window, cfg["kind"])
    return dg.MaterializeResult(metadata={**result.as_metadata(), "files_read": len(files)})


@dg.asset(key=["raw", "survey_responses"], group_name=RAW_GROUP, **_COMMON)
def survey_responses(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Survey responses (NPS/CSAT) from export files (CSV, JSONL or Parquet), partitioned by export date."""
    window = window_dates(context)
    cfg = _source("survey")
    with connect() as con:
        ingest.prepare_session(con)
        files = ingest.files_in_window(cfg["location"], window)
        result = ingest.land(con, ingest.SURVEY_RESPONSES, ingest.stage_survey_files(con, files), window, cfg["kind"])
    return dg.MaterializeResult(metadata={**result.as_metadata(), "files_read": len(files)})
