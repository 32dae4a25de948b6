"""Identity resolution rules on small hand-made frames: normalisation, graph clustering, guards, stable ids."""

from datetime import date

import polars as pl
import pytest

from pipeline.lib.identity import (
    IdentityRules,
    assign_stable_ids,
    describe_changes,
    mint_customer_ids,
    normalise_emails,
    normalise_identifiers,
    resolve_identities,
)
from pipeline.lib.phones import normalise_phones

RULES = IdentityRules(default_region="ID")  # the demo shop's region


def identifiers(*rows: tuple[str, str, str, str | None], rules: IdentityRules = RULES) -> pl.DataFrame:
    """(source, record_id, id_type, raw_value) rows -> normalised identifier frame."""
    raw = pl.DataFrame(rows, schema=["source", "record_id", "id_type", "raw_value"], orient="row")
    return normalise_identifiers(raw, rules)


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
    same = [
        "  Budi.Santoso1@Gmail.com ",
        "BUDI.SANTOSO1@GMAIL.COM",
        "mailto:budi.santoso1@gmail.com",
        "Budi Santoso <Budi.Santoso1@gmail.com>",
        "budi.santoso1@gmail.com.",
        "budi.santoso1@gmail.com\u00a0",
        "\tbudi.santoso1\u200b@gmail.com",
        "budi.santoso1＠gmail.com",
        "budi. santoso1@gmail.com",
        "budi.santoso1@gmail.com (kantor)",  # an RFC 5322 comment
        "mailto:Budi.Santoso1@gmail.com?subject=Pesanan%20saya",
    ]
    bad = ["budi at gmail", "budi@localhost", "budi@x.test", "budi..s@gmail.com", "@gmail.com", "", None]
    out = normalise_emails(pl.Series(same + bad))
    assert out.to_list() == ["budi.santoso1@gmail.com"] * len(same) + [None] * len(bad)
    # Beyond plain ASCII the library decides: an internationalised address is valid.
    assert normalise_emails(pl.Series(["Dewi@Bücher.de"])).to_list() == ["dewi@bücher.de"]


def test_phone_formats_unify_to_e164_and_junk_is_invalid():
    out = normalise_phones(
        pl.Series(
            [
                "0812-3456-7890",
                "+62 812 3456 7890",
                "62-812-34567890",
                "+6281234567890",
                "0062 812 3456 7890",  # 00 + country code: Indonesia's own international prefixes are 001, 007, …
                "(021) 555 1234",
                "0000000000",
                "hubungi saya",
                "0812",
                None,
            ]
        ),
        "ID",
    )
    assert out.to_list() == ["+6281234567890"] * 5 + ["+62215551234", None, None, None, None]


def test_statuses_of_normalised_identifiers():
    ids = identifiers(
        ("webshop_order", "O1", "email", "Test@Test.com "),
        ("webshop_order", "O1", "phone", "0800-000-0000"),
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
        ("webshop_customer", "W1", "phone", "0812-2468-1357"),
        ("webshop_order", "O1", "webshop_customer_id", "W1"),
        ("webshop_order", "O2", "order_id", "O2"),
        ("webshop_order", "O2", "email", "mailto:SITI@yahoo.co.id"),  # guest checkout
        ("helpdesk_ticket", "T1", "phone", "+62 (0)812 2468 1357"),  # WhatsApp ticket
        ("helpdesk_ticket", "T1", "helpdesk_requester_id", "H1p"),
        ("helpdesk_ticket", "T2", "helpdesk_requester_id", "H1p"),  # same requester, no contact data
        ("survey_response", "S1", "order_id", "O2"),  # survey about the guest order
        ("survey_response", "S4", "phone", "０８１２\u00a02468\t1357"),  # full-width digits, NBSP, tab
        ("survey_response", "S2", "email", "budi@gmail.com"),
    )
    result = resolve(ids, extra_records=[("survey_response", "S3")])  # anonymous response
    assert groups(result.clusters) == {
        frozenset({"W1", "O1", "O2", "T1", "T2", "S1", "S4"}),
        frozenset({"S2"}),
        frozenset({"S3"}),
    }
    keys = dict(result.clusters.select("record_id", "cluster_key").iter_rows())
    assert keys["W1"] == "helpdesk_ticket:T1"  # the smallest (source, record_id) names the cluster
    assert keys["S3"] == "survey_response:S3"
    assert result.violations.height == 0


