{#- A model's CTE that DuckDB computes as a statement of its own, a temporary table (or view) the model's query then
    reads. DuckDB holds the hash tables of every CTE of a query until the query ends: int_customer_traits, one query
    over 3M customers, ran out of memory at 4GB; built in steps it needs about a third of that (bench/results/
    traits-memory-20261203-session11.md). Use as a call block, one per CTE, in order:

        {% call build_step('customers', steps) %} select distinct customer_id from customer_records {% endcall %},

    `steps` is a list the model starts empty: it collects the steps made so far, so that each step's statement can
    read the earlier ones by their CTE names. `view`: a step cheap to read again (read where it is used, never held).
    Where no query runs (dbt parse, sqlfluff), in dbt unit tests (their inputs are CTEs) and on Spark (which holds no
    CTE) the step is an ordinary CTE. -#}
{% macro build_step(name, steps, view=false) -%}
    {{ return(adapter.dispatch('build_step', 'cdp')(name, steps, caller(), view)) }}
{%- endmacro %}

{% macro default__build_step(name, steps, sql, view) -%}
    {{ return(name ~ ' as (' ~ sql ~ ')') }}
{%- endmacro %}

{% macro duckdb__build_step(name, steps, sql, view) -%}
    {%- if not (execute and model.resource_type == 'model') -%}
        {{ return(default__build_step(name, steps, sql, view)) }}
    {%- endif -%}
    {%- set relation = build_step_prefix() ~ name -%}
    {%- set earlier = [] -%}
    {%- for step in steps -%}
        {%- do earlier.append(step.name ~ ' as (select * from ' ~ step.relation ~ ')') -%}
    {%- endfor -%}
    {%- do run_query('create or replace temporary ' ~ ('view' if view else 'table') ~ ' ' ~ relation ~ ' as '
        ~ ('with ' ~ earlier | join(', ') ~ ' ' if earlier else '') ~ sql) -%}
    {%- do steps.append({'name': name, 'relation': relation}) -%}
    {{ return(name ~ ' as (select * from ' ~ relation ~ ')') }}
{%- endmacro %}

{#- The names of the running model's steps start with this: the post-hook finds them by it. -#}
{% macro build_step_prefix() -%}
    {{ return('__step_' ~ model.name ~ '__') }}
{%- endmacro %}

{#- A post-hook: drops the temporary tables and views of a model's steps, which would otherwise hold their memory (or
    temporary files) for the rest of dbt's session. -#}
{% macro drop_build_steps() -%}
    {{ return(adapter.dispatch('drop_build_steps', 'cdp')()) }}
{%- endmacro %}

{% macro default__drop_build_steps() -%}
    {{ return('') }}
{%- endmacro %}

{% macro duckdb__drop_build_steps() -%}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- set prefix = build_step_prefix() -%}
    {%- set steps = run_query(
        "select 'view', view_name from duckdb_views() where temporary and starts_with(view_name, '" ~ prefix ~ "')"
        ~ " union all select 'table', table_name from duckdb_tables() where temporary"
        ~ " and starts_with(table_name, '" ~ prefix ~ "') order by 1 desc") -%}
    {%- set drops = [] -%}
    {%- for kind, relation in steps.rows -%}
        {%- do drops.append('drop ' ~ kind ~ ' if exists ' ~ relation ~ ';') -%}
    {%- endfor -%}
    {{ return(drops | join('\n')) }}
{%- endmacro %}
