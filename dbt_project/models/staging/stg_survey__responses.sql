{{ config(unique_key='response_id') }}

-- One row per survey response. Versions differing in content resolve deterministically: the latest submitted_at
-- wins, then the latest load, then the latest export day.
select
    response_id, submitted_at, survey, score, comment, email, phone, order_ref, consent, _loaded_at
from {{ source('raw', 'survey_responses') }} as candidate
where
    {{ newly_loaded() }}
    and {{ not_older_than_current('response_id', 'submitted_at') }}
qualify row_number() over (
    partition by response_id order by submitted_at desc, _loaded_at desc, _partition_date desc
) = 1
