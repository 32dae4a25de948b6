"""A one-step job in the `warehouse` pool for the dead-run tests: its first run records its process id and holds
the pool slot until it is killed; later runs finish at once. CDP_TEST_WORKER_FILE names the file it writes. The
code location carries the pipeline's `dead_runs` sensor, as the pipeline's does."""

import os
import time
from pathlib import Path

import dagster as dg

from pipeline.defs.runs.monitoring import dead_runs


@dg.asset(pool="warehouse")
def held_warehouse_slot() -> None:
    worker_file = Path(os.environ["CDP_TEST_WORKER_FILE"])
    first = not worker_file.exists()
    worker_file.write_text(str(os.getpid()))
    while first:
        time.sleep(1)


held_job = dg.define_asset_job(
    "held_job", selection=[held_warehouse_slot], executor_def=dg.in_process_executor, tags={"cdp/warehouse": "writer"}
)
defs = dg.Definitions(assets=[held_warehouse_slot], jobs=[held_job], sensors=[dead_runs])
