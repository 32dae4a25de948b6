-- Per customer with a purchase up to the run date: the purchase history the CLV models read, in days, computed
-- set-wise for everyone (T grows every night). Several orders on one calendar day are one purchase (amounts summed),
-- so an order split into checkouts is not read as repeat buying (pipeline/lib/clv.py). Built with the customer marts,
-- after the checks on customer_profile.
{{ config(tags=['customer_marts']) }}

with purchase_days as (
    select customer_id, order_date, sum(net_amount) as amount
    from {{ ref('int_purchases') }}
    group by customer_id, order_date
),

histories as (
    select
        purchase_days.customer_id,
        count(*) - 1 as frequency,
        {{ date_difference('day', 'min(purchase_days.order_date)', 'max(purchase_days.order_date)') }} as recency_days,
        {{ date_difference('day', 'min(purchase_days.order_date)', 'run.run_date') }} as age_days,
        sum(purchase_days.amount)
        - {{ ordered_first('purchase_days.amount', [('purchase_days.order_date', 'asc')]) }} as repeat_amount
    from purchase_days
    cross join {{ ref('int_run_date') }} as run
    group by purchase_days.customer_id, run.run_date
)

select
    histories.customer_id,
    histories.frequency,
    histories.recency_days,
    histories.age_days,
    -- mean value of the repeat purchase days (Gamma-Gamma's input), 0 without repeats
    case when histories.frequency > 0 then histories.repeat_amount / histories.frequency else 0 end as monetary_value,
    margins.revenue / (histories.frequency + 1) as mean_purchase_value,
    margins.gross_margin_ratio,
    coalesce(profile.ticket_count, 0) / margins.purchases as tickets_per_purchase
from histories
inner join {{ ref('int_customer_margins') }} as margins on margins.customer_id = histories.customer_id
left join {{ ref('customer_profile') }} as profile on profile.customer_id = histories.customer_id
