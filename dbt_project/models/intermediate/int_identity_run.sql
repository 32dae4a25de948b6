-- The run date of identity resolution: the var `identity_run_date` when given, else the latest event date in the
-- staged data (so a rerun on the same data is the same run, and its audit rows replace themselves).
select coalesce(
    {{ "'" ~ var('identity_run_date') ~ "'" if var('identity_run_date', none) else 'null' }}::date,
    (select max(day) from (
        select max(updated_at)::date as day from {{ ref('stg_webshop__customers') }}
        union all
        select max(updated_at)::date from {{ ref('stg_webshop__orders') }}
        union all
        select max(updated_at)::date from {{ ref('stg_helpdesk__tickets') }}
        union all
        select max(submitted_at)::date from {{ ref('stg_survey__responses') }}
    ))
) as run_date
