"""The dbt project and the dbt CLI resource."""

import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

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


ensure_manifest()
dbt_project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)
dbt_resource = DbtCliResource(project_dir=dbt_project, dbt_executable=str(DBT_EXECUTABLE))
