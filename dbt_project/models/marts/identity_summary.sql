-- One row per run date: how many persons identity resolution found, how much it merged, the largest cluster,
-- how many records belong to no person (no linking identifier: kept out of profiles and CLV), how many identifiers
-- it cut and how many ids merged or split on that run. Incremental on the run date: a re-run
-- of a date replaces its row, earlier rows stay.
{{ config(**incremental_by_date('snapshot_date')) }}
{{ config(on_schema_change='append_new_columns') }}

with clusters as (
    select customer_id, count(*) as records
    from {{ ref('int_identity_map') }}
    where customer_id is not null
    group by customer_id
),

without_person as (
    select count(*) as records_without_person
    from {{ ref('int_identity_map') }}
    where customer_id is null
),

this_run_violations as (
    select count(*) as violations
    from {{ ref('identity_violations') }} as violations
    inner join {{ ref('int_run_date') }} as run on violations.run_date = run.run_date
),

-- "merges" is quoted (in the engine's quotes): sqlfluff's DuckDB dialect reads merges as a keyword.
this_run_changes as (
    select
        count(*) filter (where id_changes.change_type = 'merge') as {{ adapter.quote('merges') }},
        count(*) filter (where id_changes.change_type = 'split') as splits
    from {{ ref('identity_changes') }} as id_changes
    inner join {{ ref('int_run_date') }} as run on id_changes.run_date = run.run_date
)

select
    run.run_date as snapshot_date,
    cast(sum(clusters.records) as bigint) as records,
    count(*) as persons,
    1 - count(*) / sum(clusters.records) as merge_rate,
    any_value(without_person.records_without_person) as records_without_person,
    any_value(this_run_violations.violations) as violations,
    any_value(this_run_changes.merges) as {{ adapter.quote('merges') }},
    any_value(this_run_changes.splits) as splits,
    coalesce(max(clusters.records), 0) as largest_cluster
from {{ ref('int_run_date') }} as run
cross join without_person
cross join this_run_violations
cross join this_run_changes
left join clusters on true
group by run.run_date
