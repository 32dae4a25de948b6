{#- The value of the first row of each group in an order (an ordered first()), among the rows where `where` holds;
    null when no row does. order_by: (expression, 'asc' | 'desc') pairs; nulls sort last, as DuckDB's default.
    On DuckDB: the value of the row with the smallest sort key (arg_min_null, which keeps a null value, over
    create_sort_key), which holds one row per group where first(... order by ...) buffers all the group's rows.
    Spark has no ordered aggregate (and max_by/min_by take one key in one direction), so it sorts each group's rows
    with a comparator and takes the first. -#}
{% macro ordered_first(value, order_by, where=none) -%}
    {{ return(adapter.dispatch('ordered_first', 'cdp')(value, order_by, where)) }}
{%- endmacro %}

{% macro default__ordered_first(value, order_by, where) -%}
    {%- set keys = [] -%}
    {%- for expression, direction in order_by -%}
        {%- do keys.append(expression ~ ", '" ~ direction | upper ~ " NULLS LAST'") -%}
    {%- endfor -%}
    arg_min_null({{ value }}, create_sort_key({{ keys | join(', ') }})){% if where %} filter (where {{ where }}){% endif %}
{%- endmacro %}

{% macro spark__ordered_first(value, order_by, where) -%}
    {%- set keys = [] -%}
    {%- for expression, _ in order_by -%}
        {%- do keys.append("'k" ~ loop.index ~ "', " ~ expression) -%}
    {%- endfor -%}
    {%- set comparisons = [] -%}
    {%- for _, direction in order_by -%}
        {%- set key = 'k' ~ loop.index -%}
        {%- set before = -1 if direction | lower == 'asc' else 1 -%}
        {%- do comparisons.append(
            'when l.' ~ key ~ ' is null and r.' ~ key ~ ' is not null then 1 '
            ~ 'when l.' ~ key ~ ' is not null and r.' ~ key ~ ' is null then -1 '
            ~ 'when l.' ~ key ~ ' < r.' ~ key ~ ' then ' ~ before ~ ' '
            ~ 'when l.' ~ key ~ ' > r.' ~ key ~ ' then ' ~ (-before)) -%}
    {%- endfor -%}
    {%- set filtered = ' filter (where ' ~ where ~ ')' if where else '' %}
    try_element_at(array_sort(
        collect_list(named_struct('value', {{ value }}, {{ keys | join(', ') }})){{ filtered }},
        (l, r) -> case {{ comparisons | join(' ') }} else 0 end
    ), 1).value
{%- endmacro %}
