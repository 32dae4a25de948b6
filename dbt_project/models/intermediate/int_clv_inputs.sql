-- Per customer with a purchase up to the run date: the purchase history the CLV models read, in days. The history
-- comes from int_customer_margins (purchase days, recomputed only for the customers a run touches); age_days, which
-- grows every night, is computed here set-wise for everyone. Built with the customer marts, after the checks on
-- customer_profile.
{{ config(tags=['customer_marts']) }}

select
    margins.customer_id,
    margins.purchase_days - 1 as frequency,
    {{ date_difference('day', 'margins.first_purchase_date', 'margins.last_purchase_date') }} as recency_days,
    {{ date_difference('day', 'margins.first_purchase_date', 'run.run_date') }} as age_days,
    -- mean value of the repeat purchase days (Gamma-Gamma's input), 0 without repeats
    case
        when margins.purchase_days > 1 then margins.repeat_amount / (margins.purchase_days - 1) else 0
    end as monetary_value,
    margins.revenue / margins.purchase_days as mean_purchase_value,
    margins.gross_margin_ratio,
    coalesce(profile.ticket_count, 0) / margins.purchases as tickets_per_purchase
from {{ ref('int_customer_margins') }} as margins
cross join {{ ref('int_run_date') }} as run
left join {{ ref('customer_profile') }} as profile on profile.customer_id = margins.customer_id
