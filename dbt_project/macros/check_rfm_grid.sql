{#- Fail the build when the RFM grid (segments.rfm.grid) leaves some (r, f) score cell without a name. -#}
{% macro check_rfm_grid(grid) -%}
    {%- set missing = [] -%}
    {%- for r in range(1, 6) -%}
        {%- for f in range(1, 6) -%}
            {%- set named = [] -%}
            {%- for entry in grid if entry.r[0] <= r <= entry.r[1] and entry.f[0] <= f <= entry.f[1] -%}
                {%- do named.append(entry.name) -%}
            {%- endfor -%}
            {%- if not named -%}{%- do missing.append((r, f)) -%}{%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if missing -%}
        {{ exceptions.raise_compiler_error("segments.rfm.grid leaves (r, f) cells unnamed: " ~ missing) }}
    {%- endif -%}
{%- endmacro %}
