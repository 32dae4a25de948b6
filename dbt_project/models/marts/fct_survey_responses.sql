-- One row per survey response with the resolved customer.
select
    responses.response_id,
    identity_map.customer_id,
    responses.submitted_at,
    responses.survey,
    responses.score,
    responses.consent
from {{ ref('stg_survey__responses') }} as responses
left join {{ ref('int_identity_map') }} as identity_map
    on identity_map.source = 'survey_response' and identity_map.record_id = responses.response_id
