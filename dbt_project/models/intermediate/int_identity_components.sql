-- Persons as connected components of the linking identifiers and the matcher's linked pairs, computed in SQL
-- (macro connected_components). A component is a person when it holds a linking account, email, phone or requester
-- id; records joined by none (an order with no customer and no contact, a survey with only junk, a ticket whose
-- only contact is a household's phone and that no one matched) are kept out of profiles and counted.
-- Only records int_identity_links resolved after this table was last built are propagated (their neighbourhoods
-- are closed: no link leaves them); the others keep their rows.
{%- set settled = settled_resolution(this) %}
{%- set fresh_records -%}
    (select source || ':' || record_id from {{ ref('int_identity_links') }} where resolution > {{ settled }})
{%- endset -%}
{%- set links -%}
    (select source || ':' || record_id as record_key, id_type || ':' || value as value_key
     from {{ ref('int_identity_links') }} where linked and resolution > {{ settled }}
     union all
     select left_key, 'match:' || left_key || '|' || right_key from {{ ref('int_identity_matches') }}
     where linked and left_key in {{ fresh_records }}
     union all
     select right_key, 'match:' || left_key || '|' || right_key from {{ ref('int_identity_matches') }}
     where linked and left_key in {{ fresh_records }})
{%- endset -%}
{%- set labels = connected_components(links) %}

with records as (
    select
        source, record_id, source || ':' || record_id as record_key, max(resolution) as resolution,
        coalesce(
            bool_or(linked and id_type in ('webshop_customer_id', 'email', 'phone', 'helpdesk_requester_id')),
            false
        ) as has_person_identifier
    from {{ ref('int_identity_links') }}
    group by source, record_id
),

resolved as (
    select
        records.source,
        records.record_id,
        coalesce(labels.component, records.record_key) as cluster_key,
        bool_or(records.has_person_identifier) over (
            partition by coalesce(labels.component, records.record_key)
        ) as is_person,
        records.resolution
    from records
    left join {{ labels }} as labels on records.record_key = labels.record_key
    where records.resolution > {{ settled }}
)

select source, record_id, cluster_key, is_person, resolution from resolved
{%- if settled %}
    union all
    select kept.source, kept.record_id, kept.cluster_key, kept.is_person, records.resolution
    from {{ previous_rows(this) }} as kept
    inner join records on kept.source = records.source and kept.record_id = records.record_id
    where records.resolution <= {{ settled }}
{%- endif %}
