-- Per profile customer: the equity dimensions (segment, acquisition cohort, main channel, customer type) and
-- current, future and lifetime value (in the shop's currency):
--   net_value_to_date = margin of all purchases - tickets x `clv.cost_per_ticket` (undiscounted history);
--   current_value = the same over the last `equity.current_period_days` days before the run date;
--   future_value = net_clv (customer_clv); lifetime_value = net_value_to_date + future_value.
{%- set cost_per_ticket = setting('clv.cost_per_ticket') | float %}

with period as (
    select run_date, run_date - {{ setting('equity.current_period_days') | int }} as period_start
    from {{ ref('int_run_date') }}
),

current_margins as (
    select purchases.customer_id, sum(purchases.net_amount) as current_revenue, sum(purchases.margin) as current_margin
    from {{ ref('int_purchases') }} as purchases
    cross join period
    where purchases.order_date > period.period_start
    group by purchases.customer_id
),

-- Tickets opened in the current period (all tickets to date are customer_profile.ticket_count).
current_tickets as (
    select tickets.customer_id, count(*) as current_tickets
    from {{ ref('fct_tickets') }} as tickets
    cross join period
    where tickets.customer_id is not null and cast(tickets.created_at as date) > period.period_start
    group by tickets.customer_id
),

parts as (
    select
        profile.customer_id,
        period.run_date as as_of_date,
        coalesce(segments.primary_segment, 'unsegmented') as segment,
        case
            when profile.first_order_at is not null
                then concat(year(profile.first_order_at), '-Q', quarter(profile.first_order_at))
            else 'no_purchase'
        end as acquisition_cohort,
        coalesce(margins.main_channel, 'no_purchase') as channel,
        coalesce(profile.customer_type, 'unknown') as customer_type,
        coalesce(margins.revenue, 0) as revenue_to_date,
        coalesce(margins.margin, 0) as margin_to_date,
        coalesce(profile.ticket_count, 0) as tickets_to_date,
        coalesce(current_margins.current_revenue, 0) as current_revenue,
        coalesce(current_margins.current_margin, 0) as current_margin,
        coalesce(current_tickets.current_tickets, 0) as current_tickets,
        coalesce(clv.clv, 0) as clv,
        coalesce(clv.net_clv, 0) as future_value
    from {{ ref('customer_profile') }} as profile
    cross join period
    left join {{ ref('customer_segments') }} as segments on segments.customer_id = profile.customer_id
    left join {{ ref('int_customer_margins') }} as margins on margins.customer_id = profile.customer_id
    left join current_margins on current_margins.customer_id = profile.customer_id
    left join current_tickets on current_tickets.customer_id = profile.customer_id
    left join {{ ref('customer_clv') }} as clv on clv.customer_id = profile.customer_id
)

select
    customer_id,
    as_of_date,
    segment,
    acquisition_cohort,
    channel,
    customer_type,
    revenue_to_date,
    margin_to_date,
    tickets_to_date,
    margin_to_date - tickets_to_date * {{ cost_per_ticket }} as net_value_to_date,
    current_revenue,
    current_margin,
    current_tickets,
    current_margin - current_tickets * {{ cost_per_ticket }} as current_value,
    clv,
    future_value,
    margin_to_date - tickets_to_date * {{ cost_per_ticket }} + future_value as lifetime_value
from parts
