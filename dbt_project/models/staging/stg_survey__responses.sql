{{ config(unique_key='response_id') }}

-- One row per survey response (a response re-exported in a later file keeps its latest delivery).
select
    response_id, submitted_at, survey, score, comment, email, phone, order_ref, consent, _loaded_at
from {{ source('raw', 'survey_responses') }} as candidate
where {{ newly_loaded() }}
  and {{ not_older_than_current('response_id', 'submitted_at') }}
qualify row_number() over (partition by response_id order by _partition_date desc, _loaded_at desc) = 1
