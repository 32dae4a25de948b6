{#-
    Post-hook of the incremental Python identity models (delete+insert by record, or by profile for the matcher's
    decisions). A model returns one tombstone row per key whose rows must go without replacement (a record built
    again that now yields none, every old key on a rebuild): its key and a null `marker`, a column never null in a
    real row. dbt deletes the rows of every returned key and inserts the returned rows; this hook, run in the same
    transaction, deletes the tombstones, so a failed or killed run leaves the table as it was.
-#}
{% macro delete_identity_tombstones(marker) -%}
    delete from {{ this }} where {{ adapter.quote(marker) }} is null
{%- endmacro %}
