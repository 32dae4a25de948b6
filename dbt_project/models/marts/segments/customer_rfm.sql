-- RFM scores of every purchasing customer: recency (days since the last purchase, fewer = higher score),
-- frequency (purchases) and monetary (revenue) as quintiles 1-5, ties broken by customer_id so the same data
-- always gives the same scores; the named segment comes from the grid in `segments.rfm.grid`.
{%- set grid = setting('segments.rfm.grid') %}
{%- if execute and grid %}{{ check_rfm_grid(grid) }}{% endif %}

with buyers as (
    select
        profile.customer_id,
        {{ date_difference('day', 'cast(profile.last_order_at as date)', 'run.run_date') }} as recency_days,
        profile.order_count as frequency,
        coalesce(profile.revenue, 0) as monetary,
        run.run_date
    from {{ ref('customer_profile') }} as profile
    cross join {{ ref('int_run_date') }} as run
    where coalesce(profile.order_count, 0) > 0
),

scored as (
    select
        *,
        ntile(5) over (order by recency_days desc, customer_id asc) as r_score,
        ntile(5) over (order by frequency, customer_id) as f_score,
        ntile(5) over (order by monetary, customer_id) as m_score
    from buyers
)

select
    customer_id,
    recency_days,
    frequency,
    monetary,
    r_score,
    f_score,
    m_score,
    concat(r_score, f_score, m_score) as rfm_code,
    {#- The grid is none only while dbt parses (and sqlfluff lints): setting() needs the run's vars. #}
    {%- if grid %}
        case
        {%- for entry in grid %}
            when r_score between {{ entry.r[0] | int }} and {{ entry.r[1] | int }}
                and f_score between {{ entry.f[0] | int }} and {{ entry.f[1] | int }}
                then {{ sql_string(entry.name) }}
        {%- endfor %}
        end
    {%- else %}
        cast(null as varchar)
    {%- endif %} as rfm_segment,
    run_date as as_of_date
from scored
