"""Sensor that asks for a survey ingest run when new export files appear at the configured survey location."""

import hashlib
import json
from datetime import date

import dagster as dg
import duckdb

from pipeline.lib import ingest
from pipeline.lib.config import shop_calendar, source_config
from pipeline.lib.sources import survey_files

SURVEY_ASSET = dg.AssetKey(["raw", "survey_responses"])


@dg.sensor(
    name="survey_files_sensor",
    asset_selection=[SURVEY_ASSET],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="New survey export files -> a run of raw/survey_responses for each day they contain.",
)
def survey_files_sensor(context: dg.SensorEvaluationContext):
    """Cursor = the files already seen ({path: [size, mtime]}); changed or new files trigger their days' partitions."""
    cfg = source_config("survey")
    if cfg is None:
        return dg.SkipReason("the shop has no survey source (sources.survey is off)")
    source = survey_files.SurveySource.from_config("survey", cfg)
    seen: dict[str, list] = json.loads(context.cursor) if context.cursor else {}
    con = duckdb.connect()  # in-memory: listing and peeking at dates never touch the warehouse's write lock
    calendar = shop_calendar()
    try:
        ingest.prepare_session(con, calendar.timezone)
        listed = survey_files.list_files(con, source)
        current = {f.path: [f.size, str(f.mtime)] for f in listed}
        changed = sorted(path for path, stamp in current.items() if seen.get(path) != stamp)
        if not changed:
            return dg.SkipReason(f"no new survey files at {source.location}")
        spans = [pair for pair in survey_files.file_dates(con, changed).values() if None not in pair]
        days = sorted(
            {date.fromordinal(n) for first, last in spans for n in range(first.toordinal(), last.toordinal() + 1)}
        )
    finally:
        con.close()
    start = calendar.partitions_start
    tag = hashlib.sha256(json.dumps({p: current[p] for p in changed}).encode()).hexdigest()[:12]
    requests = [
        dg.RunRequest(
            run_key=f"survey-{day.isoformat()}-{tag}",
            partition_key=day.isoformat(),
            asset_selection=[SURVEY_ASSET],
            tags={"cdp/trigger": "survey_files_sensor"},
        )
        for day in days
        if day >= start
    ]
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(current))
