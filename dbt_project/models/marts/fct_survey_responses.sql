-- One row per survey response with the resolved customer. Incremental like fct_orders: a nightly run rebuilds only
-- the responses staged since the last run or resolved to another customer (refreshed_records).
{{ config(on_schema_change='append_new_columns', **incremental_by_key('response_id')) }}

with
{%- if is_incremental() %}
    refreshed as (
        {{ refreshed_records('survey_response', 'response_id', ['stg_survey__responses']) }}
    ),

    responses as (
        select * from {{ ref('stg_survey__responses') }}
        where response_id in (select refreshed.response_id from refreshed)
    ),

    -- (only the refreshed records' rows: joined whole, the map would be hashed whole every night)
    identity_map as (
        select record_id, customer_id, resolution from {{ ref('int_identity_map') }}
        where source = 'survey_response' and record_id in (select refreshed.response_id from refreshed)
    )
{%- else %}
    responses as (
        select * from {{ ref('stg_survey__responses') }}
    ),

    identity_map as (
        select record_id, customer_id, resolution from {{ ref('int_identity_map') }}
        where source = 'survey_response'
    )
{%- endif %}

select
    responses.response_id,
    identity_map.customer_id,
    responses.submitted_at,
    responses.survey,
    responses.score,
    responses.consent,
    responses._loaded_at,
    identity_map.resolution as _resolution
from responses
left join identity_map on identity_map.record_id = responses.response_id