def test_blocklisted_values_do_not_link_and_are_reported_with_their_reason():
    ids = identifiers(
        ("webshop_order", "O1", "email", "test@test.com"),
        ("webshop_order", "O1", "phone", "0000000000"),
        ("webshop_order", "O2", "email", "NoEmail@gmail.com"),
        ("webshop_order", "O2", "phone", "0800-0000-000"),
        ("webshop_order", "O3", "email", "budi@@x"),
        ("webshop_order", "O3", "phone", "0812-3456-7890"),
        ("webshop_order", "O4", "email", "tidakada@yahoo.co.id"),
        ("webshop_order", "O4", "phone", "0812 3456 789"),
        ("webshop_order", "O5", "email", "a@a.com"),
        ("webshop_order", "O5", "phone", "-"),
    )
    result = resolve(ids)
    assert len(groups(result.clusters)) == 5
    report = {(r["value"], r["reason"]) for r in result.violations.iter_rows(named=True)}
    assert report == {
        ("test@test.com", "blocklisted"),
        ("NoEmail@gmail.com", "blocklisted"),
        ("tidakada@yahoo.co.id", "blocklisted"),
        ("a@a.com", "blocklisted"),
        ("0800-0000-000", "blocklisted"),
        ("0812-3456-7890", "blocklisted"),
        ("0812 3456 789", "blocklisted"),
        ("budi@@x", "invalid"),
        ("0000000000", "invalid"),
        ("-", "invalid"),
    }
    details = dict(result.violations.select("value", "detail").iter_rows())
    assert details["budi@@x"] == "invalid email address" and details["-"] == "not a valid phone number"
    assert details["0800-0000-000"].startswith("blocklist pattern 0{6,}")
    # Blocklists are configuration: an empty phone list lets the sequential number through.
    open_phones = IdentityRules.from_config({"default_region": "ID", "blocklists": {"phone": []}})
    assert identifiers(("webshop_order", "O3", "phone", "0812-3456-7890"), rules=open_phones).get_column(
        "status"
    ).to_list() == ["ok"]


def account(key: str, name: str, email: str | None = None, phone: str | None = None) -> list[tuple]:
    rows = [
        ("webshop_customer", key, "webshop_customer_id", key),
        ("webshop_order", f"O-{key}", "webshop_customer_id", key),
        ("webshop_order", f"O-{key}", "order_id", f"O-{key}"),
    ]
    rows += [("webshop_customer", key, "email", email)] if email else []
    rows += [("webshop_customer", key, "phone", phone)] if phone else []
    return rows


def resolve_named(rows: list[tuple], names: dict[str, str], rules: IdentityRules = RULES):
    ids = identifiers(*rows, rules=rules)
    records = (
        ids.select("source", "record_id")
        .unique()
        .with_columns(
            name=pl.col("record_id").replace_strict(names, default=None),
            name_rank=(pl.col("source") != "webshop_customer").cast(pl.Int32),
        )
    )
    return resolve_identities(ids, records, rules)


