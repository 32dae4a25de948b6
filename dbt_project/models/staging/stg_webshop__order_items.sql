{{ config(unique_key='order_line_id') }}

-- Lines of the latest delivered version of each order.
select
    order_id || '#' || line_no as order_line_id,
    order_id, line_no, sku, category, quantity, unit_price, unit_cost,
    _partition_date as delivered_on, _loaded_at
from {{ source('raw', 'webshop_order_items') }} as candidate
where {{ newly_loaded() }}
  and {{ not_older_than_current('order_line_id', 'delivered_on', "candidate.order_id || '#' || candidate.line_no", 'candidate._partition_date') }}
qualify row_number() over (partition by order_id, line_no order by _partition_date desc, _loaded_at desc) = 1
