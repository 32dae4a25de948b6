{#- Lists and structs: DuckDB's list functions and {'name': value} literals, Spark's arrays and named_struct. -#}

{#- The distinct non-null values of a column per group, sorted. -#}
{% macro sorted_distinct_list(expression) -%}
    {{ return(adapter.dispatch('sorted_distinct_list', 'cdp')(expression)) }}
{%- endmacro %}

{#- DuckDB: list(distinct ...) keeps each group's distinct values, where list() kept every row's (every order's
    channel per customer); list_distinct then drops a null. -#}
{% macro default__sorted_distinct_list(expression) -%}
    list_sort(list_distinct(list(distinct {{ expression }})))
{%- endmacro %}

{% macro spark__sorted_distinct_list(expression) -%}
    array_sort(array_distinct(collect_list({{ expression }})))
{%- endmacro %}

{#- An empty list of strings. -#}
{% macro empty_string_list() -%}
    {{ return(adapter.dispatch('empty_string_list', 'cdp')()) }}
{%- endmacro %}

{% macro default__empty_string_list() -%}
    cast([] as varchar[])
{%- endmacro %}

{% macro spark__empty_string_list() -%}
    cast(array() as array<string>)
{%- endmacro %}

{#- A struct of named fields: fields is a list of (name, expression) pairs, in field order. -#}
{% macro struct_of(fields) -%}
    {{ return(adapter.dispatch('struct_of', 'cdp')(fields)) }}
{%- endmacro %}

{% macro default__struct_of(fields) -%}
    { {%- for name, expression in fields %} '{{ name }}': {{ expression }}{{ "," if not loop.last }}{% endfor %} }
{%- endmacro %}

{% macro spark__struct_of(fields) -%}
    named_struct({%- for name, expression in fields %}'{{ name }}', {{ expression }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}