def test_household_phone_with_different_first_names_links_nobody():
    rows = (
        account("W1", "Ayu Lubis", "ayu@gmail.com", "(021) 555 1234")
        + account("W2", "Dedi Lubis", "dedi@gmail.com", "021-5551234")
        + [("helpdesk_ticket", "T1", "phone", "+62 21 5551234")]
    )
    result = resolve_named(rows, {"W1": "Ayu Lubis", "W2": "Dedi Lubis", "T1": "Bu Ayu"})
    assert groups(result.clusters) == {frozenset({"W1", "O-W1"}), frozenset({"W2", "O-W2"}), frozenset({"T1"})}
    cut = result.violations.row(0, named=True)
    assert result.violations.height == 1
    assert (cut["id_type"], cut["value"], cut["reason"], cut["records"]) == (
        "phone",
        "+62215551234",
        "names_disagree",
        3,
    )
    assert "disagree on names" in cut["detail"]
    # The ticket could be either's: it is left out of both (the matcher may still place it).
    assert set(result.candidates.select("left_key", "right_key").iter_rows()) >= {
        ("helpdesk_ticket:T1", "webshop_customer:W1")
    }


def test_second_account_with_a_typo_in_the_name_joins_through_email_and_phone():
    rows = (
        account("W1", "Budi Santoso", "budi@gmail.com", "0812-1111-2222")
        + account("W2", "Budy Santoso", "BUDI@gmail.com ", None)
        + account("W3", "Santoso Budi", None, "+62 812 1111 2222")
    )
    result = resolve_named(rows, {"W1": "Budi Santoso", "W2": "Budy Santoso", "W3": "Santoso Budi"})
    assert groups(result.clusters) == {frozenset({"W1", "W2", "W3", "O-W1", "O-W2", "O-W3"})}
    assert result.violations.height == 0


def test_accounts_on_one_email_merge_up_to_the_account_limit():
    three = [r for k in ("W1", "W2", "W3") for r in account(k, "Rina Wijaya", "rina@gmail.com")]
    names = {k: "Rina Wijaya" for k in ("W1", "W2", "W3", "W4", "W5", "W6")}
    assert len(groups(resolve_named(three, names).clusters)) == 1
    six = [r for k in names for r in account(k, "Rina Wijaya", "rina@gmail.com")]
    result = resolve_named(six, names)
    assert len(groups(result.clusters)) == 6
    assert result.violations.select("id_type", "reason", "detail").row(0) == (
        "email",
        "limit_exceeded",
        "carried by 6 accounts (limit 5)",
    )
    relaxed = IdentityRules.from_config(
        {"default_region": "ID", "limits": {"webshop_customer_id": 6, "email": 5, "phone": 3}}
    )
    assert len(groups(resolve_named(six, names, relaxed).clusters)) == 1


def test_a_link_that_would_break_the_phone_limit_is_dropped_and_the_others_merge():
    # One person, four accounts on one email, each with its own phone: the fourth phone is over the limit of 3.
    rows = [
        r
        for k, p in (
            ("W1", "0812-0000-1111"),
            ("W2", "0812-0000-2222"),
            ("W3", "0812-0000-3333"),
            ("W4", "0812-0000-4444"),
        )
        for r in account(k, "Rina Wijaya", "rina@gmail.com", p)
    ]
    names = {k: "Rina Wijaya" for k in ("W1", "W2", "W3", "W4")}
    result = resolve_named(rows, names)
    assert groups(result.clusters) == {frozenset({"W1", "W2", "W3", "O-W1", "O-W2", "O-W3"}), frozenset({"W4", "O-W4"})}
    assert result.violations.select("reason", "linked").row(0) == ("limit_partial", 4)
    # Without names vouching for one person the value joins nothing (it may be a shop's address).
    assert len(groups(resolve_named(rows, {}).clusters)) == 4


def test_courier_phone_on_many_customers_orders_is_shared():
    rows = [
        r
        for k in range(7)
        for r in (
            ("webshop_order", f"O{k}", "email", f"buyer{k}@gmail.com"),
            ("webshop_order", f"O{k}", "phone", "0813-9999-0001"),
            ("webshop_order", f"P{k}", "email", f"buyer{k}@gmail.com"),
        )
    ]
    result = resolve(identifiers(*rows))
    assert len(groups(result.clusters)) == 7
    assert result.violations.select("id_type", "reason").row(0) == ("phone", "limit_exceeded")


