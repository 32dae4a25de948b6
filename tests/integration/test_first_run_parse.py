"""The dbt parse made when the definitions load (ensure_manifest, the only parse of a fresh clone's first run) is the
one the run's first dbt step starts from: dbt parses the whole project again when its vars differ from the last
parse's, which cost a first `make run` a second full parse."""

import json
import shutil
import subprocess

from pipeline.defs.dbt.resources import DBT_DIR, DBT_EXECUTABLE, dbt_vars, ensure_manifest
from pipeline.settings import load_settings

FULL_PARSE = "Unable to do partial parsing"


def _parse(project, variables: dict) -> str:
    """dbt's debug log of a `dbt parse` of `project` with these vars, as a dbt step of a run starts."""
    done = subprocess.run(
        [str(DBT_EXECUTABLE), "--log-level", "debug", "--log-format", "text", "parse", "--vars", json.dumps(variables)]
        + ["--project-dir", str(project), "--profiles-dir", str(project)],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_the_first_dbt_step_of_a_run_reuses_the_parse_of_the_definitions(tmp_path, monkeypatch):
    monkeypatch.setenv("CDP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CDP_WAREHOUSE", raising=False)
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    manifest = ensure_manifest(project)  # a fresh clone: no manifest yet
    assert manifest.is_file()
    # The vars of the run's first dbt step on the new warehouse (it holds only the raw tables then: it fits open).
    run_vars = dbt_vars(load_settings(), tmp_path / "data" / "warehouse.duckdb", keep_open=True)
    first_step = _parse(project, run_vars)
    assert FULL_PARSE not in first_step and "Partial parsing enabled" in first_step, first_step[-3000:]
    # Other vars (another warehouse) are parsed whole again: the check above can tell the two apart.
    elsewhere = _parse(project, {**run_vars, "warehouse_path": str(tmp_path / "elsewhere.duckdb")})
    assert FULL_PARSE in elsewhere, elsewhere[-3000:]
