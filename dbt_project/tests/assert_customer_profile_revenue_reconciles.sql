-- Shown in Dagster as a check of customer_profile (a singular test with several refs needs to say which).
{{ config(meta={'dagster': {'ref': {'name': 'customer_profile'}}}) }}
-- Profile purchase totals must add up to the orders of persons in fct_orders exactly (to the rupiah): no purchase
-- lost or counted twice. Orders of no person (customer_id null: no customer, no contact) belong to no profile.
with profile as (
    select sum(revenue) as revenue, sum(order_count) as order_count, sum(refund_total) as refund_total
    from {{ ref('customer_profile') }}
),

orders as (
    select
        coalesce(sum(net_amount) filter (where is_purchase), 0) as revenue,
        count(*) filter (where is_purchase) as order_count,
        coalesce(sum(refund_amount), 0) as refund_total
    from {{ ref('fct_orders') }}
    where customer_id is not null
)

select
    profile.*, orders.revenue as orders_revenue, orders.order_count as orders_order_count,
    orders.refund_total as orders_refund_total
from profile cross join orders
where
    abs(profile.revenue - orders.revenue) >= 0.5
    or profile.order_count <> orders.order_count
    or abs(profile.refund_total - orders.refund_total) >= 0.5
