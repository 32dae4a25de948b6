-- The golden record's time-independent part: one row per resolved customer, attributes chosen by the survivorship
-- rules below, behavioural traits computed from the fact tables. customer_profile adds the fields that move with the
-- run date. Incremental: a nightly run recomputes only the customers the run touched (see touched_customers), so it
-- costs what the day brings; a full build computes everyone. The leading-underscore columns are the model's state.
-- Each CTE is a build step: on DuckDB its own statement, so no query holds every per-customer result at once (a full
-- build at 3M customers ran out of memory as one query).
{{ config(
    on_schema_change='append_new_columns',
    post_hook=["{% if is_incremental() %}delete from {{ this }} as kept where not exists (
        select 1 from {{ ref('int_identity_map') }} as records where records.customer_id = kept.customer_id)
        {% endif %}", "{{ drop_build_steps() }}"],
    **incremental_by_key('customer_id')
) }}

-- Rows kept from a run of another version of this file (_model_checksum) are stale: such a run recomputes everyone,
-- as a full build does, so a change of the rules or new columns never leave old values behind.
{%- set checksum = model.checksum.checksum if execute else '' %}
{%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list if is_incremental() else [] %}
{%- set incremental = '_model_checksum' in columns %}
{%- set steps = [] %}

-- The newest identity resolution: int_identity_map gives every record whose customer may have changed (a merge,
-- split or erasure re-resolves the whole component, the records that stay with a customer included) a newer one,
-- so the next run finds the customers identity changed among the records resolved after it, not in the whole map.
with {% call build_step('identity', steps) %}
    select max(resolution) as resolved_through from {{ ref('int_identity_map') }}
{% endcall %},

-- The newest load time staged: the watermark the next run compares against.
{% call build_step('loaded', steps) %}
    select max(loaded_at) as loaded_through
    from (
        select max(_loaded_at) as loaded_at from {{ ref('stg_webshop__customers') }}
        union all
        select max(_loaded_at) from {{ ref('stg_webshop__orders') }}
        union all
        select max(_loaded_at) from {{ ref('stg_webshop__order_items') }}
        union all
        select max(_loaded_at) from {{ ref('stg_helpdesk__tickets') }}
        union all
        select max(_loaded_at) from {{ ref('stg_survey__responses') }}
    ) as per_source
{% endcall %},

{% if incremental -%}
{%- set previous = loaded_through(this, '_loaded_through') %}
-- The customers this run touched: those with a record staged since this model last ran (an order line counts for
-- its order: a late line changes the order's cost; the fact tables hold the day's records with their customer),
-- those whose records identity resolved again (merge, split, erasure; customers gone altogether are deleted by
-- the post-hook), those whose row another version of this file wrote and the owners of referral codes on new
-- orders. The map is probed with the day's few keys, never joined whole.
{% call build_step('touched_customers', steps) %}
{%- for fact in ['fct_orders', 'fct_tickets', 'fct_survey_responses'] %}
        select customer_id from {{ ref(fact) }}
        where _loaded_at > {{ previous }}
        union
    {%- endfor %}
    select customer_id from {{ ref('int_identity_map') }}
    where
        source = 'webshop_customer'
        and record_id in (
            select accounts.customer_id from {{ ref('stg_webshop__customers') }} as accounts
            where accounts._loaded_at > {{ previous }}
        )
    union
    select customer_id from {{ ref('int_identity_map') }}
    where resolution > {{ settled_resolution(this, '_resolution') }}
    union
    select customer_id from {{ this }}
    where _model_checksum is distinct from {{ sql_string(checksum) }}
    union
    select customer_id from {{ ref('int_identity_map') }}
    where
        source = 'webshop_customer'
        and 'REF-' || record_id in (
            select orders.referral_code from {{ ref('stg_webshop__orders') }} as orders
            where orders._loaded_at > {{ previous }}
        )
{% endcall %},

-- The source records of those customers.
{% call build_step('customer_records', steps) %}
    select source, record_id, customer_id from {{ ref('int_identity_map') }}
    where customer_id in (select touched_customers.customer_id from touched_customers)
{% endcall %},
{%- else %}

-- Every record with a customer: read again where it is used rather than held (at 3M customers, 32M rows).
{% call build_step('customer_records', steps, view=true) %}
    select source, record_id, customer_id from {{ ref('int_identity_map') }}
    where customer_id is not null
{% endcall %},
{%- endif %}

