"""The source registry is the one declaration of raw tables: files generated from it must match it."""

import ast

from pipeline.lib.environment import REPO_ROOT
from pipeline.lib.identity import record_sources
from pipeline.lib.sources import registry


def test_dbt_files_are_generated_from_the_registry():
    for relative, render in registry.GENERATED_FILES.items():
        written = (REPO_ROOT / relative).read_text(encoding="utf-8")
        assert written == render(), f"{relative} is stale: run `python -m pipeline.lib.sources.registry`"


def test_identifier_columns_name_existing_columns_and_record_keys():
    for table in registry.TABLES.values():
        identifiers = registry.identifier_columns(table.name)
        assert set(identifiers) <= set(table.column_names)
        assert set(table.key) <= set(table.column_names)
        if table.record_source:
            assert table.record_key in identifiers, f"{table.name}: the record key must carry an identifier type"


def test_identity_models_read_exactly_the_registrys_person_records():
    """dbt finds a Python model's parents only in `dbt.ref("...")` calls written as literals, so the identity models
    that read every staged person record (identifiers, records, phone spellings) each list the staging models; this
    keeps those lists equal to the registry's, so adding a source cannot miss one."""
    expected = {source.model for source in record_sources()}
    models = REPO_ROOT / "dbt_project" / "models" / "intermediate"
    readers = {}
    for path in sorted(models.glob("*.py")):
        refs = {
            call.args[0].value
            for call in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "ref"
            and call.args
            and isinstance(call.args[0], ast.Constant)
        }
        staged = {ref for ref in refs if ref.startswith("stg_")}
        if staged:
            readers[path.name] = staged
    assert {"int_identifiers.py", "int_identity_records.py", "int_phone_numbers.py"} <= readers.keys()
    assert {name: staged for name, staged in readers.items() if staged != expected} == {}
