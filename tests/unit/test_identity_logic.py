"""Identity resolution rules on small hand-made frames: normalisation, graph clustering, guards, stable ids."""

from datetime import date

import polars as pl
import pytest

from pipeline.lib.identity import (
    IdentityRules,
    assign_stable_ids,
    cluster_records,
    describe_changes,
    mint_customer_ids,
    normalise_emails,
    normalise_identifiers,
    resolve_identities,
)
from pipeline.lib.phones import normalise_phones

RULES = IdentityRules()


def identifiers(*rows: tuple[str, str, str, str | None]) -> pl.DataFrame:
    """(source, record_id, id_type, raw_value) rows -> normalised identifier frame."""
    raw = pl.DataFrame(rows, schema=["source", "record_id", "id_type", "raw_value"], orient="row")
    return normalise_identifiers(raw, RULES)


def resolve(ids: pl.DataFrame, rules: IdentityRules = RULES, extra_records: list[tuple[str, str]] = ()):
    records = pl.concat(
        [
            ids.select("source", "record_id"),
            pl.DataFrame(list(extra_records), schema=["source", "record_id"], orient="row"),
        ]
    )
    return resolve_identities(ids, records, rules)


def groups(clusters: pl.DataFrame) -> set[frozenset[str]]:
    """The partition of record ids, independent of cluster keys."""
    return {frozenset(g) for g in clusters.group_by("cluster_key").agg("record_id").get_column("record_id").to_list()}


def test_email_variants_unify_and_bad_shapes_are_rejected():
    out = normalise_emails(
        pl.Series(
            [
                "  Budi.Santoso1@Gmail.com ",
                "BUDI.SANTOSO1@GMAIL.COM",
                "budi.santoso1@gmail.com",
                "budi at gmail",
                "budi@localhost",
                "a b@c.id",
                "",
                None,
            ]
        )
    )
    assert out.to_list() == ["budi.santoso1@gmail.com"] * 3 + [None] * 5


def test_phone_formats_unify_to_e164_and_junk_is_invalid():
    out = normalise_phones(
        pl.Series(
            [
                "0812-3456-7890",
                "+62 812 3456 7890",
                "62-812-34567890",
                "+6281234567890",
                "(021) 555 1234",
                "0000000000",
                "hubungi saya",
                "0812",
                None,
            ]
        ),
        "ID",
    )
    assert out.to_list() == ["+6281234567890"] * 4 + ["+62215551234", None, None, None, None]


def test_statuses_of_normalised_identifiers():
    ids = identifiers(
        ("webshop_order", "O1", "email", "Test@Test.com "),
        ("webshop_order", "O1", "phone", "0000-000-000"),
        ("webshop_order", "O2", "email", "not-an-email"),
        ("webshop_order", "O2", "phone", None),
        ("webshop_order", "O3", "order_id", " O3 "),
    )
    got = {(r["record_id"], r["id_type"]): (r["status"], r["value"]) for r in ids.iter_rows(named=True)}
    assert got == {
        ("O1", "email"): ("blocklisted", None),
        ("O1", "phone"): ("blocklisted", None),
        ("O2", "email"): ("invalid", None),
        ("O3", "order_id"): ("ok", "O3"),
    }
    with pytest.raises(ValueError, match="unknown identifier types"):
        identifiers(("webshop_order", "O1", "fax", "123"))


