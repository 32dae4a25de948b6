"""The nightly job over the whole asset graph and its schedule (02:00 in the shop's time zone, for the previous day)."""

from __future__ import annotations

import dagster as dg

from pipeline.defs.partitions import daily_partitions

nightly_job = dg.define_asset_job(
    name="cdp_nightly",
    selection=dg.AssetSelection.all(),
    partitions_def=daily_partitions,
    tags={"cdp/warehouse": "writer"},
    description="Ingest the day's raw data, rebuild the models, segments, CLV and equity, publish.",
)

nightly_schedule = dg.build_schedule_from_partitioned_job(
    nightly_job,
    hour_of_day=2,
    minute_of_hour=0,
    name="cdp_nightly_schedule",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
