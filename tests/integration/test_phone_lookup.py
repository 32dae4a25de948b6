"""int_phone_numbers grows with what the night stages: a nightly run reads the phones of the rows staged since the
last one and keeps every other parse as it was; a full rebuild or another region parses what is staged and drops
what is not. Real dbt on a real DuckDB file, the staging tables planted."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import polars as pl

from pipeline.lib.identity import record_sources
from tests.support.dbt_cli import plant_tables, run_dbt

FIRST_LOAD, NEXT_LOAD = datetime(2026, 1, 5, 23, 0), datetime(2026, 1, 6, 23, 0)


def _staged(phones_by_model: dict[str, list[tuple[str | None, datetime]]]) -> dict[str, pl.DataFrame]:
    """Each person-record staging model of the registry with its phone columns (all the same spelling per row) and
    load time; the rows given per model, none for the others."""
    tables = {}
    for source in record_sources():
        columns = [column for column, id_type in source.identifiers if id_type == "phone"]
        rows = phones_by_model.get(source.model, [])
        frame = {column: [phone for phone, _ in rows] for column in columns}
        frame["_loaded_at"] = [loaded for _, loaded in rows]
        tables[f"staging.{source.model}"] = pl.DataFrame(
            frame, schema={**{c: pl.String for c in columns}, "_loaded_at": pl.Datetime("us")}
        )
    return tables


def _lookup(warehouse) -> dict[str, tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("select raw_phone, phone_e164, region, staged_until from intermediate.int_phone_numbers")
        return {raw: tuple(rest) for raw, *rest in rows.fetchall()}


def _run(warehouse, **identity):
    rules = {"default_region": "ID", **identity.pop("rules", {})}
    variables = {"identity_rules": rules, **identity}
    done = run_dbt(warehouse, "run", "--select", "int_phone_numbers", "--vars", json.dumps(variables))
    assert done.returncode == 0, done.stdout[-3000:]


def test_a_night_parses_its_own_spellings_and_keeps_the_rest(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    orders, tickets = "stg_webshop__orders", "stg_helpdesk__tickets"
    first = {
        orders: [("0812-3456-7890", FIRST_LOAD), ("0812 1111 2222", FIRST_LOAD)],
        tickets: [("+62 813 5555 6666", FIRST_LOAD), (None, FIRST_LOAD)],
    }
    plant_tables(warehouse, _staged(first))
    _run(warehouse)
    built = _lookup(warehouse)
    assert built == {
        "081234567890": ("+6281234567890", "ID", FIRST_LOAD),
        "081211112222": ("+6281211112222", "ID", FIRST_LOAD),
        "+6281355556666": ("+6281355556666", "ID", FIRST_LOAD),
    }

    # The night stages a new spelling and one the table holds; one old row leaves staging (as erasure would take it
    # from both: the lookup keeps it here only because this test does not erase).
    night = {
        orders: [("0812-3456-7890", FIRST_LOAD), ("0812.1111.2222", NEXT_LOAD), ("(0857) 12345678", NEXT_LOAD)],
        tickets: [("+62 813 5555 6666", FIRST_LOAD)],
    }
    plant_tables(warehouse, _staged(night))
    _run(warehouse)
    nightly = _lookup(warehouse)
    assert nightly == {
        "081234567890": ("+6281234567890", "ID", FIRST_LOAD),  # not staged tonight: its row as it was
        "081211112222": ("+6281211112222", "ID", NEXT_LOAD),  # staged again: written with tonight's stamp
        "+6281355556666": ("+6281355556666", "ID", FIRST_LOAD),
        "085712345678": (nightly["085712345678"][0], "ID", NEXT_LOAD),
    }
    assert nightly["085712345678"][0] == "+6285712345678"

    # Without the ticket's phone in staging, a full rebuild drops its spelling.
    plant_tables(warehouse, _staged({orders: night[orders]}))
    _run(warehouse, identity_full_rebuild=True)
    assert set(_lookup(warehouse)) == {"081234567890", "081211112222", "085712345678"}

    # Another region parses every staged spelling again, in that region.
    _run(warehouse, rules={"default_region": "SG"})
    in_singapore = _lookup(warehouse)
    assert set(in_singapore) == {"081234567890", "081211112222", "085712345678"}
    assert {region for _, region, _ in in_singapore.values()} == {"SG"}
    assert in_singapore["081234567890"][0] is None  # not a Singapore number
