"""Row count and typed column schema of a warehouse table as Dagster metadata (what the UI shows per table)."""

from __future__ import annotations

import dagster as dg

from pipeline.lib.metadata import table_facts


def table_metadata(con, key: dg.AssetKey) -> dict:
    """`dagster/row_count` and `dagster/column_schema` of the table `schema.name` behind a two-part asset key
    ({} for assets that are no warehouse table)."""
    if len(key.path) != 2:
        return {}
    facts = table_facts(con, *key.path)
    if facts is None:
        return {}
    rows, columns = facts
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, type=dtype, description=comment) for name, dtype, comment in columns]
    )
    return {"dagster/row_count": dg.MetadataValue.int(rows), "dagster/column_schema": schema}