def test_format_variants_link_records_across_sources_and_bare_records_stand_alone():
    ids = identifiers(
        ("webshop_customer", "W1", "webshop_customer_id", "W1"),
        ("webshop_customer", "W1", "email", "Siti@Yahoo.co.id"),
        ("webshop_customer", "W1", "phone", "0812-3456-7890"),
        ("webshop_order", "O1", "webshop_customer_id", "W1"),
        ("webshop_order", "O2", "order_id", "O2"),
        ("webshop_order", "O2", "email", "  SITI@yahoo.co.id"),  # guest checkout, other case
        ("helpdesk_ticket", "T1", "phone", "+62 812 3456 7890"),  # WhatsApp ticket, other format
        ("helpdesk_ticket", "T1", "helpdesk_requester_id", "H1p"),
        ("helpdesk_ticket", "T2", "helpdesk_requester_id", "H1p"),  # same requester, no contact data
        ("survey_response", "S1", "order_id", "O2"),  # survey about the guest order
        ("survey_response", "S2", "email", "budi@gmail.com"),
    )
    result = resolve(ids, extra_records=[("survey_response", "S3")])  # anonymous response
    assert groups(result.clusters) == {
        frozenset({"W1", "O1", "O2", "T1", "T2", "S1"}),
        frozenset({"S2"}),
        frozenset({"S3"}),
    }
    keys = dict(result.clusters.select("record_id", "cluster_key").iter_rows())
    assert keys["W1"] == "helpdesk_ticket:T1"  # the smallest (source, record_id) names the cluster
    assert keys["S3"] == "survey_response:S3"
    assert result.violations.height == 0


def test_blocklisted_values_do_not_link_and_are_reported():
    ids = identifiers(
        ("webshop_order", "O1", "email", "test@test.com"),
        ("webshop_order", "O1", "phone", "0000000000"),
        ("webshop_order", "O2", "email", "TEST@test.com"),
        ("webshop_order", "O2", "phone", "000-000-0000"),
        ("webshop_order", "O3", "email", "budi@@x"),
    )
    result = resolve(ids)
    assert groups(result.clusters) == {frozenset({"O1"}), frozenset({"O2"}), frozenset({"O3"})}
    report = {(r["id_type"], r["value"], r["reason"]): r["records"] for r in result.violations.iter_rows(named=True)}
    assert report == {
        ("email", "test@test.com", "blocklisted"): 1,
        ("email", "TEST@test.com", "blocklisted"): 1,
        ("phone", "0000000000", "blocklisted"): 1,
        ("phone", "000-000-0000", "blocklisted"): 1,
        ("email", "budi@@x", "invalid"): 1,
    }


def household(second_email: str) -> pl.DataFrame:
    """Two webshop accounts on one phone; each with an order and a WhatsApp ticket from that phone."""
    return identifiers(
        ("webshop_customer", "W1", "webshop_customer_id", "W1"),
        ("webshop_customer", "W1", "email", "ayu@gmail.com"),
        ("webshop_customer", "W1", "phone", "0812-1111-2222"),
        ("webshop_customer", "W2", "webshop_customer_id", "W2"),
        ("webshop_customer", "W2", "email", second_email),
        ("webshop_customer", "W2", "phone", "+62 812 1111 2222"),
        ("webshop_order", "O1", "webshop_customer_id", "W1"),
        ("webshop_order", "O2", "webshop_customer_id", "W2"),
        ("helpdesk_ticket", "T1", "phone", "6281211112222"),
    )


def test_cardinality_rule_cuts_a_household_phone():
    result = resolve(household("dedi@gmail.com"))
    assert groups(result.clusters) == {frozenset({"W1", "O1"}), frozenset({"W2", "O2"}), frozenset({"T1"})}
    cut = result.violations.row(0, named=True)
    assert result.violations.height == 1
    assert (cut["id_type"], cut["value"], cut["reason"], cut["linked"], cut["records"]) == (
        "phone",
        "+6281211112222",
        "shared_identifier",
        2,
        3,
    )


def test_second_account_with_the_same_email_keeps_the_phone_as_a_link():
    result = resolve(household("AYU@gmail.com"))
    assert groups(result.clusters) == {frozenset({"W1", "W2", "O1", "O2", "T1"})}
    assert result.violations.height == 0


def test_email_on_more_accounts_than_allowed_is_shared():
    rows = [
        r
        for w in ("W1", "W2", "W3")
        for r in (
            ("webshop_customer", w, "webshop_customer_id", w),
            ("webshop_customer", w, "email", "toko.kami@gmail.com"),
        )
    ]
    result = resolve(identifiers(*rows))
    assert groups(result.clusters) == {frozenset({"W1"}), frozenset({"W2"}), frozenset({"W3"})}
    assert result.violations.select("id_type", "reason", "linked").row(0) == ("email", "shared_identifier", 3)
    relaxed = IdentityRules(max_persons_per_identifier={"email": 3, "phone": 1})
    assert groups(resolve(identifiers(*rows), relaxed).clusters) == {frozenset({"W1", "W2", "W3"})}


