-- One row per survey response with the resolved customer. Incremental like fct_orders: a nightly run rebuilds only
-- the responses staged since the last run or resolved to another customer (refreshed_records).
{{ config(on_schema_change='append_new_columns', **incremental_by_key('response_id')) }}

select
    responses.response_id,
    identity_map.customer_id,
    responses.submitted_at,
    responses.survey,
    responses.score,
    responses.consent,
    responses._loaded_at,
    identity_map.resolution as _resolution
from {{ ref('stg_survey__responses') }} as responses
left join {{ ref('int_identity_map') }} as identity_map
    on identity_map.source = 'survey_response' and identity_map.record_id = responses.response_id
{%- if is_incremental() %}
    where responses.response_id in (
        {{ refreshed_records('survey_response', 'response_id', ['stg_survey__responses']) }}
    )
{%- endif %}