-- The customers of those records (a touched customer gone from the map gets no row).
{% call build_step('customers', steps) %}
    select distinct customer_id from customer_records
{% endcall %},

-- Normalised email (trimmed, lower-case) and phone (E.164) per source record, from identity resolution;
-- blocklisted and invalid values are null there, so junk never survives into the profile.
{% call build_step('record_contacts', steps) %}
    select
        identifiers.source,
        identifiers.record_id,
        max(identifiers.value) filter (where identifiers.id_type = 'email') as email,
        max(identifiers.value) filter (where identifiers.id_type = 'phone') as phone
    from {{ ref('int_identifiers') }} as identifiers
    inner join customer_records
        on customer_records.source = identifiers.source and customer_records.record_id = identifiers.record_id
    where identifiers.status = 'ok' and identifiers.id_type in ('email', 'phone')
    group by identifiers.source, identifiers.record_id
{% endcall %},

-- Every record of those customers that says something about who they are, ranked by how much we trust its source:
-- 1 webshop account (self-maintained) > 2 guest checkout data > 3 helpdesk requester > 4 survey answer.
{% call build_step('observations', steps, view=true) %}
    select
        identity_map.customer_id, 'webshop_customer' as source, accounts.customer_id as record_id, 1 as source_rank,
        accounts.updated_at as observed_at,
        nullif(trim(concat_ws(' ', trim(accounts.first_name), trim(accounts.last_name))), '') as full_name,
        nullif(trim(accounts.city), '') as city, nullif(trim(accounts.province), '') as province,
        accounts.customer_type
    from {{ ref('stg_webshop__customers') }} as accounts
    inner join customer_records as identity_map
        on identity_map.source = 'webshop_customer' and identity_map.record_id = accounts.customer_id
    union all
    -- Only guest checkouts carry contact data; account orders point at the account instead.
    select
        identity_map.customer_id, 'webshop_order' as source, orders.order_id as record_id, 2 as source_rank,
        orders.ordered_at as observed_at, null as full_name, null as city, null as province, null as customer_type
    from {{ ref('stg_webshop__orders') }} as orders
    inner join customer_records as identity_map
        on identity_map.source = 'webshop_order' and identity_map.record_id = orders.order_id
    where orders.customer_id is null
    union all
    select
        identity_map.customer_id, 'helpdesk_ticket' as source, tickets.ticket_id as record_id, 3 as source_rank,
        tickets.created_at as observed_at, nullif(trim(tickets.requester_name), '') as full_name, null as city,
        null as province, null as customer_type
    from {{ ref('stg_helpdesk__tickets') }} as tickets
    inner join customer_records as identity_map
        on identity_map.source = 'helpdesk_ticket' and identity_map.record_id = tickets.ticket_id
    union all
    select
        identity_map.customer_id, 'survey_response' as source, responses.response_id as record_id, 4 as source_rank,
        responses.submitted_at as observed_at, null as full_name, null as city, null as province,
        null as customer_type
    from {{ ref('stg_survey__responses') }} as responses
    inner join customer_records as identity_map
        on identity_map.source = 'survey_response' and identity_map.record_id = responses.response_id
{% endcall %},

{% call build_step('resolved_observations', steps) %}
    select observations.*, record_contacts.email, record_contacts.phone
    from observations
    left join record_contacts
        on record_contacts.source = observations.source and record_contacts.record_id = observations.record_id
{% endcall %},

{% call build_step('attributes', steps) %}
{%- set survivorship = [('source_rank', 'asc'), ('observed_at', 'desc'), ('record_id', 'asc')] %}
    select
        customer_id,
        -- Rule 1 (name, email, phone): best-ranked source first, then the most recent non-null value;
        -- the record id only breaks exact ties so the result is deterministic.
        {{ ordered_first('full_name', survivorship, where='full_name is not null') }} as full_name,
        {{ ordered_first('email', survivorship, where='email is not null') }} as email,
        {{ ordered_first('phone', survivorship, where='phone is not null') }} as phone,
        -- Rule 2 (city/province): same ordering, but taken as a pair from one record so they never contradict.
        {{ ordered_first(struct_of([('city', 'city'), ('province', 'province')]), survivorship,
                         where='city is not null or province is not null') }} as location,
        bool_or(source = 'webshop_customer') as has_account
    from resolved_observations
    group by customer_id
{% endcall %},

