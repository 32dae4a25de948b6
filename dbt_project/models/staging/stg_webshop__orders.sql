{{ config(on_schema_change='append_new_columns', **incremental_by_key('order_id')) }}

-- Latest delivered version of each order (status changes arrive as new versions).
select
    order_id, customer_id, guest_email, guest_phone, ordered_at, status, channel, currency,
    gross_amount, discount_amount, shipping_amount, net_amount, promo_code, referral_code, updated_at, _loaded_at,
    {{ this_build() }} as _invocation_id
from {{ source('raw', 'webshop_orders') }} as candidate
where
    {{ newly_loaded() }}
    and {{ not_older_than_current('order_id', 'updated_at') }}
qualify row_number() over (partition by order_id order by updated_at desc, _loaded_at desc) = 1
