-- One row per helpdesk ticket (latest version) with the resolved customer.
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
    tickets.order_ref
from {{ ref('stg_helpdesk__tickets') }} as tickets
left join {{ ref('int_identity_map') }} as identity_map
    on identity_map.source = 'helpdesk_ticket' and identity_map.record_id = tickets.ticket_id
