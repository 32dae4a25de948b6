"""Ingestion assets, one per source, landing raw rows (and quarantined ones) for a window of daily partitions.

The source kind comes from `sources:` in pipeline/config/cdp.yaml (pipeline/lib/sources/* do the extraction).
A shop without a helpdesk or surveys leaves that source out (or sets `enabled: false`): its asset then lands an empty,
typed raw table, so dbt staging and everything downstream run unchanged.
Backfills run as a single run over the whole range (BackfillPolicy.single_run) because each source is read
set-wise by DuckDB; re-running a partition replaces that partition's rows.
"""

import dagster as dg

from pipeline.lib import ingest
from pipeline.lib.config import shop_calendar, source_config
from pipeline.lib.partitions import daily_partitions, window_dates
from pipeline.lib.sources import helpdesk_api, sql_orders, survey_files
from pipeline.lib.warehouse import connect

RAW_GROUP = "raw"
_COMMON = dict(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="warehouse",
)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["raw", name], group_name=RAW_GROUP, description=f"Webshop `{name.split('_', 1)[1]}` rows as "
                     "delivered (typed), one version per updated_at, partitioned by the date of updated_at.")
        for name in ("webshop_customers", "webshop_orders", "webshop_order_items")
    ],
    **_COMMON,
)
def webshop(context: dg.AssetExecutionContext):
    """Customers, orders and order lines from the webshop database (SQLite or PostgreSQL)."""
    window = window_dates(context)
    calendar = shop_calendar()
    cfg = source_config("webshop")
    if cfg is None:
        raise ValueError("sources.webshop is not configured: the pipeline needs the webshop's orders")
    source = sql_orders.SqlSource.from_config("webshop", cfg)
    with connect() as con:
        ingest.prepare_session(con, calendar.timezone)
        pulled = sql_orders.extract(con, source, window=window)
        customers = ingest.land(con, ingest.WEBSHOP_CUSTOMERS, pulled["customers"].relation, window, source.kind)
        orders = ingest.land(con, ingest.webshop_orders(calendar.currency), pulled["orders"].relation, window,
                             source.kind)
        items = ingest.land(con, ingest.WEBSHOP_ORDER_ITEMS,
                            ingest.stage_order_items(con, pulled["order_items"].relation), window, source.kind)
        sql_orders.save_marks(con, source, pulled)
    for result in (customers, orders, items):
        yield dg.MaterializeResult(asset_key=["raw", result.table], metadata=result.as_metadata())


@dg.asset(key=["raw", "helpdesk_tickets"], group_name=RAW_GROUP, **_COMMON)
def helpdesk_tickets(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Support tickets from the helpdesk REST API or its JSONL exports, partitioned by the date of updated_at."""
    window = window_dates(context)
    cfg = source_config("helpdesk")
    with connect() as con:
        ingest.prepare_session(con, shop_calendar().timezone)
        if cfg is None:
            result = ingest.land(con, ingest.HELPDESK_TICKETS, ingest.stage_nothing(con, ingest.HELPDESK_TICKETS),
                                 window, "none")
            extra = {"source": "not configured"}
        elif cfg.get("kind") == "http":
            source = helpdesk_api.HelpdeskSource.from_config("helpdesk", cfg)
            pulled = helpdesk_api.extract(con, source, window=window)
            result = ingest.land(con, ingest.HELPDESK_TICKETS, pulled.relation, window, "http")
            helpdesk_api.save_marks(con, source, pulled)
            extra = {"pages_fetched": pulled.pages}
        else:
            files = _files_in_window("helpdesk", cfg, window, con)
            result = ingest.land(con, ingest.HELPDESK_TICKETS, ingest.stage_tickets_jsonl(con, files), window, "files")
            extra = {"files_read": len(files)}
    return dg.MaterializeResult(metadata={**result.as_metadata(), **extra})


@dg.asset(key=["raw", "survey_responses"], group_name=RAW_GROUP, **_COMMON)
def survey_responses(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Survey responses (NPS/CSAT) from export files (CSV, JSONL or Parquet), partitioned by export date."""
    window = window_dates(context)
    cfg = source_config("survey")
    with connect() as con:
        ingest.prepare_session(con, shop_calendar().timezone)
        if cfg is None:
            result = ingest.land(con, ingest.SURVEY_RESPONSES, ingest.stage_nothing(con, ingest.SURVEY_RESPONSES),
                                 window, "none")
            extra = {"source": "not configured"}
        else:
            files = _files_in_window("survey", cfg, window, con)
            result = ingest.land(con, ingest.SURVEY_RESPONSES, ingest.stage_survey_files(con, files), window, "files")
            extra = {"files_read": len(files)}
    return dg.MaterializeResult(metadata={**result.as_metadata(), **extra})


def _files_in_window(name: str, cfg: dict, window, con) -> list[str]:
    """Export files of the source (local folder/glob or object storage) whose name date falls in the window."""
    listing = survey_files.list_files(con, survey_files.SurveySource.from_config(name, cfg))
    return ingest.files_in_window([f.path for f in listing], window)
