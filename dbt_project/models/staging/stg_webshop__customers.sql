{{ config(**incremental_by_key('customer_id')) }}

-- Latest delivered version of each webshop account.
select
    customer_id, email, phone, first_name, last_name, city, province, customer_type,
    marketing_opt_in, created_at, updated_at, _loaded_at
from {{ source('raw', 'webshop_customers') }} as candidate
where
    {{ newly_loaded() }}
    and {{ not_older_than_current('customer_id', 'updated_at') }}
qualify row_number() over (partition by customer_id order by updated_at desc, _loaded_at desc) = 1
