"""Run housekeeping: runs whose process died are failed and free their slots (see monitoring.py)."""

import dagster as dg

from pipeline.defs.runs.monitoring import dead_runs

defs = dg.Definitions(sensors=[dead_runs])
