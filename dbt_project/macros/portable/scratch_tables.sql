{#- A table that a macro computes at compile time (run_query) and a model then reads, replaced when it exists: a
    temporary table on DuckDB. Spark's temporary views are plans evaluated on every read (an iteration over them
    would recompute every earlier round), so Spark writes a parquet table in the current schema instead. -#}
{% macro create_scratch_table(name, sql) -%}
    {{ return(adapter.dispatch('create_scratch_table', 'cdp')(name, sql)) }}
{%- endmacro %}

{% macro default__create_scratch_table(name, sql) -%}
    {%- do run_query('create or replace temporary table ' ~ name ~ ' as ' ~ sql) -%}
{%- endmacro %}

{% macro spark__create_scratch_table(name, sql) -%}
    {%- do run_query('drop table if exists ' ~ name) -%}
    {%- do run_query('create table ' ~ name ~ ' using parquet as ' ~ sql) -%}
{%- endmacro %}

{#- The rows a model's own table held before this run, for a model that reads them: the table itself on DuckDB
    (dbt-duckdb builds the new table beside the old one). Spark drops a parquet table before it creates the new one,
    so Spark reads a scratch copy taken while the model compiles, before the drop. -#}
{% macro previous_rows(relation) -%}
    {{ return(adapter.dispatch('previous_rows', 'cdp')(relation)) }}
{%- endmacro %}

{% macro default__previous_rows(relation) -%}
    {{ return(relation) }}
{%- endmacro %}

{% macro spark__previous_rows(relation) -%}
    {%- set copy = '__previous_' ~ relation.identifier -%}
    {%- if execute -%}
        {%- do create_scratch_table(copy, 'select * from ' ~ relation) -%}
    {%- endif -%}
    {{ return(copy) }}
{%- endmacro %}
