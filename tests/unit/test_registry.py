"""The source registry is the one declaration of raw tables: files generated from it must match it."""

from pipeline.lib.environment import REPO_ROOT
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
