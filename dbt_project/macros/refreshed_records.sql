{#- The keys of the records an incremental fact table rebuilds on this run (config: incremental_by_key(key)): those
    staged since it last ran (a newer version, or a late order line for its order) and those that identity now
    resolves to another customer than the table holds (a merge, a split, a record that gained or lost its person).
    `staged_models` are the staging models whose rows belong to the record, each keyed by `key`. The watermarks are
    the newest `_loaded_at` the table holds and the newest identity resolution (`_resolution`, the record's
    int_identity_map.resolution when its row was written): only records identity resolved again since can have
    changed customer, so a nightly run compares the day's few, not every record. A full build (or Spark, which
    rebuilds the table) takes every record. -#}
{% macro refreshed_records(identity_source, key, staged_models) -%}
    {%- set watermark -%}
        (select coalesce(max(_loaded_at), {{ earliest_timestamp() }}) from {{ this }})
    {%- endset %}
    {%- for staged_model in staged_models %}
        select {{ key }} from {{ ref(staged_model) }} where _loaded_at > {{ watermark }}
        union
    {%- endfor %}
    select resolved.record_id
    from {{ ref('int_identity_map') }} as resolved
    inner join {{ this }} as current_rows on current_rows.{{ key }} = resolved.record_id
    where
        resolved.source = {{ sql_string(identity_source) }}
        and resolved.resolution > {{ settled_resolution(this, '_resolution') }}
        and resolved.customer_id is distinct from current_rows.customer_id
{%- endmacro %}
