{#- A configuration value as a quoted SQL string literal (quotes doubled), e.g. the segment name "Can't Lose". -#}
{% macro sql_string(value) -%}
    '{{ (value | string) | replace("'", "''") }}'
{%- endmacro %}
