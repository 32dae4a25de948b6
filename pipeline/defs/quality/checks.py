"""Asset checks on the raw sources and the customer marts (validation logic: pipeline.lib.expectations).

- `expectations`: the table's GX suite (expectations/<schema>_<table>.json). Critical failures fail the check with
  ERROR severity; on raw sources and marts.customer_profile the check is blocking, so downstream assets of a run do
  not materialize from bad data. Failed warning-level expectations fail the check with WARN severity only. On
  marts.customer_profile the per-row expectations check the rows the last dbt run recomputed (int_customer_traits):
  the day's changes on a nightly run, every row on a full build; row count and uniqueness cover the whole table.
- `freshness` (raw): the run's partition window delivered rows. `volume_anomaly` (raw): the day's rows against the
  trailing average. `row_count_drop` (all): the table lost too many rows since the previous check. All three WARN.
The raw assets are daily partitioned but these checks are not: in a partitioned run they still run once, and scope
the raw `expectations`, freshness and volume checks to the run's partition window (a bad day is not diluted by good
history); run on their own they look at the whole table / latest partition.
Each check opens its own short-lived read-only connection: DuckDB refuses a read-only connection while the same
process holds a read-write one, and assets close theirs when they finish.
"""

from datetime import date, timedelta

import dagster as dg
import duckdb

from pipeline.defs.resources import SettingsResource, WarehouseResource
from pipeline.lib import ingest
from pipeline.lib.expectations import (
    DEFAULT_SAMPLE_ROWS,
    check_freshness,
    check_row_count_drop,
    check_volume,
    validate_table,
)
from pipeline.lib.sources import registry
from pipeline.lib.warehouse import table_exists
from pipeline.settings import source_config

# Raw tables of the sources the shop has (a source configured off gets no checks), from the source registry.
RAW_TABLES = tuple(table.name for table in registry.TABLES.values() if source_config(table.source) is not None)
BLOCKING_MARTS = ("customer_profile",)
OUTPUT_MARTS = ("customer_segments", "customer_clv", "customer_equity")
ROW_COUNT_KEY = "row_count"
# Marts whose rows the last dbt run recomputed are known: (table holding them, SQL condition on the mart's rows).
TRAITS = "intermediate.int_customer_traits"
CHANGED_ROWS = {
    "customer_profile": (
        TRAITS,
        f"customer_id in (select customer_id from {TRAITS} "
        f"where _loaded_through = (select max(_loaded_through) from {TRAITS}))",
    )
}


def _window(context: dg.AssetCheckExecutionContext) -> tuple[date | None, date | None]:
    """The run's partition window as inclusive dates, or (None, None) outside a partitioned run."""
    if not (context.has_partition_key or context.has_partition_key_range):
        return None, None
    window = context.partition_time_window
    return window.start.date(), window.end.date() - timedelta(days=1)


def _expectations_check(schema: str, table: str, blocking: bool) -> dg.AssetChecksDefinition:
    qualified, suite_name = f"{schema}.{table}", f"{schema}_{table}"

    @dg.asset_check(
        asset=dg.AssetKey([schema, table]),
        name="expectations",
        blocking=blocking,
        description=(
            f"Great Expectations suite expectations/{suite_name}.json"
            if schema != "raw"
            else "Great Expectations suite derived from the source registry (the contract landing enforces)"
        )
        + (" (blocking on critical failures)" if blocking else ""),
    )
    def _check(
        context: dg.AssetCheckExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        cdp = settings.get()
        sample_rows = int(cdp.quality.get("sample_rows", DEFAULT_SAMPLE_ROWS))
        # Raw tables: a partitioned run validates the window it delivered; marts whole (the profile: see CHANGED_ROWS).
        window = _window(context) if schema == "raw" else (None, None)
        with warehouse.connect(read_only=True) as con:
            suite = ingest.raw_suite(ingest.spec(table, cdp.contract_limits())) if schema == "raw" else suite_name
            state, changed = CHANGED_ROWS.get(table, (None, None))
            outcome = validate_table(
                con,
                qualified,
                suite,
                sample_rows=sample_rows,
                window=window if window[0] else None,
                changed_where=changed if state and table_exists(con, state) else None,
            )
        context.log.info(outcome.summary)
        failed = outcome.critical_failures + outcome.warnings
        return dg.AssetCheckResult(
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR if outcome.critical_failures else dg.AssetCheckSeverity.WARN,
            metadata={
                "summary": dg.MetadataValue.text(outcome.summary),
                ROW_COUNT_KEY: outcome.row_count,
                "validated_rows": outcome.validated_rows,
                **({"changed_rows": outcome.changed_rows} if outcome.changed_rows is not None else {}),
                "sampled": outcome.sampled,
                "expectations": len(outcome.results),
                "critical_failures": len(outcome.critical_failures),
                "warnings": len(outcome.warnings),
                "failed_expectations": dg.MetadataValue.json([r.as_dict() for r in failed]),
            },
        )

    return _check


def _missing_table(exc: duckdb.CatalogException) -> dg.AssetCheckResult:
    """A check of a table that is not there (yet) warns with DuckDB's first line, which names the table."""
    return dg.AssetCheckResult(
        passed=False, severity=dg.AssetCheckSeverity.WARN, metadata={"reason": str(exc).splitlines()[0]}
    )


def _freshness_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["raw", table]),
        name="freshness",
        description="The source delivered rows for the run's partition window (or has any at all).",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        start, end = _window(context)
        min_rows = int(settings.get().quality.get("freshness_min_rows", 1))
        with warehouse.connect(read_only=True) as con:
            try:
                result = check_freshness(con, f"raw.{table}", start, end, min_rows)
            except duckdb.CatalogException as exc:
                return _missing_table(exc)
        return dg.AssetCheckResult(
            passed=result.fresh,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "reason": result.reason,
                "rows_in_window": result.rows_in_window,
                "window": f"{result.window_start}..{result.window_end}",
                "latest_partition": str(result.latest_partition),
                "last_loaded_at": str(result.last_loaded_at),
            },
        )

    return _check


