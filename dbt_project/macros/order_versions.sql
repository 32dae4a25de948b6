{#- The latest landed version of each order among `order_ids` (a query returning order_id; none = every order): its
    partition day (the day its lines were landed with) and load time. Latest as in stg_webshop__orders: updated_at,
    then load time. -#}
{% macro latest_order_versions(order_ids) -%}
    select order_id, _partition_date, _loaded_at
    from {{ source('raw', 'webshop_orders') }}
    {% if order_ids is not none -%}
    where order_id in ({{ order_ids }})
    {% endif -%}
    qualify row_number() over (partition by order_id order by updated_at desc, _loaded_at desc) = 1
{%- endmacro %}

{#- An order delivered again replaces its whole set of lines, also by no line at all: before an incremental build of
    stg_webshop__order_items, the lines of every order whose latest version landed since the last build go (the
    build then inserts the lines that version came with, if any). An older version landed later (a backfill) keeps
    the newer version's lines. -#}
{% macro remove_lines_of_redelivered_orders() -%}
    {% if is_incremental() -%}
        {%- set watermark = "(select coalesce(max(_loaded_at), " ~ earliest_timestamp() ~ ") from " ~ this ~ ")" -%}
        delete from {{ this }} where order_id in (
            select order_id from (
                {{ latest_order_versions(
                    "select order_id from " ~ source('raw', 'webshop_orders') ~ " where _loaded_at > " ~ watermark
                ) }}
            ) as redelivered
            where _loaded_at > {{ watermark }}
        )
    {%- endif %}
{%- endmacro %}
