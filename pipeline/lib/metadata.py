"""Small helpers for Dagster asset metadata."""

from __future__ import annotations

import polars as pl


def markdown_table(frame: pl.DataFrame) -> str:
    """A frame as a Markdown table (the Dagster UI renders it), values as printed by Python."""
    header = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * frame.width
    rows = ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, *rows])


def table_facts(con, schema: str, table: str) -> tuple[int, list[tuple[str, str, str | None]]] | None:
    """Rows and (column, type, description) of a warehouse table, as DuckDB holds them; None when it does not exist.

    `con` is any DuckDB connection to the warehouse (read-only is enough); descriptions are the column comments
    (dbt persist_docs).
    """
    columns = con.execute(
        "select column_name, data_type, comment from duckdb_columns() where database_name = current_database() "
        "and schema_name = ? and table_name = ? order by column_index",
        [schema, table],
    ).fetchall()
    if not columns:
        return None
    rows = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
    return rows, columns
