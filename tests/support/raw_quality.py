"""Raw-table quality fixtures for both test layers: the raw suites as the pipeline builds them, and clean raw
webshop orders generated in SQL."""

from __future__ import annotations

from datetime import date

from pipeline.lib import ingest
from pipeline.lib.sources import registry

# The raw suites as the pipeline builds them for the demo shop (IDR): derived from the source registry.
RAW_SUITES = {
    f"raw_{name}": ingest.raw_suite(ingest.spec(name, ingest.Limits(currency="IDR"))) for name in registry.TABLES
}

DAY = date(2024, 3, 15)


def raw_orders_sql(n: int, days: int = 1) -> str:
    """Clean raw orders, n rows spread over `days` partitions ending at DAY."""
    return f"""
        select 'O' || lpad(cast(i as varchar), 8, '0') as order_id,
               case when i % 10 = 0 then null else 'C' || (i % 500) end as customer_id,
               null::varchar as guest_email, null::varchar as guest_phone,
               '2024-03-15T10:00:00+07:00' as ordered_at,
               (['pending','paid','shipped','completed','cancelled','refunded'])[1 + i % 6] as status,
               (['web','app','marketplace','store'])[1 + i % 4] as channel,
               'IDR' as currency, 100000.0 + i as gross_amount, 5000.0 as discount_amount,
               10000.0 as shipping_amount, 105000.0 + i as net_amount,
               null::varchar as promo_code, null::varchar as referral_code,
               '2024-03-15T11:00:00+07:00' as updated_at,
               date '{DAY}' - cast(i % {days} as integer) as _partition_date,
               timestamp '2024-03-16 01:00:00' as _loaded_at, 'webshop' as _source
        from range({n}) t(i)"""