def test_record_cap_cuts_a_store_phone():
    rows = [("webshop_order", f"O{i}", "phone", "(021) 555 1234") for i in range(4)]
    capped = IdentityRules(max_records_per_identifier=3)
    result = resolve(identifiers(*rows), capped)
    assert len(groups(result.clusters)) == 4
    assert result.violations.select("reason", "records").row(0) == ("too_many_records", 4)
    assert len(groups(resolve(identifiers(*rows[:3]), capped).clusters)) == 1


def test_oversized_cluster_loses_its_weakest_links_first():
    # Five guest orders chained by emails and phones: O1-O2 by phone A, O2-O3 by email, O3-O4 by phone B,
    # O4-O5 by email. With a cap of 2 records, phones go first (leaving {O1}, {O2,O3}, {O4,O5}).
    ids = identifiers(
        ("webshop_order", "O1", "phone", "081200000001"),
        ("webshop_order", "O2", "phone", "081200000001"),
        ("webshop_order", "O2", "email", "x@a.id"),
        ("webshop_order", "O3", "email", "x@a.id"),
        ("webshop_order", "O3", "phone", "081200000002"),
        ("webshop_order", "O4", "phone", "081200000002"),
        ("webshop_order", "O4", "email", "y@a.id"),
        ("webshop_order", "O5", "email", "y@a.id"),
    )
    no_cardinality = {"max_persons_per_identifier": {}}  # only the size cap is under test here
    result = resolve(ids, IdentityRules(max_cluster_records=2, **no_cardinality))
    assert groups(result.clusters) == {frozenset({"O1"}), frozenset({"O2", "O3"}), frozenset({"O4", "O5"})}
    assert set(result.violations.select("value", "reason", "linked").iter_rows()) == {
        ("+6281200000001", "oversized_cluster", 5),
        ("+6281200000002", "oversized_cluster", 5),
    }
    # A cap of 1 also cuts the emails; the strongest type (the account) is never cut.
    tight = resolve(ids, IdentityRules(max_cluster_records=1, **no_cardinality))
    assert len(groups(tight.clusters)) == 5
    account = identifiers(*[("webshop_order", f"O{i}", "webshop_customer_id", "W1") for i in range(3)])
    assert groups(resolve(account, IdentityRules(max_cluster_records=1)).clusters) == {frozenset({"O0", "O1", "O2"})}


def test_resolution_is_deterministic_under_row_order():
    ids = household("dedi@gmail.com")
    first = resolve(ids)
    again = resolve(ids.sample(fraction=1.0, shuffle=True, seed=7))
    assert first.clusters.sort("source", "record_id").equals(again.clusters.sort("source", "record_id"))
    assert first.violations.equals(again.violations)


def test_cluster_records_from_stored_violations_equals_resolve():
    ids = pl.concat([household("dedi@gmail.com"), identifiers(("webshop_order", "O9", "email", "test@test.com"))])
    records = ids.select("source", "record_id")
    result = resolve_identities(ids, records)
    assert cluster_records(ids, records, result.violations).sort("record_id").equals(result.clusters.sort("record_id"))
    # Without the violations the household phone links both accounts again.
    assert len(groups(cluster_records(ids, records, result.violations.clear()))) == 2


def clusters_of(*parts: list[str]) -> pl.DataFrame:
    """Cluster frame from lists of order ids; the cluster key is the smallest record key, as resolve names it."""
    return pl.DataFrame(
        [("webshop_order", rid, f"webshop_order:{min(part)}") for part in parts for rid in part],
        schema=["source", "record_id", "cluster_key"],
        orient="row",
    )


