-- Per customer with purchases up to the run date: the purchase totals that do not move with the run date. Money:
-- purchases, revenue (net_amount), margin and gross_margin_ratio = margin / net_amount over the purchases with item
-- costs (`clv.default_gross_margin` when the customer has none); CLV applies the ratio to predicted order values.
-- History in purchase days (several orders of one calendar day are one purchase, amounts summed, so an order split
-- into checkouts is not read as repeat buying): first and last purchase day, repeat days and their amount. And the
-- channel the customer bought through most often (ties: the most recently used, then by name).
--
-- Incremental: a nightly run recomputes only the customers whose purchases up to the run date can have changed, so
-- it costs what the day brings: the customers int_customer_traits recomputed on this run (new or changed records,
-- merges and splits), those with a purchase dated after the run date this table was last computed for (the run date
-- moved past it) and the rows another version of this file or of its settings wrote. A run date before the last
-- one recomputes everyone, as a full build does. Rows of customers that are gone or have no purchase up to the run
-- date any more are deleted by the post-hook. The leading-underscore columns are the model's state.
-- depends_on: {{ ref('int_customer_traits') }}
{%- set version = (model.checksum.checksum if execute else '') ~ ':' ~ setting('clv.default_gross_margin') %}
{{ config(
    on_schema_change='append_new_columns',
    post_hook="{% if is_incremental() %}delete from {{ this }} where purchases = 0
        or customer_id not in (select customer_id from {{ ref('int_customer_traits') }}){% endif %}",
    **incremental_by_key('customer_id')
) }}
{%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list if is_incremental() else [] %}

with
{%- if '_model_version' in columns %}
    previous as (
        select max(_as_of) as as_of from {{ this }}
    ),

    refreshed as (
        select traits.customer_id
        from {{ ref('int_customer_traits') }} as traits
        where
            traits._loaded_through
            = (select max(latest._loaded_through) from {{ ref('int_customer_traits') }} as latest)
        union
        select current_rows.customer_id
        from {{ this }} as current_rows
        where current_rows._model_version is distinct from {{ sql_string(version) }}
        union
        select purchases.customer_id
        from {{ ref('int_purchases') }} as purchases
        cross join previous
        where purchases.order_date > previous.as_of
        union
        select traits.customer_id
        from {{ ref('int_customer_traits') }} as traits
        cross join previous
        cross join {{ ref('int_run_date') }} as run
        where run.run_date < previous.as_of
    ),

    purchases as (
        select * from {{ ref('int_purchases') }}
        where customer_id in (select refreshed.customer_id from refreshed)
    ),
{%- else %}
    purchases as (
        select * from {{ ref('int_purchases') }}
    ),
{%- endif %}

purchase_days as (
    select customer_id, order_date, sum(net_amount) as amount
    from purchases
    group by customer_id, order_date
),

histories as (
    select
        customer_id,
        count(*) as purchase_days,
        min(order_date) as first_purchase_date,
        max(order_date) as last_purchase_date,
        sum(amount) - {{ ordered_first('amount', [('order_date', 'asc')]) }} as repeat_amount
    from purchase_days
    group by customer_id
),

channels as (
    select
        customer_id,
        {{ ordered_first('channel', [('orders', 'desc'), ('last_ordered_at', 'desc'), ('channel', 'asc')]) }}
            as main_channel
    from (
        select customer_id, channel, count(*) as orders, max(ordered_at) as last_ordered_at
        from purchases
        where channel is not null
        group by customer_id, channel
    ) as per_channel
    group by customer_id
),

totals as (
    select
        customer_id,
        count(*) as purchases,
        sum(net_amount) as revenue,
        sum(margin) as margin,
        case
            when sum(net_amount) filter (where is_costed) > 0
                then sum(margin) filter (where is_costed) / sum(net_amount) filter (where is_costed)
            else {{ setting('clv.default_gross_margin') | float }}
        end as gross_margin_ratio
    from purchases
    group by customer_id
)

select
    {%- if '_model_version' in columns %}
        refreshed.customer_id,
    {%- else %}
        totals.customer_id,
    {%- endif %}
    coalesce(totals.purchases, 0) as purchases,
    totals.revenue,
    totals.margin,
    totals.gross_margin_ratio,
    histories.purchase_days,
    histories.first_purchase_date,
    histories.last_purchase_date,
    histories.repeat_amount,
    channels.main_channel,
    run.run_date as _as_of,
    {{ sql_string(version) }} as _model_version
{%- if '_model_version' in columns %}
    -- every refreshed customer gets a row: one without purchases up to the run date replaces the old row and is then
    -- deleted by the post-hook
    from refreshed
    left join totals on totals.customer_id = refreshed.customer_id
{%- else %}
    from totals
{%- endif %}
left join histories on histories.customer_id = totals.customer_id
left join channels on channels.customer_id = totals.customer_id
cross join {{ ref('int_run_date') }} as run
