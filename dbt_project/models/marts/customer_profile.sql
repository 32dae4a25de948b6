-- The golden record: one row per resolved customer (int_customer_traits, where the survivorship rules and traits
-- live) with the fields that move with the run date, recomputed set-wise for everyone on every run. Everything is
-- "as of" the run date (int_run_date).
select
    traits.customer_id,
    traits.full_name,
    traits.email,
    traits.phone,
    traits.city,
    traits.province,
    traits.customer_type,
    traits.marketing_consent,
    traits.has_account,
    traits.first_order_at,
    traits.last_order_at,
    traits.order_count,
    traits.revenue,
    traits.discount_total,
    traits.refund_total,
    traits.discounted_order_count,
    traits.avg_order_value,
    traits.channels,
    traits.ticket_count,
    traits.open_ticket_count,
    traits.median_resolution_hours,
    traits.csat_avg,
    traits.latest_nps,
    traits.is_promoter,
    traits.is_detractor,
    traits.referral_count,
    traits.first_seen_at,
    traits.last_activity_at,
    {{ date_difference('day', 'cast(traits.last_activity_at as date)', 'run.run_date') }} as days_since_last_activity,
    run.run_date as as_of_date
from {{ ref('int_customer_traits') }} as traits
cross join {{ ref('int_run_date') }} as run
