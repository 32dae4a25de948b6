{{ config(
    pre_hook="{{ remove_lines_of_redelivered_orders() }}", on_schema_change='append_new_columns',
    **incremental_by_key('order_id')
) }}

-- The lines of the latest delivered version of each order: lines travel with their order's version (same partition
-- day). Keyed by order: a re-delivered order replaces its whole set of lines, so a line removed from the order
-- disappears here too, and an order delivered again without lines ends with none (the pre-hook).
with candidate as (
    select * from {{ source('raw', 'webshop_order_items') }} as candidate
    where {{ newly_loaded() }}
),

-- A full build stages every line: the versions of every order, without matching each against the lines first.
latest_versions as (
    {{ latest_order_versions('select order_id from candidate' if is_incremental() else none) }}
),

-- The lines of one order version come from one landing (a re-landed day replaces its lines): the latest load of it.
-- An aggregate over three columns, not a window carrying every column of every line.
latest_loads as (
    select
        order_id,
        _partition_date,
        max(_loaded_at) as _loaded_at
    from candidate
    group by order_id, _partition_date
)

select
    candidate.order_id || '#' || candidate.line_no as order_line_id,
    candidate.order_id,
    candidate.line_no,
    candidate.sku,
    candidate.category,
    candidate.quantity,
    candidate.unit_price,
    candidate.unit_cost,
    candidate._partition_date as delivered_on,
    candidate._loaded_at,
    {{ this_build() }} as _invocation_id
from candidate
inner join latest_versions
    on
        candidate.order_id = latest_versions.order_id
        and candidate._partition_date = latest_versions._partition_date
inner join latest_loads
    on
        candidate.order_id = latest_loads.order_id
        and candidate._partition_date = latest_loads._partition_date
        and candidate._loaded_at = latest_loads._loaded_at
