-- Shown in Dagster as a check of customer_profile (a singular test with several refs needs to say which).
{{ config(meta={'dagster': {'ref': {'name': 'customer_profile'}}}) }}
-- Every resolved customer has exactly one profile row, and the profile invents no customers (records of no
-- person, customer_id null, have none).
select
    coalesce(identity_map.customer_id, profile.customer_id) as customer_id,
    identity_map.customer_id is null as only_in_profile
from (
    select distinct customer_id from {{ ref('int_identity_map') }}
    where customer_id is not null
) as identity_map
full outer join {{ ref('customer_profile') }} as profile on profile.customer_id = identity_map.customer_id
where identity_map.customer_id is null or profile.customer_id is null
