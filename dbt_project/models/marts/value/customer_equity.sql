-- Customer equity in long form: the sum of current, future and lifetime value (customer_value) over the whole
-- base (dimension 'overall', value 'all') and per value of each dimension.
{%- set dimensions = ['segment', 'acquisition_cohort', 'channel', 'customer_type'] %}

with labelled as (
    select *, 'all' as overall from {{ ref('customer_value') }}
)

{%- for dimension in ['overall'] + dimensions %}

    select
        as_of_date,
        '{{ dimension }}' as dimension,
        {{ dimension }} as dimension_value,
        count(*) as customers,
        sum(current_value) as current_value,
        sum(future_value) as future_value,
        sum(lifetime_value) as lifetime_value
    from labelled
    group by as_of_date, {{ dimension }}
    {{ "union all" if not loop.last }}
{%- endfor %}
