-- Customers moving between primary segments from one snapshot date to the next. A customer missing from one side
-- of a pair (new to the base, or merged away) appears there as '(none)'; rows with from = to count the stayers.
-- Incremental by to_date: a run computes only the pairs its snapshot date (the run date) is part of, so a nightly run
-- appends one pair whatever the length of the history. A backfilled date between two others replaces the pair that
-- spanned it (same to_date) by the two pairs around it; a full build computes every pair.
{{ config(**incremental_by_key('to_date')) }}
-- depends_on: {{ ref('int_run_date') }}

with dates as (
    select distinct snapshot_date from {{ ref('customer_segment_history') }}
),

pairs as (
    select snapshot_date as from_date, lead(snapshot_date) over (order by snapshot_date) as to_date
    from dates
    qualify
        to_date is not null
        {%- if is_incremental() %}
            and (select run.run_date from {{ ref('int_run_date') }} as run) in (from_date, to_date)
        {%- endif %}
),

before as (
    select pairs.from_date, pairs.to_date, history.customer_id, history.primary_segment as from_segment
    from pairs
    inner join {{ ref('customer_segment_history') }} as history on history.snapshot_date = pairs.from_date
),

after as (
    select pairs.from_date, pairs.to_date, history.customer_id, history.primary_segment as to_segment
    from pairs
    inner join {{ ref('customer_segment_history') }} as history on history.snapshot_date = pairs.to_date
)

select
    coalesce(before.from_date, after.from_date) as from_date,
    coalesce(before.to_date, after.to_date) as to_date,
    coalesce(before.from_segment, '(none)') as from_segment,
    coalesce(after.to_segment, '(none)') as to_segment,
    count(*) as customers
from before
full join after
    on before.from_date = after.from_date and before.to_date = after.to_date and before.customer_id = after.customer_id
group by all
