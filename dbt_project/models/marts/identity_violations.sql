{{ config(**incremental_by_date('run_date')) }}

-- Audit: what identity resolution refused to link on each run date (a rerun of a date replaces that date's rows).
select run.run_date, cuts.id_type, cuts.value, cuts.reason, cuts.records, cuts.linked, cuts.detail
from {{ ref('int_identity_cuts') }} as cuts
cross join {{ ref('int_run_date') }} as run
