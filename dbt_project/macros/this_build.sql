{#- Rows written by this `dbt build`, so a nightly run's tests check what the night changed, not every row again.

    An incremental model marks each row it writes with the invocation (`{{ this_build() }} as _invocation_id`); a
    test on it narrows to those rows with the config `where: "_invocation_id = __this_build__"`. Enough for the
    checks of the rows themselves (not_null, accepted values, relationships to their parents) and for uniqueness of
    a key the model deletes and inserts by: the rows it keeps had that key checked when they were written, and a new
    row replaces every old one with its key, so a duplicate can only come within the rows of one build. A full build
    writes every row, so it checks them all; under `dbt test` (no build: the rows were written by another
    invocation) the filter is dropped and the test checks the whole table. -#}
{% macro this_build() -%}
    {{ sql_string(invocation_id) }}
{%- endmacro %}

{#- dbt's test filter (`where` config), with the placeholders resolved when the test runs: configs are rendered
    when dbt parses, and the parse is reused by later invocations (pipeline/defs/dbt/assets.py). `__this_build__` is
    this invocation, `__tested__` the tested relation: a Python model cannot stamp the invocation, but its rows can
    carry a stamp no older row exceeds, e.g. `staged_until = (select max(staged_until) from __tested__)`: at least
    the rows this build wrote. A filter with either holds under `dbt build` only. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') %}
    {%- if where and ('__this_build__' in where or '__tested__' in where) %}
        {%- if flags.WHICH == 'build' %}
            {%- set where = where | replace('__this_build__', this_build()) | replace('__tested__', relation) %}
        {%- else %}
            {%- set where = '' %}
        {%- endif %}
    {%- endif %}
    {%- if where %}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') as dbt_subquery') %}
    {%- else %}
        {%- do return(relation) %}
    {%- endif %}
{%- endmacro %}
