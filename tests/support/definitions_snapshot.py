"""What the code location defines, as plain sorted lists: asset keys, asset checks, jobs, schedules, sensors and
resources. `tests/unit/test_definitions.py` compares it with `definitions_snapshot.json`; after an INTENDED change
of the definitions, rewrite the file with `make definitions-snapshot` and say so in the commit message."""

from __future__ import annotations

import json
from pathlib import Path

SNAPSHOT_FILE = Path(__file__).with_name("definitions_snapshot.json")


def definitions_snapshot() -> dict[str, list[str]]:
    from pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    return {
        "assets": sorted(key.to_user_string() for key in graph.get_all_asset_keys()),
        "asset_checks": sorted(f"{key.asset_key.to_user_string()}:{key.name}" for key in graph.asset_check_keys),
        "jobs": sorted(job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")),
        "schedules": sorted(schedule.name for schedule in defs.schedules or []),
        "sensors": sorted(sensor.name for sensor in defs.sensors or []),
        "resources": sorted(defs.resources or {}),
    }


if __name__ == "__main__":
    SNAPSHOT_FILE.write_text(json.dumps(definitions_snapshot(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {SNAPSHOT_FILE}")
