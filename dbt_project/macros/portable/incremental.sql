{#- How incremental models replace what a run delivers again, per engine (used as `config(**...)`).
    DuckDB deletes and inserts by key. Spark's plain parquet tables have no row-level delete or merge (those need the
    Delta or Iceberg jars): a model keyed by record is rebuilt from raw on every run, and a dated snapshot becomes a
    table partitioned by its date whose run overwrites that date's partition (insert_overwrite). -#}

{#- Rows keyed by a record id: a newer version replaces the row with the same key. -#}
{% macro incremental_by_key(unique_key) -%}
    {{ return(adapter.dispatch('incremental_by_key', 'cdp')(unique_key)) }}
{%- endmacro %}

{% macro default__incremental_by_key(unique_key) -%}
    {{ return({'materialized': 'incremental', 'incremental_strategy': 'delete+insert', 'unique_key': unique_key}) }}
{%- endmacro %}

{% macro spark__incremental_by_key(unique_key) -%}
    {{ return({'materialized': 'table', 'file_format': 'parquet'}) }}
{%- endmacro %}

{#- Snapshots by a date column: a run replaces the rows of its date, earlier dates stay. -#}
{% macro incremental_by_date(date_column) -%}
    {{ return(adapter.dispatch('incremental_by_date', 'cdp')(date_column)) }}
{%- endmacro %}

{% macro default__incremental_by_date(date_column) -%}
    {{ return({'materialized': 'incremental', 'incremental_strategy': 'delete+insert', 'unique_key': date_column}) }}
{%- endmacro %}

{% macro spark__incremental_by_date(date_column) -%}
    {{ return({'materialized': 'incremental', 'incremental_strategy': 'insert_overwrite', 'partition_by': [date_column],
               'file_format': 'parquet'}) }}
{%- endmacro %}
