"""The dbt project, the vars a run hands it and the dbt CLI resource."""

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import duckdb
from dagster_dbt import DbtCliResource, DbtProject
from packaging.version import Version

from pipeline.lib.environment import REPO_ROOT
from pipeline.settings import Settings, load_settings

DBT_DIR = REPO_ROOT / "dbt_project"
# The dbt installed beside this interpreter: `.venv/bin/python -m pipeline.cli` works without an activated venv.
DBT_EXECUTABLE = Path(sys.executable).with_name("dbt")


# The table int_run_date reads the run date from when dbt gets it as the var `run_context` (a run by hand does not).
RUN_CONTEXT = "raw.run_context"


def dbt_vars(settings: Settings, warehouse: Path, keep_open: bool = False) -> dict:
    """The dbt vars of a run: the settings (Settings.dbt_vars: warehouse, DuckDB limits, model settings), whether dbt
    keeps the warehouse open (Settings.keep_warehouse_open) and `run_context`, the table of the run date
    (record_run_date). The same for every run of the same settings and warehouse size, so a run's first dbt step
    starts from the last run's parse (share_parse)."""
    return {**settings.dbt_vars(warehouse), "duckdb_keep_open": keep_open, "run_context": RUN_CONTEXT}


def expected_run_vars() -> dict | None:
    """The vars the dbt steps of a run on the configured settings and warehouse will pass (dbt_vars), as far as they
    can be known before it: keep_open as the warehouse stands now (an absent one is empty). None when the settings
    do not load (the run reports that) or another process holds the warehouse."""
    try:
        settings = load_settings()
    except (ValueError, OSError):
        return None
    warehouse = settings.warehouse_path
    exists = warehouse.exists()
    try:
        with duckdb.connect(str(warehouse) if exists else ":memory:", read_only=exists) as con:
            keep_open = settings.keep_warehouse_open(con)
    except duckdb.Error:
        return None
    return dbt_vars(settings, warehouse, keep_open)


def ensure_manifest(project_dir: Path = DBT_DIR) -> Path:
    """Build `target/manifest.json` with `dbt parse` when it is missing or older than any project file.

    dagster-dbt needs the manifest to load; checking file times costs milliseconds, parsing only happens after edits.
    The parse takes the vars the next run will pass (expected_run_vars): dbt parses the whole project again when the
    vars differ from its last parse's, so a first run (`make run` on a fresh clone) parsed twice, here without vars
    and again in its first dbt step.
    """
    manifest = project_dir / "target" / "manifest.json"
    sources = [p for folder in ("models", "macros", "tests") for p in (project_dir / folder).rglob("*") if p.is_file()]
    sources += [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    if manifest.exists() and manifest.stat().st_mtime >= max(p.stat().st_mtime for p in sources):
        return manifest
    command = [str(DBT_EXECUTABLE), "parse", "--quiet", "--project-dir", str(project_dir)]
    command += ["--profiles-dir", str(project_dir)]
    variables = expected_run_vars()
    if variables is not None:
        command += ["--vars", json.dumps(variables)]
    subprocess.run(command, check=True, cwd=project_dir)
    return manifest


class CdpDbtCliResource(DbtCliResource):
    """dagster-dbt's dbt CLI resource without two start-up costs the pipeline has no use for (together about 20 s
    of a run on a busy 2-core machine, 5 s on a quiet one, before dbt itself starts):

    - learning dbt's version by running `dbt --version` in a second process, which also asks PyPI for the latest
      release (a network round trip per run, a timeout offline): the `dbt` run is the locked dbt-core package beside
      this interpreter, whose version its package metadata holds;
    - a dbt Core adapter opened in the Dagster process before every invocation (it loads the profile, the project and
      dbt's macros): dagster-dbt uses it only for `fetch_row_counts()` / `fetch_column_metadata()`, and the dbt steps
      read row counts and column types from DuckDB themselves (pipeline/defs/table_metadata.py).

    Both override dagster-dbt members (pinned in uv.lock); tests/unit/test_dbt_resource.py fails when an upgrade
    renames them."""

    @property
    def _cli_version(self) -> Version:
        return Version(version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args) -> None:
        return None


ensure_manifest()
dbt_project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)
dbt_resource = CdpDbtCliResource(project_dir=dbt_project, dbt_executable=str(DBT_EXECUTABLE))
