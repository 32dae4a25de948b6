"""Erasure on a real DuckDB file: referral codes of the erased account are cleared (whole codes only) and the
compacted file holds the live rows only."""

from __future__ import annotations

import re
from datetime import date

import duckdb
import polars as pl

from pipeline.lib import erasure, ingest
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


def test_a_re_delivered_order_going_to_quarantine_keeps_no_erased_referrers_code(tmp_path):
    """The delivered payload that quarantine keeps is the row as sent: the erased account's code must go from it too,
    not only from the typed column that raw gets."""
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        ingest.prepare_session(con, "Asia/Jakarta")
        erasure.record_suppression(con, _person("W0000012"))
        con.execute("""create temp table delivered as select *, null::date as _partition_date from (values
            ('O1', 'W0000001', '2026-11-02 10:00:00', 'paid', 'web', '125000', 'REF-W0000012', '2026-11-02 10:00:00'),
            ('O2', 'W0000002', '2026-11-02 11:00:00', 'paid', 'web', 'not a number', 'ref-w0000012',
             '2026-11-02 11:00:00'),
            ('O3', 'W0000003', '2026-11-02 12:00:00', 'paid', 'web', 'not a number', 'REF-W00000123',
             '2026-11-02 12:00:00')
        ) t(order_id, customer_id, ordered_at, status, channel, net_amount, referral_code, updated_at)""")
        window = (date(2026, 11, 2), date(2026, 11, 3))
        result = ingest.land(con, ingest.WEBSHOP_ORDERS, "delivered", window, "webshop", DEMO_RULES)
        assert (result.loaded, result.quarantined, result.referrals_cleared) == (1, 2, 2)
        assert con.execute("select referral_code from raw.webshop_orders").fetchall() == [(None,)]
        quarantined = "select _payload ->> 'order_id', _payload from quarantine.webshop_orders"
        payloads = dict(con.execute(quarantined).fetchall())
        assert "W0000012" not in payloads["O2"].upper() and '"referral_code":null' in payloads["O2"]
        assert "REF-W00000123" in payloads["O3"]  # another account's code stays
