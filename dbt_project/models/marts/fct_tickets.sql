-- One row per helpdesk ticket (latest version) with the resolved customer. Incremental like fct_orders: a nightly
-- run rebuilds only the tickets staged since the last run or resolved to another customer (refreshed_records).
{{ config(on_schema_change='append_new_columns', **incremental_by_key('ticket_id')) }}

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
from {{ ref('stg_helpdesk__tickets') }} as tickets
left join {{ ref('int_identity_map') }} as identity_map
    on identity_map.source = 'helpdesk_ticket' and identity_map.record_id = tickets.ticket_id
{%- if is_incremental() %}
    where tickets.ticket_id in (
        {{ refreshed_records('helpdesk_ticket', 'ticket_id', ['stg_helpdesk__tickets']) }}
    )
{%- endif %}
