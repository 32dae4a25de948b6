"""The DuckDB limits of the settings (duckdb.memory_limit, duckdb.temp_directory) bound both processes that open the
warehouse: a Dagster step's connection (WarehouseResource) and dbt's (profiles.yml reads the vars a run passes).
Each reports the configured values through DuckDB itself, and the allocator's background thread that hands freed
memory back to the system (pipeline/lib/warehouse.py)."""

import json
from pathlib import Path

import dagster as dg
import duckdb
import yaml

from pipeline.defs.resources import WarehouseResource, resources_for
from pipeline.settings import DEFAULT_CONFIG, load_settings
from tests.support.dbt_cli import run_dbt

LIMITS_SQL = (
    "select current_setting('memory_limit') as memory_limit, current_setting('temp_directory') as temp_directory, "
    "current_setting('allocator_background_threads') as allocator_background_threads"
)


def _configured(tmp_path):
    """A cdp.yaml with a memory limit and spill directory of its own, and what DuckDB reports for them."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    spill = tmp_path / "spill"
    config["duckdb"] = {"memory_limit": "700MB", "temp_directory": str(spill)}
    path = tmp_path / "cdp.yaml"
    path.write_text(yaml.safe_dump(config))
    with duckdb.connect(config={"memory_limit": "700MB"}) as con:
        expected_limit = con.execute("select current_setting('memory_limit')").fetchone()[0]
    with duckdb.connect() as con:
        default_limit = con.execute("select current_setting('memory_limit')").fetchone()[0]
    assert expected_limit != default_limit, "the test limit must differ from DuckDB's default to prove anything"
    return path, {"memory_limit": expected_limit, "temp_directory": str(spill), "allocator_background_threads": True}


def test_dagster_and_dbt_connections_report_the_configured_limits(tmp_path):
    config, expected = _configured(tmp_path)
    warehouse = tmp_path / "warehouse.duckdb"

    @dg.asset
    def limits(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> None:
        with warehouse.connect() as con:
            reported = con.execute(LIMITS_SQL).fetchone()
        names = ("memory_limit", "temp_directory", "allocator_background_threads")
        context.add_output_metadata(dict(zip(names, reported, strict=True)))

    result = dg.materialize([limits], resources=resources_for(config_file=config, warehouse_file=warehouse))
    assert result.success
    (materialization,) = result.get_asset_materialization_events()
    reported = materialization.materialization.metadata
    assert {name: reported[name].value for name in expected} == expected

    # dbt in its own process, with the vars a Dagster run hands it.
    variables = load_settings(config).dbt_vars(warehouse)
    shown = run_dbt(warehouse, "show", "--inline", LIMITS_SQL, "--output", "json", "--vars", json.dumps(variables))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    payload = shown.stdout[shown.stdout.index("{") : shown.stdout.rindex("}") + 1]
    (row,) = json.loads(payload)["show"]
    assert row == expected


def test_in_memory_duckdb_is_bounded_and_spills_apart(tmp_path):
    """The in-memory DuckDB of the CLI, the survey sensor and the Spark build's Python models (Settings.connect_memory,
    warehouse.in_memory) has the configured limit, and each instance spills into a directory of its own beside the
    warehouse's: with one shared directory, the instance that closes first deletes what the other spilled."""
    config, expected = _configured(tmp_path)
    settings = load_settings(config)
    beyond_limit = [
        "create temp table numbers as select i, md5(i::varchar) as s from range(3000000) t(i)",
        "create temp table sorted as select * from numbers order by s",
    ]
    first, second = settings.connect_memory(), settings.connect_memory()
    try:
        for con in (first, second):
            assert con.execute(LIMITS_SQL).fetchone()[::2] == (expected["memory_limit"], True)
            con.execute("set memory_limit = '100MB'")  # small enough that both instances spill
            for sql in beyond_limit:
                con.execute(sql)
        spilled = [Path(con.execute(LIMITS_SQL).fetchone()[1]) for con in (first, second)]
        assert spilled[0] != spilled[1]
        for path in spilled:
            assert path.parent == Path(f"{expected['temp_directory']}.memory") and any(path.iterdir())
        second.close()
        assert not spilled[1].exists(), "DuckDB removes the directory it spilled into when it closes"
        # The first instance still reads back every row it spilled.
        assert first.execute("select count(*), count(distinct s) from sorted").fetchone() == (3_000_000, 3_000_000)
    finally:
        first.close()
        second.close()


def test_dbt_python_models_get_the_limits(tmp_path):
    """A dbt Python model reads the limits for its own in-memory DuckDB from its config (dbt.config.get)."""
    config, expected = _configured(tmp_path)
    warehouse = tmp_path / "warehouse.duckdb"
    variables = load_settings(config).dbt_vars(warehouse)
    listed = run_dbt(
        warehouse,
        "ls",
        "--select",
        "int_identity_matches",
        "--output",
        "json",
        "--output-keys",
        "config",
        "--vars",
        json.dumps(variables),
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    line = next(text for text in listed.stdout.splitlines() if text.startswith("{"))
    model_config = json.loads(line)["config"]
    assert model_config["duckdb_memory_limit"] == "700MB"
    assert model_config["duckdb_temp_directory"] == expected["temp_directory"]


def test_dbt_keeps_running_nodes_after_duckdb_spilled(tmp_path):
    """A model that spills, then its tests on new cursors: the spill directory is DuckDB's from the start (dbt-duckdb
    SETs profile `settings` on every cursor, and DuckDB refuses to switch its temp directory once it spilled)."""
    config, _ = _configured(tmp_path)
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema raw")
        con.execute("""
            create table raw.survey_responses as
            select 'r' || i as response_id, timestamp '2026-01-01' + to_seconds(i) as submitted_at, 'nps' as survey,
                (i % 11)::integer as score, md5(i::varchar) || md5((i + 1)::varchar) as comment,
                'p' || i || '@example.com' as email, null::varchar as phone, null::varchar as order_ref,
                true as consent, timestamp '2026-02-01' as _loaded_at, date '2026-01-01' as _partition_date
            from range(1500000) t(i)
        """)
    variables = load_settings(config).dbt_vars(warehouse) | {"duckdb_memory_limit": "150MB"}
    built = run_dbt(warehouse, "build", "--select", "stg_survey__responses", "--vars", json.dumps(variables))
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-2000:]
    assert "PASS=" in built.stdout and "ERROR=0" in built.stdout
