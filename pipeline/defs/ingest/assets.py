"""Ingestion assets, one per source, landing raw rows (and quarantined ones) for a window of daily partitions.

The source kind comes from `sources:` in pipeline/config/cdp.yaml (pipeline/lib/sources/* do the extraction).
A shop without a helpdesk or surveys leaves that source out (or sets `enabled: false`): its asset then lands an empty,
typed raw table, so dbt staging and everything downstream run unchanged.
Backfills run as a single run over the whole range (BackfillPolicy.single_run) because each source is read
set-wise by DuckDB; re-running a partition replaces that partition's rows. Dagster (1.13) still records one
materialization per asset and day of the range, each in its own SQLite transactions with the default instance
storage: on a 3-year first build these events, not the landing SQL, are most of the raw steps' time.

Step names sort before the unpartitioned serving step (`raw__webshop`, not `webshop`): Dagster 1.13 takes a run's
stored partition subset from the last asset step of the plan in key order and plans every asset check of the run
once per partition of that subset, so a 3-year run of the whole graph with a partitioned last step wrote 244k check
rows (~95 s) before its first step; with the unpartitioned serving step last it plans one per check
(tests/integration/test_run_planning.py).
"""

from datetime import date

import dagster as dg

from pipeline.defs.partitions import daily_partitions, window_dates
from pipeline.defs.resources import SettingsResource, WarehouseResource
from pipeline.defs.table_metadata import table_metadata
from pipeline.lib import doctor, ingest
from pipeline.lib.identity import IdentityRules
from pipeline.lib.sources import helpdesk_api, sql_orders, survey_files
from pipeline.lib.sources.registry import table, tables_of

RAW_GROUP = "raw"
_COMMON = dict(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="warehouse",
)


def _at_frontier(context: dg.AssetExecutionContext) -> bool:
    """The run reaches the newest complete day (the nightly run): pull incrementally and judge future rows."""
    return context.partition_key_range.end == daily_partitions.get_last_partition_key()


def _land_window(window: tuple[date, date], pulled: tuple[date, date] | None) -> tuple[date, date]:
    """The run's window, widened back to the first day an incremental pull re-read (it delivered those days whole)."""
    return (min(window[0], pulled[0]), window[1]) if pulled else window


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["raw", table.name], group_name=RAW_GROUP, description=table.description)
        for table in tables_of("webshop")
    ],
    name="raw__webshop",
    **_COMMON,
)
def webshop(context: dg.AssetExecutionContext, settings: SettingsResource, warehouse: WarehouseResource):
    """Customers, orders and order lines from the webshop database (SQLite or PostgreSQL).

    The nightly run pulls what changed since the high-water mark minus the lookback (late and updated orders);
    backfills pull their window."""
    window = window_dates(context)
    cdp = settings.get()
    calendar, limits, rules = cdp.shop_calendar(), cdp.contract_limits(), cdp.identity_rules()
    cfg = cdp.source_config("webshop")
    if cfg is None:
        raise ValueError("sources.webshop is not configured: the pipeline needs the webshop's orders")
    source = sql_orders.SqlSource.from_config("webshop", cfg)
    frontier = _at_frontier(context)
    with warehouse.connect() as con:
        ingest.prepare_session(con, calendar.timezone)
        pulled = sql_orders.extract(con, source, window=window, frontier=frontier)
        results = []
        for table in tables_of("webshop"):
            extract = pulled[table.source_table]
            relation = ingest.stage_order_items(con, extract.relation) if table.parent else extract.relation
            window_of = pulled["orders"].window if table.parent else extract.window
            results.append(
                ingest.land(
                    con,
                    ingest.spec(table.name, limits),
                    relation,
                    _land_window(window, window_of),
                    source.kind,
                    frontier=frontier,
                    identity_rules=rules,
                )
            )
            con.execute(f"drop table {extract.relation}")  # landed: free the pulled copy before the next table
        sql_orders.save_marks(con, source, pulled)
        older = doctor.unloaded_history(con, source, window[0])
        tables = {result.table: table_metadata(con, dg.AssetKey(["raw", result.table])) for result in results}
    history = {}
    if older:  # e.g. a first run whose window starts after the shop's first day
        context.log.warning(doctor.unloaded_history_warning(older, window[0]))
        history = {"older_history_not_loaded_from": str(older)}
    for result in results:
        metadata = {**result.as_metadata(), **history, **tables[result.table]}
        yield dg.MaterializeResult(asset_key=["raw", result.table], metadata=metadata)


