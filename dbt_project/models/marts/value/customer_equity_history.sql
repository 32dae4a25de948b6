-- Dated snapshots of customer_equity, one per run date, for the equity trend. Incremental on the run date: a
-- re-run of a date replaces that date's rows, earlier snapshots stay.
{{ config(on_schema_change='append_new_columns', **incremental_by_date('snapshot_date')) }}

-- Every column of the snapshotted table, whatever it holds.
select
    as_of_date as snapshot_date,
    *  -- noqa: AM04
from {{ ref('customer_equity') }}
