{#- Date and time arithmetic with DuckDB's date_diff semantics: the number of `part` boundaries (day, minute,
    second) crossed from start to end. Spark's timestampdiff counts whole elapsed units instead, so Spark spells
    each part out. -#}
{% macro date_difference(part, start, end) -%}
    {{ return(adapter.dispatch('date_difference', 'cdp')(part, start, end)) }}
{%- endmacro %}

{% macro default__date_difference(part, start, end) -%}
    date_diff('{{ part }}', {{ start }}, {{ end }})
{%- endmacro %}

{#- Wall-clock arithmetic (days, then the time of day), so that naive timestamps stay naive: no time zone and no
    daylight-saving shift enters, as in DuckDB. -#}
{% macro spark__date_difference(part, start, end) -%}
    {%- set days = 'datediff(cast(' ~ end ~ ' as date), cast(' ~ start ~ ' as date))' -%}
    {%- if part == 'day' -%}
        {{ days }}
    {%- elif part == 'minute' -%}
        ({{ days }} * 1440 + hour({{ end }}) * 60 + minute({{ end }}) - hour({{ start }}) * 60 - minute({{ start }}))
    {%- elif part == 'second' -%}
        ({{ days }} * 86400 + hour({{ end }}) * 3600 + minute({{ end }}) * 60 + second({{ end }})
        - hour({{ start }}) * 3600 - minute({{ start }}) * 60 - second({{ start }}))
    {%- else -%}
        {{ exceptions.raise_compiler_error("date_difference: no Spark spelling for part " ~ part) }}
    {%- endif -%}
{%- endmacro %}

{#- Integer division of non-negative integers (DuckDB's //, Spark's div). -#}
{% macro integer_divide(dividend, divisor) -%}
    {{ return(adapter.dispatch('integer_divide', 'cdp')(dividend, divisor)) }}
{%- endmacro %}

{% macro default__integer_divide(dividend, divisor) -%}
    {{ dividend }} // {{ divisor }}
{%- endmacro %}

{% macro spark__integer_divide(dividend, divisor) -%}
    {{ dividend }} div {{ divisor }}
{%- endmacro %}

{#- A timestamp before every load time: the watermark of a model that has loaded nothing yet. -#}
{% macro earliest_timestamp() -%}
    {{ return(adapter.dispatch('earliest_timestamp', 'cdp')()) }}
{%- endmacro %}

{% macro default__earliest_timestamp() -%}
    '-infinity'::timestamp
{%- endmacro %}

{% macro spark__earliest_timestamp() -%}
    timestamp '0001-01-01 00:00:00'
{%- endmacro %}