@dg.asset(
    key=["raw", "helpdesk_tickets"], group_name=RAW_GROUP, description=table("helpdesk_tickets").description, **_COMMON
)
def helpdesk_tickets(
    context: dg.AssetExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Support tickets from the helpdesk REST API or its JSONL exports, partitioned by the date of updated_at."""

    def land_configured(con, cfg, spec, window, frontier, rules):
        if cfg.get("kind") != "http":
            return _land_exports(con, "helpdesk", cfg, spec, window, ingest.stage_tickets_jsonl, frontier, rules)
        source = helpdesk_api.HelpdeskSource.from_config("helpdesk", cfg)
        pulled = helpdesk_api.extract(con, source, window=window, frontier=frontier)
        landed_window = _land_window(window, pulled.window)
        result = ingest.land(con, spec, pulled.relation, landed_window, "http", frontier=frontier, identity_rules=rules)
        helpdesk_api.save_marks(con, source, pulled)
        return result, {"pages_fetched": pulled.pages}

    return _land_single_table(context, settings, warehouse, "helpdesk", "helpdesk_tickets", land_configured)


@dg.asset(
    key=["raw", "survey_responses"], group_name=RAW_GROUP, description=table("survey_responses").description, **_COMMON
)
def survey_responses(
    context: dg.AssetExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Survey responses (NPS/CSAT) from export files (CSV, JSONL or Parquet), partitioned by export date."""

    def land_configured(con, cfg, spec, window, frontier, rules):
        return _land_exports(con, "survey", cfg, spec, window, ingest.stage_survey_files, frontier, rules)

    return _land_single_table(context, settings, warehouse, "survey", "survey_responses", land_configured)


def _land_single_table(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    warehouse: WarehouseResource,
    source: str,
    raw_table: str,
    land_configured,
) -> dg.MaterializeResult:
    """Land one raw table of a source for the run's window: `land_configured(con, cfg, spec, window, frontier, rules)`
    reads the configured source; a shop without the source gets an empty, typed raw table."""
    window = window_dates(context)
    cdp = settings.get()
    rules, cfg = cdp.identity_rules(), cdp.source_config(source)
    spec = ingest.spec(raw_table, cdp.contract_limits())
    with warehouse.connect() as con:
        ingest.prepare_session(con, cdp.shop_calendar().timezone)
        if cfg is None:
            result = ingest.land(con, spec, ingest.stage_nothing(con, spec), window, "none", rules)
            extra = {"source": "not configured"}
        else:
            result, extra = land_configured(con, cfg, spec, window, _at_frontier(context), rules)
        extra.update(table_metadata(con, dg.AssetKey(["raw", raw_table])))
    return dg.MaterializeResult(metadata={**result.as_metadata(), **extra})


def _land_exports(
    con,
    name: str,
    cfg: dict,
    spec: ingest.TableSpec,
    window: tuple[date, date],
    stage,
    frontier: bool,
    rules: IdentityRules,
) -> tuple[ingest.LoadResult, dict]:
    """Land the export files of the window, plus the days of exports that were still being written when last read
    (so a completed file is read again whole); report files read, empty files skipped, files still being written."""
    earlier = survey_files.earliest_partial_day(con, name)
    window = (min(window[0], earlier), window[1]) if earlier else window
    with ingest.export_files(_files_in_window(name, cfg, window, con)) as (files, empty):
        staged = stage(con, files, f"{name} files")
        result = ingest.land(con, spec, staged, window, "files", frontier=frontier, identity_rules=rules)
    survey_files.record_partial_files(con, name, window, files)
    partial = [f.path for f in files if f.partial_line is not None]
    return result, {
        "files_read": len(files),
        "empty_files_skipped": len(empty),
        "files_with_partial_last_line": len(partial),
        **({"partial_files": dg.MetadataValue.json(partial)} if partial else {}),
    }


def _files_in_window(name: str, cfg: dict, window, con) -> list[str]:
    """Export files of the source (local folder/glob or object storage) whose name date falls in the window."""
    listing = survey_files.list_files(con, survey_files.SurveySource.from_config(name, cfg))
    return ingest.files_in_window([f.path for f in listing], window)