def test_whatsapp_requester_shared_by_a_household_is_phone_grade():
    rows = (
        account("W1", "Ayu Lubis", "ayu@gmail.com")
        + account("W2", "Dedi Lubis", "dedi@gmail.com")
        + [
            ("helpdesk_ticket", "T1", "helpdesk_requester_id", "wa-6281211112222"),
            ("helpdesk_ticket", "T1", "order_id", "O-W1"),
            ("helpdesk_ticket", "T2", "helpdesk_requester_id", "wa-6281211112222"),
            ("helpdesk_ticket", "T2", "order_id", "O-W2"),
        ]
    )
    result = resolve_named(rows, {"W1": "Ayu Lubis", "W2": "Dedi Lubis", "T1": "Ayu", "T2": "Ayu"})
    assert groups(result.clusters) == {frozenset({"W1", "O-W1", "T1"}), frozenset({"W2", "O-W2", "T2"})}
    assert result.violations.select("id_type", "reason").row(0) == ("helpdesk_requester_id", "names_disagree")


def test_record_cap_shares_a_store_phone():
    rows = [("webshop_order", f"O{i}", "phone", "(021) 555 1234") for i in range(4)]
    capped = IdentityRules(default_region="ID", max_records_per_value=3)
    result = resolve(identifiers(*rows), capped)
    assert len(groups(result.clusters)) == 4
    assert result.violations.select("reason", "records").row(0) == ("too_many_records", 4)
    assert len(groups(resolve(identifiers(*rows[:3]), capped).clusters)) == 1


def test_resolution_is_deterministic_under_row_order():
    rows = account("W1", "Ayu Lubis", "ayu@gmail.com", "(021) 555 1234") + account(
        "W2", "Dedi Lubis", "dedi@gmail.com", "021-5551234"
    )
    ids = identifiers(*rows)
    records = ids.select("source", "record_id").unique().with_columns(name=pl.lit("Ayu Lubis"))
    first = resolve_identities(ids, records, RULES)
    again = resolve_identities(ids.sample(fraction=1.0, shuffle=True, seed=7), records.reverse(), RULES)
    assert first.clusters.sort("source", "record_id").equals(again.clusters.sort("source", "record_id"))
    assert first.violations.equals(again.violations)
    assert first.links.sort("source", "record_id", "id_type").equals(again.links.sort("source", "record_id", "id_type"))


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
        {
            "default_region": "ID",
            "limits": {"phone": "2"},
            "blocklists": {"email": ["^kosong@"]},
            "priority": ["webshop_customer_id", "email", "order_id", "phone", "helpdesk_requester_id"],
        }
    )
    assert rules.limits == {"phone": 2} and rules.blocklists == {"email": ("^kosong@",), "phone": ()}
    assert rules.priority[1] == "email"
    with pytest.raises(ValueError, match="priority"):
        IdentityRules.from_config({"default_region": "ID", "priority": ["email", "phone"]})
    with pytest.raises(ValueError, match="unknown identity settings"):
        IdentityRules.from_config({"default_region": "ID", "max_persons_per_identifier": {"phone": 1}})
    with pytest.raises(ValueError, match="default_region is required"):
        IdentityRules.from_config({"limits": {"phone": 2}})


def dated_records(*rows: tuple[str, str, str, int, date, bool]) -> pl.DataFrame:
    """(source, record_id, name, name_rank, seen_on, current) rows -> the records frame the rules read."""
    return pl.DataFrame(rows, schema=["source", "record_id", "name", "name_rank", "seen_on", "current"], orient="row")


