-- Per customer with purchases up to the run date: purchases, revenue (net_amount), margin and
-- gross_margin_ratio = margin / net_amount over the purchases with item costs (`clv.default_gross_margin` when
-- the customer has none). CLV applies the ratio to predicted order values.
select
    customer_id,
    count(*) as purchases,
    sum(net_amount) as revenue,
    sum(margin) as margin,
    case
        when sum(net_amount) filter (where is_costed) > 0
            then sum(margin) filter (where is_costed) / sum(net_amount) filter (where is_costed)
        else {{ setting('clv.default_gross_margin') | float }}
    end as gross_margin_ratio
from {{ ref('int_purchases') }}
group by customer_id
