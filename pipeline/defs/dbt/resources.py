"""The dbt project and the dbt CLI resource."""

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from packaging.version import Version

from pipeline.lib.environment import REPO_ROOT

DBT_DIR = REPO_ROOT / "dbt_project"
# The dbt installed beside this interpreter: `.venv/bin/python -m pipeline.cli` works without an activated venv.
DBT_EXECUTABLE = Path(sys.executable).with_name("dbt")


def ensure_manifest(project_dir: Path = DBT_DIR) -> Path:
    """Build `target/manifest.json` with `dbt parse` when it is missing or older than any project file.

    dagster-dbt needs the manifest to load; checking file times costs milliseconds, parsing only happens after edits.
    """
    manifest = project_dir / "target" / "manifest.json"
    sources = [p for folder in ("models", "macros", "tests") for p in (project_dir / folder).rglob("*") if p.is_file()]
    sources += [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    if manifest.exists() and manifest.stat().st_mtime >= max(p.stat().st_mtime for p in sources):
        return manifest
    subprocess.run(
        [
            str(DBT_EXECUTABLE),
            "parse",
            "--quiet",
            "--project-dir",
            str(project_dir),
            "--profiles-dir",
            str(project_dir),
        ],
        check=True,
        cwd=project_dir,
    )
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
