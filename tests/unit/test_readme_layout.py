"""The README's layout table is the newcomer's map: every path it names exists, and every part of the pipeline and
every dbt layer is on it."""

from __future__ import annotations

import re

from pipeline.lib.environment import REPO_ROOT

README = REPO_ROOT / "README.md"


def layout_rows() -> list[tuple[str, str]]:
    """(first cell, second cell) of each row of the table under the `| Folder | What is there |` header."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("| Folder | What is there |") + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        first, second = line.strip("|").split("|", 1)
        rows.append((first, second))
    return rows


def listed_paths() -> list[str]:
    """The paths of the first column; a bare name after a path (`pipeline/defs/partitions.py`, `jobs.py`) is in the
    folder of the path before it."""
    paths = []
    for first, _ in layout_rows():
        folder = ""
        for name in re.findall(r"`([^`]+)`", first):
            path = name if "/" in name.rstrip("/") else folder + name
            folder = path[: path.rstrip("/").rfind("/") + 1]
            paths.append(path)
    return paths


def test_every_listed_path_exists():
    paths = listed_paths()
    assert len(paths) > 10
    assert [path for path in paths if not (REPO_ROOT / path).exists()] == []


def test_every_part_of_the_pipeline_is_listed():
    paths = listed_paths()
    parts = [
        part
        for folder in ("pipeline", "pipeline/defs")
        for part in sorted((REPO_ROOT / folder).iterdir())
        if part.name != "__init__.py" and not part.name.startswith((".", "__"))
    ]
    missing = [
        str(part.relative_to(REPO_ROOT))
        for part in parts
        if not any((REPO_ROOT / path).is_relative_to(part) for path in paths)  # the part itself or inside it
    ]
    assert missing == []


def test_every_dbt_layer_is_listed():
    table = "\n".join(second for first, second in layout_rows() if "`dbt_project/`" in first)
    layers = [p.name for p in sorted((REPO_ROOT / "dbt_project" / "models").iterdir()) if p.is_dir()]
    assert layers and [name for name in layers if f"`{name}/`" not in table] == []