def _volume_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["raw", table]),
        name="volume_anomaly",
        description="Rows of the checked day against the trailing daily average (cdp.yaml quality:).",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        quality = settings.get().quality
        _, day = _window(context)
        with warehouse.connect(read_only=True) as con:
            try:
                result = check_volume(
                    con,
                    f"raw.{table}",
                    day,
                    int(quality.get("volume_trailing_days", 14)),
                    float(quality.get("volume_max_deviation", 0.5)),
                    float(quality.get("volume_min_baseline_rows", 10)),
                )
            except duckdb.CatalogException as exc:
                return _missing_table(exc)
        return dg.AssetCheckResult(
            passed=not result.anomalous,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "reason": result.reason,
                "day": str(result.day),
                "rows": result.row_count,
                "baseline_rows_per_day": result.baseline,
                "deviation": result.deviation,
            },
        )

    return _check


def _previous_row_count(context: dg.AssetCheckExecutionContext, check_key: dg.AssetCheckKey) -> int | None:
    """The row count recorded by the latest completed evaluation of this check, if any (the running one has none)."""
    records = context.instance.event_log_storage.get_asset_check_execution_history(check_key, limit=5)
    for record in records:
        evaluation = record.event.asset_check_evaluation if record.event else None
        if evaluation is not None:
            entry = evaluation.metadata.get(ROW_COUNT_KEY)
            return int(entry.value) if entry is not None else None
    return None


def _row_count_drop_check(schema: str, table: str) -> dg.AssetChecksDefinition:
    key = dg.AssetKey([schema, table])

    @dg.asset_check(
        asset=key,
        name="row_count_drop",
        description="The table did not lose more rows than allowed since the previous check.",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, settings: SettingsResource, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        with warehouse.connect(read_only=True) as con:
            try:
                current = con.execute(f"select count(*) from {schema}.{table}").fetchone()[0]
            except duckdb.CatalogException as exc:
                return _missing_table(exc)
        previous = _previous_row_count(context, dg.AssetCheckKey(key, "row_count_drop"))
        max_drop = float(settings.get().quality.get("max_row_drop_fraction", 0.2))
        result = check_row_count_drop(previous, int(current), max_drop)
        return dg.AssetCheckResult(
            passed=not result.dropped,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "reason": result.reason,
                ROW_COUNT_KEY: result.current,
                "previous_row_count": result.previous,
                "drop_fraction": result.drop_fraction,
            },
        )

    return _check


raw_source_checks = [
    check
    for table in RAW_TABLES
    for check in (
        _expectations_check("raw", table, blocking=True),
        _freshness_check(table),
        _volume_check(table),
        _row_count_drop_check("raw", table),
    )
]
profile_checks = [
    check
    for table in BLOCKING_MARTS
    for check in (_expectations_check("marts", table, blocking=True), _row_count_drop_check("marts", table))
]
output_checks = [
    check
    for table in OUTPUT_MARTS
    for check in (_expectations_check("marts", table, blocking=False), _row_count_drop_check("marts", table))
]
quality_checks = [*raw_source_checks, *profile_checks, *output_checks]
