"""The nightly job over the whole asset graph and its schedule (02:00 in the shop's time zone, for the previous day)."""

from __future__ import annotations

import dagster as dg

from pipeline.defs.partitions import daily_partitions

# The UI backfills a selection made in the asset graph through the first job, by name, that holds every selected
# asset. Dagster's hidden asset job `__ASSET_JOB` holds them all too: under it the backfill daemon runs the raw days
# first and the unpartitioned models in a second run (an asset waits for a parent with another partitions
# definition), which races for the DuckDB file. A name sorting before `__ASSET_JOB` (capitals sort before "_") makes
# every selection a backfill of this job's partition set: one run over the whole range.
nightly_job = dg.define_asset_job(
    name="CDP_nightly",
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
