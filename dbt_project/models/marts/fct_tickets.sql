-- One row per helpdesk ticket (latest version) with the resolved customer. Incremental like fct_orders: a nightly
-- run rebuilds only the tickets staged since the last run or resolved to another customer (refreshed_records).
{{ config(on_schema_change='append_new_columns', **incremental_by_key('ticket_id')) }}

with
{%- if is_incremental() %}
    refreshed as (
        {{ refreshed_records('helpdesk_ticket', 'ticket_id', ['stg_helpdesk__tickets']) }}
    ),

    tickets as (
        select * from {{ ref('stg_helpdesk__tickets') }}
        where ticket_id in (select refreshed.ticket_id from refreshed)
    ),

    -- (only the refreshed records' rows: joined whole, the map would be hashed whole every night)
    identity_map as (
        select record_id, customer_id, resolution from {{ ref('int_identity_map') }}
        where source = 'helpdesk_ticket' and record_id in (select refreshed.ticket_id from refreshed)
    )
{%- else %}
    tickets as (
        select * from {{ ref('stg_helpdesk__tickets') }}
    ),

    identity_map as (
        select record_id, customer_id, resolution from {{ ref('int_identity_map') }}
        where source = 'helpdesk_ticket'
    )
{%- endif %}

select
    tickets.ticket_id,
    identity_map.customer_id,
    tickets.channel,
    tickets.status,
    tickets.priority,
    tickets.created_at,
    tickets.solved_at,
    {{ date_difference('second', 'tickets.created_at', 'tickets.solved_at') }} / cast(3600 as double)
        as resolution_hours,
    tickets.satisfaction,
    tickets.order_ref,
    tickets._loaded_at,
    identity_map.resolution as _resolution
from tickets
left join identity_map on identity_map.record_id = tickets.ticket_id
