{{ config(**incremental_by_key('ticket_id')) }}

-- Latest delivered version of each ticket.
select
    id as ticket_id, requester_id, requester_email, requester_phone, requester_name, channel, subject, status,
    priority, order_ref, created_at, updated_at, solved_at, satisfaction, tags, _loaded_at
from {{ source('raw', 'helpdesk_tickets') }} as candidate
where
    {{ newly_loaded() }}
    and {{ not_older_than_current('ticket_id', 'updated_at', 'candidate.id') }}
qualify row_number() over (partition by id order by updated_at desc, _loaded_at desc) = 1
