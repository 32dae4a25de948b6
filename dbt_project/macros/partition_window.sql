{#- Rows of raw partitions inside the run's window; a full (non-incremental) build reads every partition. -#}
{% macro partition_window(column='_partition_date') -%}
    {% if is_incremental() -%}
        {{ column }} >= '{{ var("min_date") }}'::date and {{ column }} < '{{ var("max_date") }}'::date
    {%- else -%}
        true
    {%- endif %}
{%- endmacro %}

{#- Keep a staged version only if the model does not already hold a newer one (backfilling an old window must not
    overwrite a newer version landed by a later partition). -#}
{% macro not_older_than_current(key, version_column, candidate_key=none, candidate_version=none) -%}
    {% if is_incremental() -%}
        not exists (
            select 1 from {{ this }} as current_rows
            where current_rows.{{ key }} = {{ candidate_key or 'candidate.' ~ key }}
              and current_rows.{{ version_column }} > {{ candidate_version or 'candidate.' ~ version_column }}
        )
    {%- else -%}
        true
    {%- endif %}
{%- endmacro %}
