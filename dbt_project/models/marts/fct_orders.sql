-- One row per order (latest version) with the resolved customer and the money a profile needs.
with order_costs as (
    select
        order_id,
        sum(quantity * unit_cost) as line_cost,
        -- A cost is only meaningful when every line has one; a partial sum would overstate the margin.
        bool_and(unit_cost is not null) as every_line_costed
    from {{ ref('stg_webshop__order_items') }}
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
    orders.status in ('paid', 'shipped', 'completed') as is_purchase
from {{ ref('stg_webshop__orders') }} as orders
left join {{ ref('int_identity_map') }} as identity_map
    on identity_map.source = 'webshop_order' and identity_map.record_id = orders.order_id
left join order_costs on order_costs.order_id = orders.order_id
