{#- Raw rows landed since this model last ran, whatever dates they cover (one night, a backfilled range, a late
    survey file): the watermark is the newest load time already staged. Warehouse writers are serialised (one DuckDB
    writer process, one writing run at a time), so load times only grow. A full build reads everything. -#}
{% macro newly_loaded() -%}
    {% if is_incremental() -%}
        candidate._loaded_at > (select coalesce(max(_loaded_at), {{ earliest_timestamp() }}) from {{ this }})
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
