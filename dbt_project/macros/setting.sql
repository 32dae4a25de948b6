{#- One value of the pipeline configuration, passed in by the Dagster run as dbt vars (`--vars`, one var per
    cdp.yaml section): setting('segments.new.max_days_since_first_purchase'). dbt never reads cdp.yaml itself.
    While parsing, vars are not needed and this returns none; at run time a missing key is an error naming it. -#}
{% macro setting(path) -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set parts = path.split('.') -%}
    {#- a namespace: a plain set inside the loop would not outlive it -#}
    {%- set found = namespace(value=var(parts[0], none)) -%}
    {%- for part in parts[1:] -%}
        {%- if found.value is mapping and part in found.value -%}
            {%- set found.value = found.value[part] -%}
        {%- else -%}
            {%- set found.value = none -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if found.value is none -%}
        {{ exceptions.raise_compiler_error(
            "setting " ~ path ~ " is missing: pass the cdp.yaml section " ~ parts[0] ~ " as a dbt var") }}
    {%- endif -%}
    {{ return(found.value) }}
{%- endmacro %}
