-- Purchases (status paid, shipped or completed) of identified customers up to the run date, with the margin each
-- order leaves: net_amount - shipping - cost of goods when every line has a cost, else net_amount x
-- `clv.default_gross_margin`. net_amount is already after discounts and refunded orders are not purchases, so
-- neither is subtracted a second time. A view: its readers take the customers or days they need from fct_orders
-- (a nightly run reads the day's customers, not every purchase again).
{{ config(materialized='view') }}

select
    orders.order_id,
    orders.customer_id,
    orders.ordered_at,
    orders.order_date,
    orders.channel,
    orders.net_amount,
    orders.cost_amount is not null as is_costed,
    case
        when orders.cost_amount is not null
            then orders.net_amount - coalesce(orders.shipping_amount, 0) - orders.cost_amount
        else orders.net_amount * {{ setting('clv.default_gross_margin') | float }}
    end as margin,
    orders._invocation_id
from {{ ref('fct_orders') }} as orders
cross join {{ ref('int_run_date') }} as run
where orders.is_purchase and orders.customer_id is not null and orders.order_date <= run.run_date
