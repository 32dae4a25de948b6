"""Erasure on a real DuckDB file: referral codes of the erased account are cleared (whole codes only) and the
compacted file holds the live rows only."""

from __future__ import annotations

import re

import duckdb
import polars as pl

from pipeline.lib import erasure
from tests.support.demo_shop import DEMO_RULES
from tests.support.serving import table_digests

ERASED = "erased.person@example.com"


def _person(*accounts: str) -> erasure.Person:
    identifiers = pl.DataFrame({"id_type": ["webshop_customer_id"] * len(accounts), "value": list(accounts)})
    return erasure.Person(customer_ids=[], identifiers=identifiers, records=pl.DataFrame())


def test_referral_codes_of_the_erased_account_are_cleared_and_the_file_rewritten(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema raw; create schema quarantine; create schema marts")
        con.execute("""create table raw.webshop_orders as select * from (values
            ('O1', 'REF-W0000012'), ('O2', ' ref-w0000012 '), ('O3', 'REF-W00000123'), ('O4', null)
        ) t(order_id, referral_code)""")
        con.execute("create table marts.fct_orders as select * from raw.webshop_orders")
        con.execute("""create table quarantine.webshop_orders as select * from (values
            ('{"order_id": "O5", "referral_code": "REF-W0000012", "net_amount": "-1"}', 'negative net_amount'),
            ('{"order_id": "O6", "referral_code": "REF-W00000123"}', 'negative net_amount')) t(_payload, _reason)""")
        con.execute(
            f"create table marts.contacts as select 'customer' || range || '@example.com' as email "
            f"from range(50000) union all select '{ERASED}'"
        )
        con.execute(f"delete from marts.contacts where email = '{ERASED}'")

        cleared = erasure.clear_referral_codes(con, _person("W0000012"))
        assert cleared == {"raw.webshop_orders": 2, "marts.fct_orders": 2, "quarantine.webshop_orders": 1}
        assert con.execute("select order_id from marts.fct_orders where referral_code is not null").fetchall() == [
            ("O3",)
        ]
        assert (
            con.execute(
                "select count(*) from quarantine.webshop_orders where contains(_payload, 'REF-W00000123')"
            ).fetchone()[0]
            == 1
        )
    live = table_digests(warehouse, ("raw", "quarantine", "marts"))

    with duckdb.connect(str(warehouse)) as con:
        erasure.compact(con, warehouse)
    assert table_digests(warehouse, ("raw", "quarantine", "marts")) == live
    content = warehouse.read_bytes()
    assert ERASED.encode() not in content and not re.search(rb"REF-W0000012(?!\d)", content)
    assert not list(tmp_path.glob("*.compact-*"))


def test_re_delivered_orders_land_without_the_erased_referrers_code():
    """A re-ingest after `forget` brings other people's orders back; the erased account's referral code on them must
    not come back with them (forget cleared it), whatever its case, and other codes stay."""
    with duckdb.connect() as con:
        erasure.record_suppression(con, _person("W0000012"))
        con.execute("""create temp table delivered as select * from (values
            ('O1', 'REF-W0000012'), ('O2', ' ref-w0000012 '), ('O3', 'REF-W00000123'), ('O4', null), ('O5', 'PROMO')
        ) t(order_id, referral_code)""")
        assert erasure.clear_suppressed_referrals(con, "delivered", DEMO_RULES) == 2
        kept = con.execute("select order_id, referral_code from delivered order by 1").fetchall()
        assert kept == [("O1", None), ("O2", None), ("O3", "REF-W00000123"), ("O4", None), ("O5", "PROMO")]
