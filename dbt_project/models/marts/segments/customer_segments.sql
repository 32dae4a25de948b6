-- Customer-base types (flags; a customer can carry several), customer_type and one primary_segment per profile
-- customer, by the rules of the `segments` section of cdp.yaml (definitions in the YAML docs). The rule inputs stay
-- as columns so every flag can be explained.
{%- set rules = setting('segments') %}
{%- set flags = segment_flags() %}
{%- if execute and rules %}
    {%- for name in rules.precedence + rules.occasional.not_in if name not in flags %}
        {{ exceptions.raise_compiler_error("segments names unknown segment " ~ name ~ "; known: " ~ flags) }}
    {%- endfor %}
    {%- if 'occasional' in rules.occasional.not_in %}
        {{ exceptions.raise_compiler_error("segments.occasional.not_in cannot contain occasional itself") }}
    {%- endif %}
    {%- if rules.value.basis not in ('revenue', 'clv') %}
        {{ exceptions.raise_compiler_error("segments.value.basis must be revenue or clv, not " ~ rules.value.basis) }}
    {%- endif %}
{%- endif %}
{%- set quarter_days = setting('segments.loyal.quarter_days') | int %}

-- The per-customer behaviour comes from int_customer_traits, recomputed only for the customers a run touches; what
-- moves with the run date is computed here for everyone in one pass. Quarters (of segments.loyal.quarter_days,
-- counted back from the run date) with a purchase among the last four: from the last four quarters' orders only.
{%- set days_before_run = date_difference('day', 'orders.order_date', 'run.run_date') %}
with active_quarters as (
    select
        orders.customer_id,
        count(distinct {{ integer_divide(days_before_run, quarter_days) }}) as active_quarters
    from {{ ref('fct_orders') }} as orders
    cross join {{ ref('int_run_date') }} as run
    where
        orders.is_purchase and orders.customer_id is not null
        and orders.order_date > run.run_date - {{ 4 * quarter_days }} and orders.order_date <= run.run_date
    group by orders.customer_id
),

inputs as (
    select
        profile.customer_id,
        profile.customer_type,
        coalesce(profile.order_count, 0) > 0 as is_buyer,
        {{ date_difference('day', 'cast(profile.first_order_at as date)', 'run.run_date') }}
            as days_since_first_purchase,
        {{ date_difference('day', 'cast(profile.last_order_at as date)', 'run.run_date') }}
            as days_since_last_purchase,
        profile.order_count as purchases,
        case
            when profile.order_count > 0 then profile.discounted_order_count / profile.order_count else 0.0
        end as discounted_share,
        coalesce(active_quarters.active_quarters, 0) as active_quarters,
        {{ date_difference('minute', 'profile.first_seen_at', 'profile.first_order_at') }}
            as minutes_to_first_purchase,
        traits.contacts_before_first_purchase,
        greatest(profile.order_count - 1, 0) as repeat_purchases,
        -- discounted purchases after the first, per purchase after the first
        case
            when profile.order_count > 1
                then
                    (profile.discounted_order_count - cast(traits.first_purchase_discounted as int))
                    / (profile.order_count - 1)
            else 0.0
        end as discounted_repeat_share,
        profile.order_count,
        profile.has_account,
        profile.ticket_count,
        profile.latest_nps,
        profile.csat_avg,
        profile.is_promoter,
        profile.referral_count,
        {%- if rules and rules.value.basis == 'clv' %}
            -- customer_clv is joined below when the basis is clv
            clv.clv as value_basis,  -- noqa: RF01
        {%- else %}
            profile.revenue as value_basis,
        {%- endif %}
        run.run_date
    from {{ ref('customer_profile') }} as profile
    cross join {{ ref('int_run_date') }} as run
    inner join {{ ref('int_customer_traits') }} as traits on traits.customer_id = profile.customer_id
    left join active_quarters on active_quarters.customer_id = profile.customer_id
    {%- if rules and rules.value.basis == 'clv' %}
        left join {{ ref('customer_clv') }} as clv on clv.customer_id = profile.customer_id
    {%- endif %}
),

-- Percentile rank of the value among buyers: average rank over ties / buyers with a value. The average rank of a
-- tie is the mean of its first rank and its last (the count of values up to it). The windows are written out: Spark
-- cannot add a frame to a named window.
ranked as (
    select
        *,
        case
            when is_buyer and value_basis is not null then
                (
                    rank() over (partition by is_buyer and value_basis is not null order by value_basis)
                    + count(*) over (
                        partition by is_buyer and value_basis is not null order by value_basis
                        range between unbounded preceding and current row
                    )
                )
                / 2
                / count(*) over (partition by is_buyer and value_basis is not null)
        end as value_percentile
    from inputs
),

flagged as (
    select
        *,
        coalesce(
            is_buyer and days_since_first_purchase <= {{ setting('segments.new.max_days_since_first_purchase') | int }},
            false
        ) as new,
        coalesce(
            is_buyer
            and active_quarters >= {{ setting('segments.loyal.min_active_quarters') | int }}
            and days_since_first_purchase >= {{ setting('segments.loyal.min_tenure_days') | int }},
            false
        ) as loyal,
        coalesce(
            not is_buyer
            and (
                coalesce(has_account, false) or coalesce(ticket_count, 0) > 0 or latest_nps is not null
                or csat_avg is not null
            ),
            false
        ) as prospect,
        coalesce(value_percentile > 1 - {{ setting('segments.value.high_top_share') | float }}, false) as high_value,
        coalesce(value_percentile <= {{ setting('segments.value.low_bottom_share') | float }}, false) as low_value,
        coalesce(is_buyer and days_since_last_purchase > {{ setting('segments.lapsed.churn_days') | int }}, false)
            as lapsed,
        coalesce(
            purchases >= {{ setting('segments.promo_driven.min_purchases') | int }}
            and discounted_share >= {{ setting('segments.promo_driven.min_discounted_share') | float }},
            false
        ) as promo_driven,
        coalesce(
            is_buyer
            and minutes_to_first_purchase <= {{ setting('segments.impulsive.max_minutes_to_first_purchase') | int }}
            and contacts_before_first_purchase = 0
            and repeat_purchases >= {{ (setting('segments.impulsive.min_purchases') | int) - 1 }}
            and discounted_repeat_share <= {{ setting('segments.impulsive.max_discounted_repeat_share') | float }},
            false
        ) as impulsive,
        coalesce(
            (
                coalesce(is_promoter, false)
                and order_count >= {{ setting('segments.advocate.min_repeat_purchases') | int }}
            )
            or coalesce(referral_count, 0) >= {{ setting('segments.advocate.min_referrals') | int }},
            false
        ) as advocate
    from ranked
),

classified as (
    select
        *,
        is_buyer and not ({{ (rules.occasional.not_in if rules else ['false']) | join(' or ') }}) as occasional
    from flagged
)

select
    customer_id,
    customer_type,
    {%- for name in flags %}
        {{ name }},
    {%- endfor %}
    case
    {%- for name in (rules.precedence if rules else []) %}
        when {{ name }} then {{ sql_string(name) }}
        {%- endfor %}
        else {{ sql_string(rules.fallback_segment if rules else '') }}
    end as primary_segment,
    is_buyer,
    days_since_first_purchase,
    days_since_last_purchase,
    active_quarters,
    discounted_share,
    minutes_to_first_purchase,
    repeat_purchases,
    discounted_repeat_share,
    value_percentile,
    {{ sql_string(rules.rules_version if rules else '') }} as rules_version,
    run_date as as_of_date
from classified
