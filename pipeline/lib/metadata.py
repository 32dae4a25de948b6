"""Small helpers for Dagster asset metadata."""

from __future__ import annotations


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
