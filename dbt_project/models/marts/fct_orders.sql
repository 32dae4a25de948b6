-- One row per order (latest version) with the resolved customer and the money a profile needs. Incremental: a nightly
-- run rebuilds only the orders staged since the last run or resolved to another customer (refreshed_records), so it
-- costs what the day brings; a full build takes every order.
{{ config(on_schema_change='append_new_columns', **incremental_by_key('order_id')) }}

with
{%- if is_incremental() %}
    refreshed as (
        {{ refreshed_records('webshop_order', 'order_id', ['stg_webshop__orders', 'stg_webshop__order_items']) }}
    ),

    orders as (
        select * from {{ ref('stg_webshop__orders') }}
        where order_id in (select refreshed.order_id from refreshed)
    ),

    items as (
        select * from {{ ref('stg_webshop__order_items') }}
        where order_id in (select refreshed.order_id from refreshed)
    ),

    -- (only the refreshed orders' rows: joined whole, the map would be hashed whole every night)
    identity_map as (
        select record_id, customer_id, resolution from {{ ref('int_identity_map') }}
        where source = 'webshop_order' and record_id in (select refreshed.order_id from refreshed)
    ),
{%- else %}
    orders as (
        select * from {{ ref('stg_webshop__orders') }}
    ),

    items as (
        select * from {{ ref('stg_webshop__order_items') }}
    ),

    identity_map as (
        select record_id, customer_id, resolution from {{ ref('int_identity_map') }}
        where source = 'webshop_order'
    ),
{%- endif %}

order_costs as (
    select
        order_id,
        sum(quantity * unit_cost) as line_cost,
        -- A cost is only meaningful when every line has one; a partial sum would overstate the margin.
        bool_and(unit_cost is not null) as every_line_costed,
        max(_loaded_at) as loaded_at
    from items
    group by order_id
)

select
    orders.order_id,
    identity_map.customer_id,
    orders.ordered_at,
    cast(orders.ordered_at as date) as order_date,
    orders.status,
    orders.channel,
    orders.gross_amount,
    orders.discount_amount,
    orders.shipping_amount,
    orders.net_amount,
    case when order_costs.every_line_costed then order_costs.line_cost end as cost_amount,
    case when orders.status = 'refunded' then orders.net_amount else 0 end as refund_amount,
    orders.promo_code,
    orders.referral_code,
    coalesce(orders.discount_amount, 0) > 0 or orders.promo_code is not null as is_discounted,
    orders.status in ('paid', 'shipped', 'completed') as is_purchase,
    greatest(orders._loaded_at, order_costs.loaded_at) as _loaded_at,
    identity_map.resolution as _resolution,
    {{ this_build() }} as _invocation_id
from orders
left join identity_map on identity_map.record_id = orders.order_id
left join order_costs on order_costs.order_id = orders.order_id
