"""The daily partitions of raw data: one partition per business day in the shop's time zone (calendar.timezone)."""

from __future__ import annotations

from datetime import date

import dagster as dg

from pipeline.lib.config import shop_calendar

_calendar = shop_calendar()

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=_calendar.partitions_start.isoformat(),
    timezone=_calendar.timezone,
)


def window_dates(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """The run's partition window as [first day, day after last day) — one day, or a backfilled range."""
    window = context.partition_time_window
    return window.start.date(), window.end.date()
