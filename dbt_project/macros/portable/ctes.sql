{#- A CTE that DuckDB inlines into each query that reads it instead of materialising it (DuckDB materialises a CTE
    read more than once, and holds it in memory until the statement ends): for a large CTE that is cheap to read
    again. Spark never materialises a CTE and has no such hint. -#}
{% macro not_materialized() -%}
    {{ return(adapter.dispatch('not_materialized', 'cdp')()) }}
{%- endmacro %}

{% macro default__not_materialized() -%}
    not materialized
{%- endmacro %}

{% macro spark__not_materialized() -%}
{%- endmacro %}
