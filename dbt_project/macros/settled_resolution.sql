{#-
    The newest `resolution` a model's own table already holds (0 when the table is missing, empty or has no such
    column): a nightly identity step redoes only rows of int_identity_links resolved after it, and a model downstream
    of identity (`column` its copy of int_identity_map.resolution) looks only at records resolved after it.
-#}
{% macro settled_resolution(relation, column='resolution') %}
    {%- if not execute -%}
        {{ return(0) }}
    {%- endif -%}
    {%- set existing = adapter.get_relation(relation.database, relation.schema, relation.identifier) -%}
    {%- set columns = adapter.get_columns_in_relation(existing) | map(attribute='name') | list if existing else [] -%}
    {%- if column not in columns -%}
        {{ return(0) }}
    {%- endif -%}
    {%- set newest = run_query('select coalesce(max(' ~ adapter.quote(column) ~ '), 0) from ' ~ existing) -%}
    {{ return(newest.columns[0].values()[0]) }}
{% endmacro %}
