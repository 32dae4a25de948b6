{{ config(unique_key='order_id') }}

-- The lines of the latest delivered version of each order. Keyed by order: a re-delivered order replaces its whole
-- set of lines, so a line removed from the order disappears here too.
select
    order_id || '#' || line_no as order_line_id,
    order_id, line_no, sku, category, quantity, unit_price, unit_cost,
    _partition_date as delivered_on, _loaded_at
from {{ source('raw', 'webshop_order_items') }} as candidate
where
    {{ newly_loaded() }}
    and {{ not_older_than_current('order_id', 'delivered_on', candidate_version='candidate._partition_date') }}
qualify dense_rank() over (partition by order_id order by _partition_date desc, _loaded_at desc) = 1
