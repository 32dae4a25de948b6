{#- dbt-duckdb writes the new rows of an incremental Python model to a table `<model>__dbt_tmp<timestamp>` of the
    default schema, takes it for a temporary table and never drops it: every nightly run would leave the night's
    identity rows (names, emails, phones) behind, in a new table each night. Run at the end of every dbt invocation
    (on-run-end), also after a failed model; a killed run's leftovers go with the next one. Other engines leave
    none. -#}
{% macro drop_build_leftovers() -%}
    {{ return(adapter.dispatch('drop_build_leftovers', 'cdp')()) }}
{%- endmacro %}

{% macro default__drop_build_leftovers() -%}
    {{ return('') }}
{%- endmacro %}

{% macro duckdb__drop_build_leftovers() -%}
    {%- if execute -%}
        {%- set leftovers = run_query(
            "select schema_name, table_name from duckdb_tables() where database_name = current_database() "
            ~ "and not temporary and regexp_matches(table_name, '__dbt_tmp[0-9]+$')"
        ) -%}
        {%- for schema_name, table_name in leftovers.rows -%}
            {%- do run_query('drop table if exists ' ~ adapter.quote(schema_name) ~ '.' ~ adapter.quote(table_name)) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