def mapping(**ids_by_customer: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        [("webshop_order", rid, cid) for cid, rids in ids_by_customer.items() for rid in rids],
        schema=["source", "record_id", "customer_id"],
        orient="row",
    )


def test_full_rebuild_mints_reproducible_ids_from_the_smallest_record():
    first = assign_stable_ids(clusters_of(["O1", "O2"], ["O3"]))
    again = assign_stable_ids(clusters_of(["O3"], ["O2", "O1"]))
    assert first.equals(again)
    ids = dict(first.select("record_id", "customer_id").iter_rows())
    assert ids["O1"] == ids["O2"] != ids["O3"]
    assert ids["O1"] == mint_customer_ids(pl.Series(["webshop_order:O1"]))[0]
    assert all(len(v) == 11 and v.startswith("C") for v in ids.values())
    changes = describe_changes(first, date(2026, 1, 1))
    assert changes.select("change_type", "records").sort("records").rows() == [("new", 1), ("new", 2)]


def test_existing_ids_survive_and_new_records_join_their_person():
    previous = mapping(CAAA=["O1", "O2"], CBBB=["O3"])
    out = assign_stable_ids(clusters_of(["O1", "O2", "O4"], ["O3"], ["O5"]), previous)
    ids = dict(out.select("record_id", "customer_id").iter_rows())
    assert (ids["O1"], ids["O2"], ids["O4"], ids["O3"]) == ("CAAA", "CAAA", "CAAA", "CBBB")
    assert ids["O5"] not in {"CAAA", "CBBB"}
    changes = describe_changes(out, date(2026, 1, 2))
    assert changes.select("change_type", "old_customer_id", "new_customer_id", "records").rows() == [
        ("new", None, ids["O5"], 1)
    ]


def test_merge_keeps_the_smallest_old_id_and_is_recorded():
    previous = mapping(CBBB=["O1", "O2", "O3"], CAAA=["O4"])
    out = assign_stable_ids(clusters_of(["O1", "O2", "O3", "O4", "O9"]), previous)
    assert set(out.get_column("customer_id")) == {"CAAA"}
    changes = describe_changes(out, date(2026, 1, 2))
    assert changes.rows() == [(date(2026, 1, 2), "merge", "CBBB", "CAAA", 3)]


def test_split_leaves_the_old_id_on_the_largest_part():
    previous = mapping(CAAA=["O1", "O2", "O3"])
    out = assign_stable_ids(clusters_of(["O1"], ["O2", "O3"]), previous)
    ids = dict(out.select("record_id", "customer_id").iter_rows())
    assert ids["O2"] == ids["O3"] == "CAAA" and ids["O1"] != "CAAA"
    assert describe_changes(out, date(2026, 1, 2)).select(
        "change_type", "old_customer_id", "new_customer_id", "records"
    ).rows() == [("split", "CAAA", ids["O1"], 1)]


def test_minted_ids_never_reuse_a_taken_id():
    previous = mapping(CAAA=["O1", "O2", "O3"])
    natural = mint_customer_ids(pl.Series(["webshop_order:O1"]))[0]
    # O1 splits off into a cluster whose natural id is reserved (e.g. issued in an earlier run): it is re-hashed.
    out = assign_stable_ids(clusters_of(["O1"], ["O2", "O3"]), previous, reserved_ids=pl.Series([natural]))
    new_id = out.filter(pl.col("record_id") == "O1").get_column("customer_id")[0]
    assert new_id not in {natural, "CAAA"} and new_id.startswith("C") and len(new_id) == 11
    assert mint_customer_ids(pl.Series(["k", "k"])).n_unique() == 2


def test_rules_from_config_section():
    rules = IdentityRules.from_config(
        {"blocklist_phones": [0], "max_persons_per_identifier": {"phone": "3"}, "ignored_key": 1}
    )
    assert rules.blocklist_phones == ("0",) and rules.max_persons_per_identifier == {"phone": 3}
    with pytest.raises(ValueError, match="strength"):
        IdentityRules.from_config({"strength": ["email", "phone"]})
