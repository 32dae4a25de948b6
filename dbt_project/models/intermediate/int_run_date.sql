-- The run date every model measures against: the run's last daily partition, which the Dagster run writes to the
-- one-row table named by the var `run_context` (not a var itself: a var that changes every night makes dbt parse the
-- whole project again; pipeline/defs/dbt/assets.py), or the var `run_date` (tests, Spark). Without either (dbt run
-- by hand), or outside the partitions, the latest staged event date stands in, but never a day after today in the
-- shop's time zone, so a future-dated record cannot move it. It always depends on staging, so it is built after the
-- run's staged data.
{#- a quoted literal (quotes doubled), cast to a date: anything but a date fails the build -#}
{%- set run_date = var('run_date', none) %}
{%- set run_context = var('run_context', none) %}

with latest_event as (
    select least(cast(max(latest) as date), current_date) as event_date
    from (
        select max(greatest(ordered_at, updated_at)) as latest from {{ ref('stg_webshop__orders') }}
        union all
        select max(greatest(created_at, updated_at)) from {{ ref('stg_webshop__customers') }}
        union all
        select max(greatest(created_at, updated_at, solved_at)) from {{ ref('stg_helpdesk__tickets') }}
        union all
        select max(submitted_at) from {{ ref('stg_survey__responses') }}
    ) as latest_per_source
)

select
    {%- if run_date %}
        cast({{ sql_string(run_date) }} as date) as run_date
    {%- elif run_context %}
        coalesce((select context.run_date from {{ run_context }} as context), event_date) as run_date
    {%- else %}
        event_date as run_date
    {%- endif %}
from latest_event
