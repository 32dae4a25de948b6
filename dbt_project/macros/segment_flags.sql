{#- The customer-base type flags of customer_segments, in column order (precedence is configured separately). -#}
{% macro segment_flags() -%}
    {{ return(['new', 'loyal', 'prospect', 'high_value', 'low_value', 'lapsed', 'occasional', 'promo_driven',
               'impulsive', 'advocate']) }}
{%- endmacro %}
