"""Sensor that asks for a survey ingest run when new export files appear at the configured survey location."""

import hashlib
import json
from datetime import date

import dagster as dg

from pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pipeline.defs.resources import SettingsResource
from pipeline.lib import ingest
from pipeline.lib.sources import survey_files

SURVEY_ASSET = dg.AssetKey(["raw", "survey_responses"])


def _days(spans: list[tuple[date, date]]) -> set[date]:
    return {date.fromordinal(n) for first, last in spans for n in range(first.toordinal(), last.toordinal() + 1)}


@dg.sensor(
    name="survey_files_sensor",
    asset_selection=[SURVEY_ASSET],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="New survey export files -> one run of raw/survey_responses over the days they contain.",
)
def survey_files_sensor(context: dg.SensorEvaluationContext, settings: SettingsResource):
    """Cursor = the files already accounted for ({path: [size, mtime]}); new or changed files trigger one run.

    The first evaluation (no cursor yet: the sensor was just switched on) counts a file as loaded when every day it
    holds is already a materialized partition of raw/survey_responses, so switching the sensor on after `make run`
    asks for nothing. Each tick asks for one run over the days of all new files (a single-run partition range).
    """
    cdp = settings.get()
    cfg = cdp.source_config("survey")
    if cfg is None:
        return dg.SkipReason("the shop has no survey source (sources.survey is off)")
    source = survey_files.SurveySource.from_config("survey", cfg)
    seen: dict[str, list] = json.loads(context.cursor) if context.cursor else {}
    con = cdp.connect_memory()  # in-memory: listing and peeking at dates never touch the warehouse's write lock
    calendar = cdp.shop_calendar()
    try:
        ingest.prepare_session(con, calendar.timezone)
        current = {f.path: [f.size, str(f.mtime)] for f in survey_files.list_files(con, source)}
        changed = sorted(path for path, stamp in current.items() if seen.get(path) != stamp)
        spans = (
            {path: pair for path, pair in survey_files.file_dates(con, changed).items() if None not in pair}
            if changed
            else {}
        )
    finally:
        con.close()
    if context.cursor is None:
        loaded = {date.fromisoformat(key) for key in context.instance.get_materialized_partitions(SURVEY_ASSET)}
        spans = {path: pair for path, pair in spans.items() if not _days([pair]) <= loaded}
    days = sorted(day for day in _days(list(spans.values())) if day >= calendar.partitions_start)
    if not days:
        return dg.SensorResult(skip_reason=f"no new survey files at {source.location}", cursor=json.dumps(current))
    new_files = sorted(spans)
    run_key = hashlib.sha256(json.dumps({path: current[path] for path in new_files}).encode()).hexdigest()[:16]
    context.log.info(f"{len(new_files)} new survey file(s): days {days[0]} .. {days[-1]}")
    request = dg.RunRequest(
        run_key=f"survey-{run_key}",
        asset_selection=[SURVEY_ASSET],
        tags={
            RANGE_START_TAG: days[0].isoformat(),
            RANGE_END_TAG: days[-1].isoformat(),
            "cdp/trigger": "survey_files_sensor",
        },
    )
    return dg.SensorResult(run_requests=[request], cursor=json.dumps(current))
