{{ config(**incremental_by_key('response_id')) }}

-- One row per survey response. Landing keeps one version of a response in raw (conflicting versions go to
-- quarantine); an exact re-delivery on another day is kept once here: the latest submitted_at, then load, then day.
select
    response_id, submitted_at, survey, score, comment, email, phone, order_ref, consent, _loaded_at
from {{ source('raw', 'survey_responses') }} as candidate
where
    {{ newly_loaded() }}
    and {{ not_older_than_current('response_id', 'submitted_at') }}
qualify row_number() over (
    partition by response_id order by submitted_at desc, _loaded_at desc, _partition_date desc
) = 1
