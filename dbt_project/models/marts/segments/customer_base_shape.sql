-- One row describing the customer base: how concentrated buyers' revenue is (Lorenz curve of revenue clipped at
-- 0: top 10 % / 20 % shares, Gini) and how many customers carry each segment flag. The base is "tall" when the
-- top 20 % of buyers hold at least `segments.base_shape.tall_min_top20_share` of the revenue, else "broad".
{%- set threshold = setting('segments.base_shape.tall_min_top20_share') | float %}
{%- set flags = segment_flags() %}

with buyers as (
    select greatest(coalesce(revenue, 0), 0) as clipped, coalesce(revenue, 0) as revenue
    from {{ ref('customer_profile') }}
    where coalesce(order_count, 0) > 0
),

ordered as (
    select clipped, row_number() over (order by clipped) as i, count(*) over () as n, sum(clipped) over () as total
    from buyers
),

-- Cumulative revenue share of the i lowest buyers (the Lorenz curve at i / n).
lorenz as (
    select
        *,
        sum(clipped) over (order by i rows between unbounded preceding and current row) / nullif(total, 0) as share
    from ordered
),

-- The curve at a customer share q: linear between the points i / n (what np.interp does).
curve_at as (
    select
        q.quantile,
        coalesce(max(lorenz.share) filter (where lorenz.i <= floor(q.quantile * lorenz.n)), 0)
        + (q.quantile * max(lorenz.n) - floor(q.quantile * max(lorenz.n)))
        * coalesce(min(lorenz.clipped / lorenz.total) filter (where lorenz.i = floor(q.quantile * lorenz.n) + 1), 0)
            as share
    from lorenz
    cross join (values (0.8), (0.9)) as q (quantile)
    where lorenz.total > 0
    group by q.quantile
),

concentration as (
    select
        1 - max(curve_at.share) filter (where curve_at.quantile = 0.9) as top10_share,
        1 - max(curve_at.share) filter (where curve_at.quantile = 0.8) as top20_share
    from curve_at
),

-- Gini = 1 - 2 x the area under the Lorenz curve (trapezoids over equal customer steps).
gini as (
    select 1 - (2 * sum(lorenz.share) - 1) / max(lorenz.n) as gini
    from lorenz
    where lorenz.total > 0
),

buyer_totals as (
    select
        count(*) as buyers,
        cast(coalesce(sum(buyers.revenue), 0) as double) as revenue
    from buyers
),

profile_counts as (
    select
        run.run_date as as_of_date,
        count(profile.customer_id) as customers
    from {{ ref('int_run_date') }} as run
    left join {{ ref('customer_profile') }} as profile on true
    group by run.run_date
),

flag_counts as (
    select
        {%- for name in flags %}
            count(*) filter (where {{ name }}) as {{ name }}_customers,
        {%- endfor %}
        count(*) as segmented_customers
    from {{ ref('customer_segments') }}
)

select
    profile_counts.as_of_date,
    profile_counts.customers,
    buyer_totals.buyers,
    buyer_totals.revenue,
    concentration.top10_share,
    concentration.top20_share,
    gini.gini,
    case
        when concentration.top20_share >= {{ threshold }} then 'tall'
        when concentration.top20_share is not null then 'broad'
    end as shape,
    cast({{ threshold }} as double) as tall_min_top20_share,
    {%- for name in flags %}
        flag_counts.{{ name }}_customers,
    {%- endfor %}
    {{ sql_string(setting('segments.rules_version')) }} as rules_version
from profile_counts
cross join buyer_totals
cross join concentration
cross join gini
cross join flag_counts
