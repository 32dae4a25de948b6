"""Every table the dbt models build, and every column in it, carries a description (dbt persists them as table and
column comments; the serving copy carries them to BI tools). Every mart says what it is for, its grain and its key,
and the key holds on the demo run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb

from pipeline.defs.dbt.resources import dbt_project

# "Grain: one row per <what>. Key: <column>[, <column>...]." in every mart's description.
GRAIN = re.compile(r"Grain: one (?:row|set of rows) per [^.]+\.")
KEY = re.compile(r"Key: ([a-z0-9_]+(?:, [a-z0-9_]+)*)\.")


def _models() -> list[dict]:
    manifest = json.loads(Path(dbt_project.manifest_path).read_text())
    return [node for node in manifest["nodes"].values() if node["resource_type"] == "model"]


def _columns(con: duckdb.DuckDBPyConnection, node: dict) -> list[str]:
    return [
        name
        for (name,) in con.execute(
            "select column_name from duckdb_columns() where schema_name = ? and table_name = ? order by column_index",
            [node["schema"], node["alias"]],
        ).fetchall()
    ]


def test_every_model_and_every_column_it_builds_is_described(demo_run):
    models = _models()
    assert len(models) > 20
    undescribed = []
    with duckdb.connect(str(demo_run.warehouse), read_only=True) as con:
        for node in models:
            columns = _columns(con, node)
            assert columns, f"{node['schema']}.{node['alias']} was not built by the demo run"
            if not node["description"].strip():
                undescribed.append(node["name"])
            documented = {name.lower(): spec for name, spec in node["columns"].items()}
            undescribed += [
                f"{node['name']}.{column}"
                for column in columns
                if not documented.get(column.lower(), {}).get("description", "").strip()
            ]
    assert undescribed == [], f"describe these in the model's YAML: {undescribed}"


def test_every_mart_states_its_purpose_grain_and_a_key_that_holds(demo_run):
    marts = [node for node in _models() if node["schema"] == "marts"]
    assert marts
    with duckdb.connect(str(demo_run.warehouse), read_only=True) as con:
        for node in marts:
            name, description = node["name"], " ".join(node["description"].split())
            assert GRAIN.search(description), f"{name}: no 'Grain: one row per ...' in its description"
            key = KEY.search(description)
            assert key, f"{name}: no 'Key: column, ...' in its description"
            assert description.index(GRAIN.search(description).group()) > 0, f"{name}: say what it is for first"
            columns = key.group(1).split(", ")
            assert set(columns) <= set(_columns(con, node)), f"{name}: key {columns} names missing columns"
            listed = ", ".join(f'"{column}"' for column in columns)
            grouped = f'select {listed} from "marts"."{node["alias"]}" group by all having count(*) > 1'
            duplicates = con.execute(f"select count(*) from ({grouped})").fetchone()[0]
            assert duplicates == 0, f"{name}: key {columns} is not unique on the demo run"
