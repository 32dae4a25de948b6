-- first_seen_at <= first order <= last order <= last_activity_at, and nothing happens after the as-of date.
select customer_id, first_seen_at, first_order_at, last_order_at, last_activity_at, as_of_date
from {{ ref('customer_profile') }}
where
    first_seen_at > last_activity_at
    or first_order_at < first_seen_at
    or last_order_at > last_activity_at
    or first_order_at > last_order_at
    or days_since_last_activity < 0
