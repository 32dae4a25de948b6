-- Dated snapshots of customer_segments, one per run date, for trends and segment migrations. Incremental on the
-- run date: a re-run of a date replaces that date's rows, earlier snapshots stay.
{{ config(on_schema_change='append_new_columns', **incremental_by_date('snapshot_date')) }}

-- Every column of the snapshotted table, whatever it holds, and the build that wrote the snapshot (its tests check
-- that snapshot, not every earlier one again).
select
    as_of_date as snapshot_date,
    *,  -- noqa: AM04
    {{ this_build() }} as _invocation_id
from {{ ref('customer_segments') }}