-- Rule 3 (customer_type): only webshop accounts declare a type. The most frequent type across the customer's
-- accounts wins, except that a business type (agent/reseller) on any account beats end_customer: a trader who
-- also shops privately must still get trade treatment. Ties go to the most recently updated account.
-- Customers without an account are end customers.
{% call build_step('account_types', steps) %}
    select
        identity_map.customer_id,
        accounts.customer_type,
        count(*) as accounts,
        max(accounts.updated_at) as last_seen_at
    from {{ ref('stg_webshop__customers') }} as accounts
    inner join customer_records as identity_map
        on identity_map.source = 'webshop_customer' and identity_map.record_id = accounts.customer_id
    where accounts.customer_type is not null
    group by identity_map.customer_id, accounts.customer_type
{% endcall %},

{% call build_step('customer_types', steps) %}
    select
        customer_id,
        {{ ordered_first('customer_type', [
            ("customer_type in ('agent', 'reseller')", 'desc'), ('accounts', 'desc'), ('last_seen_at', 'desc'),
            ('customer_type', 'asc')]) }} as customer_type
    from account_types
    group by customer_id
{% endcall %},

-- Rule 4 (marketing consent): the most recent explicit signal wins, whether an account opt-in flag (as of the
-- account's last update) or a survey consent answer. No signal at all means no consent.
{% call build_step('consent_signals', steps) %}
    select
        identity_map.customer_id, accounts.updated_at as signalled_at, accounts.marketing_opt_in as consent,
        1 as source_rank
    from {{ ref('stg_webshop__customers') }} as accounts
    inner join customer_records as identity_map
        on identity_map.source = 'webshop_customer' and identity_map.record_id = accounts.customer_id
    where accounts.marketing_opt_in is not null
    union all
    select customer_id, submitted_at, consent, 4 as source_rank
    from {{ ref('fct_survey_responses') }}
    where consent is not null and customer_id in (select customers.customer_id from customers)
{% endcall %},

{% call build_step('consents', steps) %}
    select
        customer_id,
        {{ ordered_first('consent', [('signalled_at', 'desc'), ('source_rank', 'asc')]) }} as marketing_consent
    from consent_signals
    group by customer_id
{% endcall %},

{% call build_step('purchases', steps) %}
    select
        customer_id,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        count(*) as order_count,
        sum(net_amount) as revenue,
        sum(discount_amount) as discount_total,
        count(*) filter (where is_discounted) as discounted_order_count,
        {{ ordered_first('coalesce(is_discounted, false)', [('ordered_at', 'asc'), ('order_id', 'asc')]) }}
            as first_purchase_discounted,
        {{ sorted_distinct_list('channel') }} as channels
    from {{ ref('fct_orders') }}
    where is_purchase and customer_id in (select customers.customer_id from customers)
    group by customer_id
{% endcall %},

-- Tickets and survey answers before the first purchase (customer_segments' impulsive rule).
{% call build_step('contacts_before_purchase', steps) %}
    select purchases.customer_id, count(*) as contacts
    from (
        select customer_id, created_at as contacted_at from {{ ref('fct_tickets') }}
        union all
        select customer_id, submitted_at from {{ ref('fct_survey_responses') }}
    ) as contacts
    inner join purchases
        on purchases.customer_id = contacts.customer_id and contacts.contacted_at < purchases.first_order_at
    group by purchases.customer_id
{% endcall %},

{% call build_step('refunds', steps) %}
    select customer_id, sum(refund_amount) as refund_total
    from {{ ref('fct_orders') }}
    where customer_id in (select customers.customer_id from customers)
    group by customer_id
{% endcall %},

-- A referral counts when someone else's purchase carries one of this customer's account codes.
{% call build_step('referral_codes', steps, view=true) %}
    select identity_map.customer_id, 'REF-' || identity_map.record_id as referral_code
    from customer_records as identity_map
    where identity_map.source = 'webshop_customer'
{% endcall %},

{% call build_step('referrals', steps) %}
    select referral_codes.customer_id, count(*) as referral_count
    from {{ ref('fct_orders') }} as orders
    inner join referral_codes on referral_codes.referral_code = orders.referral_code
    where orders.is_purchase and orders.customer_id is distinct from referral_codes.customer_id
    group by referral_codes.customer_id
{% endcall %},

{% call build_step('support', steps) %}
    select
        customer_id,
        count(*) as ticket_count,
        count(*) filter (where status in ('new', 'open', 'pending')) as open_ticket_count,
        median(resolution_hours) as median_resolution_hours
    from {{ ref('fct_tickets') }}
    where customer_id in (select customers.customer_id from customers)
    group by customer_id
{% endcall %},

{% call build_step('survey_scores', steps) %}
    select
        customer_id,
        avg(score) filter (where survey = 'csat') as csat_avg,
        {{ ordered_first('score', [('submitted_at', 'desc'), ('response_id', 'desc')], where="survey = 'nps'") }}
            as latest_nps
    from {{ ref('fct_survey_responses') }}
    where customer_id in (select customers.customer_id from customers)
    group by customer_id
{% endcall %},

-- Activity = something the customer did: opened an account, placed any order, opened a ticket, answered a survey.
{% call build_step('activity', steps, view=true) %}
    select identity_map.customer_id, accounts.created_at as happened_at
    from {{ ref('stg_webshop__customers') }} as accounts
    inner join customer_records as identity_map
        on identity_map.source = 'webshop_customer' and identity_map.record_id = accounts.customer_id
    union all
    select customer_id, ordered_at from {{ ref('fct_orders') }}
    union all
    select customer_id, created_at from {{ ref('fct_tickets') }}
    union all
    select customer_id, submitted_at from {{ ref('fct_survey_responses') }}
{% endcall %},

{% call build_step('activity_span', steps) %}
    select customer_id, min(happened_at) as first_seen_at, max(happened_at) as last_activity_at
    from activity
    where customer_id in (select customers.customer_id from customers)
    group by customer_id
{% endcall %}

select
    customers.customer_id,
    attributes.full_name,
    attributes.email,
    attributes.phone,
    -- RF01 mistakes struct fields for tables.
    attributes.location.city,  -- noqa: RF01
    attributes.location.province,  -- noqa: RF01
    coalesce(customer_types.customer_type, 'end_customer') as customer_type,
    coalesce(consents.marketing_consent, false) as marketing_consent,
    coalesce(attributes.has_account, false) as has_account,
    purchases.first_order_at,
    purchases.last_order_at,
    coalesce(purchases.order_count, 0) as order_count,
    coalesce(purchases.revenue, 0) as revenue,
    coalesce(purchases.discount_total, 0) as discount_total,
    coalesce(refunds.refund_total, 0) as refund_total,
    coalesce(purchases.discounted_order_count, 0) as discounted_order_count,
    coalesce(purchases.first_purchase_discounted, false) as first_purchase_discounted,
    coalesce(contacts_before_purchase.contacts, 0) as contacts_before_first_purchase,
    purchases.revenue / purchases.order_count as avg_order_value,
    coalesce(purchases.channels, {{ empty_string_list() }}) as channels,
    coalesce(support.ticket_count, 0) as ticket_count,
    coalesce(support.open_ticket_count, 0) as open_ticket_count,
    support.median_resolution_hours,
    survey_scores.csat_avg,
    survey_scores.latest_nps,
    coalesce(survey_scores.latest_nps >= 9, false) as is_promoter,
    coalesce(survey_scores.latest_nps <= 6, false) as is_detractor,
    coalesce(referrals.referral_count, 0) as referral_count,
    activity_span.first_seen_at,
    activity_span.last_activity_at,
    identity.resolved_through as _resolution,
    loaded.loaded_through as _loaded_through,
    {{ sql_string(checksum) }} as _model_checksum
from customers
cross join loaded
cross join identity
left join attributes on attributes.customer_id = customers.customer_id
left join customer_types on customer_types.customer_id = customers.customer_id
left join consents on consents.customer_id = customers.customer_id
left join purchases on purchases.customer_id = customers.customer_id
left join contacts_before_purchase on contacts_before_purchase.customer_id = customers.customer_id
left join refunds on refunds.customer_id = customers.customer_id
left join referrals on referrals.customer_id = customers.customer_id
left join support on support.customer_id = customers.customer_id
left join survey_scores on survey_scores.customer_id = customers.customer_id
left join activity_span on activity_span.customer_id = customers.customer_id
