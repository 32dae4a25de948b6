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
