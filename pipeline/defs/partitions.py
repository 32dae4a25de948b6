"""The daily partitions of raw data: one partition per business day in the shop's time zone (calendar.timezone)."""

from __future__ import annotations

from datetime import date

import dagster as dg

from pipeline.settings import shop_calendar

# Tags that make one run cover a range of partitions (how single-run backfills and `make run` span many days).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

_calendar = shop_calendar()

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=_calendar.partitions_start.isoformat(),
    timezone=_calendar.timezone,
)


def window_dates(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """The run's partition window as [first day, day after last day) — one day, or a backfilled range."""
    window = context.partition_time_window
    return window.start.date(), window.end.date()
