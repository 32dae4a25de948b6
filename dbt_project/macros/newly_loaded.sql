{#- Raw rows landed since this model last ran, whatever dates they cover (one night, a backfilled range, a late
    survey file): the watermark is the newest load time already staged. Warehouse writers are serialised (one DuckDB
    writer process, one writing run at a time), so load times only grow. A full build reads everything. -#}
{% macro newly_loaded() -%}
    {% if is_incremental() -%}
        candidate._loaded_at > (select coalesce(max(_loaded_at), {{ earliest_timestamp() }}) from {{ this }})
    {%- else -%}
        true
    {%- endif %}
{%- endmacro %}

{#- Keep a staged version only if the model does not already hold a newer one (backfilling an old window must not
    overwrite a newer version landed by a later partition). -#}
{% macro not_older_than_current(key, version_column, candidate_key=none, candidate_version=none) -%}
    {% if is_incremental() -%}
        not exists (
            select 1 from {{ this }} as current_rows
            where current_rows.{{ key }} = {{ candidate_key or 'candidate.' ~ key }}
              and current_rows.{{ version_column }} > {{ candidate_version or 'candidate.' ~ version_column }}
        )
    {%- else -%}
        true
    {%- endif %}
{%- endmacro %}

{#- The newest load time a model's table holds, as a timestamp literal (a model that has loaded nothing yet: the
    earliest timestamp). A literal, not a subquery: a scan of a table landed in load order then skips the row groups
    loaded before it, and the planner sees the few rows after it as few. -#}
{% macro loaded_through(relation, column) -%}
    {%- if not execute -%}
        {{ return(earliest_timestamp()) }}
    {%- endif -%}
    {%- set newest = run_query('select max(' ~ adapter.quote(column) ~ ') from ' ~ relation).columns[0].values()[0] -%}
    {{ return(earliest_timestamp() if newest is none else 'cast(' ~ sql_string(newest) ~ ' as timestamp)') }}
{%- endmacro %}