def test_a_recycled_number_links_nobody_even_when_first_names_agree():
    # The old holder wrote from the number in January 2024; a new holder, also a Wahyu, opened an account with it in
    # 2025 and wrote from it since. The first names agree, the full names cannot be compared, the pause is 500 days.
    rows = [
        ("helpdesk_ticket", "T1", "phone", "0813-8451-4150"),
        ("helpdesk_ticket", "T2", "phone", "+62 813 8451 4150"),
        ("webshop_customer", "W2", "webshop_customer_id", "W2"),
        ("webshop_customer", "W2", "phone", "081384514150"),
    ]
    ids = identifiers(*rows)
    records = dated_records(
        ("helpdesk_ticket", "T1", "Bu Wahyu", 1, date(2024, 1, 10), False),
        ("helpdesk_ticket", "T2", "Wahyu", 1, date(2025, 6, 1), False),
        ("webshop_customer", "W2", "Wahyu Hidayat", 0, date(2025, 5, 25), True),
    )
    result = resolve_identities(ids, records, RULES)
    assert groups(result.clusters) == {frozenset({"T1"}), frozenset({"T2"}), frozenset({"W2"})}
    assert result.violations.select("id_type", "reason").row(0) == ("phone", "recycled")
    # Used without a long pause (the old ticket a month before the account), the number links all three.
    recent = records.with_columns(seen_on=pl.Series([date(2025, 4, 20), date(2025, 6, 1), date(2025, 5, 25)]))
    assert len(groups(resolve_identities(ids, recent, RULES).clusters)) == 1
    # Switched off, the pause does not matter.
    assert (
        len(groups(resolve_identities(ids, records, IdentityRules(default_region="ID", recycle_days=None)).clusters))
        == 1
    )


def test_a_limit_with_a_time_window_counts_only_values_used_within_it():
    # One guest, one email, a new number a year after the first (the old one went back to the operator), then a third
    # number three weeks after the second. Phone limit 1: without a window the email cannot join even two orders;
    # within a 180-day window the first two numbers are a year apart and count apart, the third is too many.
    phones = {"O1": "0812-7000-1111", "O2": "0812-7000-2222", "O3": "0812-7000-3333"}
    rows = [
        row
        for order, phone in phones.items()
        for row in (
            ("webshop_order", order, "email", "ayu.lestari@gmail.com"),
            ("webshop_order", order, "phone", phone),
        )
    ]
    days = (date(2024, 1, 10), date(2025, 1, 20), date(2025, 2, 10))
    records = dated_records(
        *[("webshop_order", o, "Ayu Lestari", 0, day, False) for o, day in zip(("O1", "O2", "O3"), days, strict=True)]
    )
    limits = {"webshop_customer_id": 5, "email": 5, "phone": 1, "helpdesk_requester_id": 3}
    no_window = IdentityRules.from_config({"default_region": "ID", "limits": limits})
    windowed = IdentityRules.from_config({"default_region": "ID", "limits": limits, "limit_windows": {"phone": 180}})
    ids = identifiers(*rows)
    assert groups(resolve_identities(ids, records, no_window).clusters) == {
        frozenset({"O1"}),
        frozenset({"O2"}),
        frozenset({"O3"}),
    }
    result = resolve_identities(ids, records, windowed)
    assert groups(result.clusters) == {frozenset({"O1", "O2"}), frozenset({"O3"})}
    assert result.violations.select("id_type", "reason").row(0) == ("email", "limit_partial")
    assert "1 of 3 profiles left apart" in result.violations.get_column("detail")[0]
    # The window is the rule's, not the data's: the third number a year later too, and all three join.
    spread = records.with_columns(seen_on=pl.Series([date(2023, 1, 10), date(2024, 1, 20), date(2025, 2, 10)]))
    assert len(groups(resolve_identities(ids, spread, windowed).clusters)) == 1
    assert windowed.digest() != no_window.digest()  # another window re-decides every link


def test_limit_windows_from_config_are_checked():
    rules = IdentityRules.from_config({"default_region": "ID", "limit_windows": {"phone": "365"}})
    assert rules.limit_windows == {"phone": 365} and IdentityRules(default_region="ID").limit_windows == {}
    with pytest.raises(ValueError, match="types without a limit"):
        IdentityRules.from_config({"default_region": "ID", "limit_windows": {"order_id": 30}})
    with pytest.raises(ValueError, match="at least 1"):
        IdentityRules.from_config({"default_region": "ID", "limit_windows": {"phone": 0}})
