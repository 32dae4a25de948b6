"""The daily partitions of raw data: one partition per business day in Asia/Jakarta."""

from __future__ import annotations

from datetime import date

import dagster as dg

from pipeline.lib.config import section

_calendar = section("calendar")

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=str(_calendar.get("partitions_start", "2024-01-01")),
    timezone=str(_calendar.get("timezone", "Asia/Jakarta")),
)


def window_dates(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """The run's partition window as [first day, day after last day) — one day, or a backfilled range."""
    window = context.partition_time_window
    return window.start.date(), window.end.date()
