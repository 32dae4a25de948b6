-- The identifier values identity resolution did not use as links (all of them or some), with reason and evidence:
-- invalid / blocklisted values from int_identifiers, shared and limit-breaking ones from int_identity_links.
with decided as (
    select
        links.id_type, links.value, links.reason, any_value(links.detail) as detail,
        count(distinct links.source || ':' || links.record_id) as records,
        count(distinct components.cluster_key) as linked
    from {{ ref('int_identity_links') }} as links
    inner join {{ ref('int_identity_components') }} as components
        on links.source = components.source and links.record_id = components.record_id
    where links.reason is not null
    group by links.id_type, links.value, links.reason
),

rejected as (
    select
        id_type, raw_value as value, status as reason, any_value(reason) as detail,
        count(distinct source || ':' || record_id) as records, cast(null as bigint) as linked
    from {{ ref('int_identifiers') }}
    where status <> 'ok'
    group by id_type, raw_value, status
)

select id_type, value, reason, records, linked, detail from decided
union all
select id_type, value, reason, records, linked, detail from rejected
