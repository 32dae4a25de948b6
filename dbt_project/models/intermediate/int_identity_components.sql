-- Persons: the profiles of int_identity_links (profile_key, the components of its linking rows, which the rules
-- already found) joined by the linked pairs of int_identity_matches, as connected components computed in SQL (macro
-- connected_components) over the profiles the matcher joins: a few, not every record. A component is a person when
-- it holds a linking account, email, phone or requester id; records joined by none (an order with no customer and no
-- contact, a survey with only junk, a ticket whose only contact is a household's phone and that no one matched) are
-- kept out of profiles and counted.
-- Only records int_identity_links resolved after this table was last built are propagated (their neighbourhoods
-- are closed: no link leaves them; a record attached alone joins a profile with no pair to score that is a person
-- already, through the person identifier it carries); the others keep their rows. Incremental by record
-- (delete+insert): a nightly run reads and writes only the records resolved again; where tables are rebuilt (Spark)
-- the kept rows are copied.
-- Erasure deletes an erased record's row here itself.
{{ config(on_schema_change='append_new_columns', **incremental_by_key(['source', 'record_id'])) }}
{%- set settled = settled_resolution(this) %}
{%- set fresh_profiles -%}
    (select profile_key from {{ ref('int_identity_links') }} where resolution > {{ settled }})
{%- endset -%}
{%- set matched -%}
    (select left_key as record_key, 'match:' || left_key || '|' || right_key as value_key
     from {{ ref('int_identity_matches') }}
     where linked and left_key in {{ fresh_profiles }}
     union all
     select right_key, 'match:' || left_key || '|' || right_key from {{ ref('int_identity_matches') }}
     where linked and left_key in {{ fresh_profiles }})
{%- endset -%}
{%- set labels = connected_components(matched) %}

with records as (
    select
        source, record_id, max(resolution) as resolution,
        coalesce(min(profile_key), source || ':' || record_id) as profile_key,
        coalesce(
            bool_or(linked and id_type in ('webshop_customer_id', 'email', 'phone', 'helpdesk_requester_id')),
            false
        ) as has_person_identifier
    from {{ ref('int_identity_links') }}
    {%- if is_incremental() %}
        where resolution > {{ settled }} -- a record is resolved whole: all its rows or none
    {%- endif %}
    group by source, record_id
),

resolved as (
    select
        records.source,
        records.record_id,
        coalesce(labels.component, records.profile_key) as cluster_key,
        bool_or(records.has_person_identifier) over (
            partition by coalesce(labels.component, records.profile_key)
        ) as is_person,
        records.resolution
    from records
    left join {{ labels }} as labels on records.profile_key = labels.record_key
    where records.resolution > {{ settled }}
)

select source, record_id, cluster_key, is_person, resolution, {{ this_build() }} as _invocation_id from resolved
{%- if settled and not is_incremental() %}
    union all
    select
        kept.source, kept.record_id, kept.cluster_key, kept.is_person, records.resolution,
        {{ this_build() }} as _invocation_id
    from {{ previous_rows(this) }} as kept
    inner join records on kept.source = records.source and kept.record_id = records.record_id
    where records.resolution <= {{ settled }}
{%- endif %}
