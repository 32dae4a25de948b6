"""The warehouse-side steps the dbt models take give what the in-memory functions give: identifier rows extracted
in DuckDB, the matcher's candidates read from relations, a nightly's replaced records, a full build resolved in
batches of neighbourhoods."""

from dataclasses import dataclass, replace

import duckdb
import polars as pl
import pytest

from pipeline.lib import messy_data
from pipeline.lib.identity import (
    BATCH_FILES,
    KEYS,
    extract_identifiers,
    identifier_rows,
    link_records,
    normalise_identifiers,
    normalised_rows,
    record_fingerprints,
    record_rows,
    relink,
    resolve_identities,
    resolve_in_batches,
    rows_of_neighbourhoods,
)
from pipeline.lib.identity_matching import (
    candidate_chunks,
    candidate_entities,
    candidate_rows,
    chunked_candidate_entities,
    decide,
    match_profiles,
    train,
)
from tests.support.demo_shop import DEMO_RULES

ORDER = [*KEYS, "id_type", "raw_value"]


def staged_data():
    return messy_data.staged(messy_data.build(messy_data.MessyConfig(persons=400, seed=5, mix="households")))


@dataclass(frozen=True)
class Messy:
    """staged_data() with its identifier rows and records, normalised, and linked whole: built once for the module,
    read-only for the tests (polars frames are not changed in place; `staged` is a fresh dict for each test)."""

    staged_frames: dict[str, pl.DataFrame]
    records: pl.DataFrame
    identifiers: pl.DataFrame
    links: pl.DataFrame

    @property
    def staged(self) -> dict[str, pl.DataFrame]:
        return dict(self.staged_frames)


@pytest.fixture(scope="module")
def messy() -> Messy:
    frames = staged_data()
    raw, records = extract_identifiers(frames)
    identifiers = normalise_identifiers(raw, DEMO_RULES)
    return Messy(frames, records, identifiers, link_records(identifiers, records, DEMO_RULES))


def staged_relations(con, staged):
    """The staged frames as relations of `con`, as a dbt model's refs are."""
    for name, frame in staged.items():
        con.register(f"{name}_frame", frame.to_arrow())
    return {name: con.table(f"{name}_frame") for name in staged}


def test_identifier_rows_in_duckdb_equal_the_extracted_frame_and_normalise_the_same(messy):
    staged = messy.staged
    # keys that need trimming, and an empty one, beside the plain ones
    odd = pl.DataFrame({"customer_id": [" K-1 ", "\u00a0", "K/2"], "email": [None, None, "X@Y.ID"]})
    staged["stg_webshop__customers"] = pl.concat([staged["stg_webshop__customers"], odd], how="diagonal")
    raw, _ = extract_identifiers(staged)
    with duckdb.connect() as con:
        rows = identifier_rows(staged_relations(con, staged))
        in_duckdb = rows.pl()
        normalised = normalised_rows(con, rows, DEMO_RULES).pl()
    assert in_duckdb.sort(ORDER).equals(raw.sort(ORDER))
    assert normalised.sort(ORDER).equals(normalise_identifiers(raw, DEMO_RULES).sort(ORDER))
    assert set(normalised.get_column("status").unique()) >= {"ok", "invalid", "blocklisted"}
    keys = normalised.filter(pl.col("raw_value").is_in([" K-1 ", "\u00a0", "K/2"]))
    assert sorted(keys.get_column("value").to_list(), key=str) == sorted(["K-1", None, "K/2"], key=str)


def test_normalised_rows_looked_up_a_chunk_at_a_time_equal_one_lookup_of_every_spelling(messy):
    staged = messy.staged
    with duckdb.connect(config={"memory_limit": "1GB"}) as con:
        rows = identifier_rows(staged_relations(con, staged))
        spellings = rows.filter("id_type in ('email', 'phone')").project("id_type, raw_value").distinct().count("*")
        assert spellings.fetchone()[0] > 5 * 97
        at_once = normalised_rows(con, rows, DEMO_RULES).pl()
        chunked = normalised_rows(con, rows, DEMO_RULES, duckdb_config={"memory_limit": "1GB"}, chunk=97).pl()
        limit = con.execute("select current_setting('memory_limit')").fetchone()[0]
    assert chunked.sort(ORDER).equals(at_once.sort(ORDER))
    assert limit == "953.6 MiB"  # the share is given back after the lookups


def test_normalised_rows_reuse_earlier_lookups_and_look_up_only_new_spellings(messy):
    staged = messy.staged
    with duckdb.connect() as con:
        rows = identifier_rows(staged_relations(con, staged))
        con.execute("create table earlier as " + normalised_rows(con, rows, DEMO_RULES).sql_query())
        # Earlier lookups of every email but those of records ending in 1, marked so that reuse shows.
        con.execute("delete from earlier where id_type = 'email' and record_id like '%1'")
        con.execute("update earlier set reason = 'looked up before' where id_type = 'email'")
        known = con.table("earlier").pl().select("id_type", "raw_value").unique()
        fresh = normalised_rows(con, rows, DEMO_RULES, known="earlier", chunk=97).pl()
    expected = messy.identifiers  # normalise_identifiers of extract_identifiers(staged)
    assert fresh.drop("reason").sort(ORDER).equals(expected.drop("reason").sort(ORDER))
    emails = pl.col("id_type") == "email"
    reused = fresh.filter(emails).join(known, on=["id_type", "raw_value"], how="semi")
    assert reused.height and set(reused.get_column("reason")) == {"looked up before"}
    looked_up = fresh.filter(emails).join(known, on=["id_type", "raw_value"], how="anti").sort(ORDER)
    assert looked_up.height
    assert looked_up.equals(expected.filter(emails).join(known, on=["id_type", "raw_value"], how="anti").sort(ORDER))


def test_candidate_rows_read_from_relations_give_the_same_candidates(messy):
    records, identifiers, links = messy.records, messy.identifiers, messy.links
    with duckdb.connect() as con:
        for name, frame in {"links": links, "records": records, "identifiers": identifiers}.items():
            con.register(name, frame.to_arrow())
        few_links, few_records, few_identifiers = candidate_rows(
            con, con.table("links"), con.table("records"), con.table("identifiers")
        )
    assert few_records.height < records.height and few_identifiers.height < identifiers.height
    expected = candidate_entities(links, records, identifiers)
    assert expected.height > 0
    assert candidate_entities(few_links, few_records, few_identifiers).equals(expected)


def test_candidates_in_groups_of_neighbourhoods_give_the_entities_and_decisions_of_all_at_once(messy):
    records, identifiers, links = messy.records, messy.identifiers, messy.links
    expected = candidate_entities(links, records, identifiers)
    model = train(expected)
    at_once = match_profiles(links, records, identifiers, model, DEMO_RULES.match_probability)
    with duckdb.connect() as con:
        for name, frame in {"links": links, "records": records, "identifiers": identifiers}.items():
            con.register(name, frame.to_arrow())
        tables = con.table("links"), con.table("records"), con.table("identifiers")
        groups = list(candidate_chunks(con, *tables, 40))
        entities = chunked_candidate_entities(con, *tables, 40)
        left = con.execute("select count(*) from duckdb_tables() where table_name like 'identity_candidate%'")
        assert left.fetchone()[0] == 0
    assert len(groups) >= 5
    assert entities.equals(expected)
    assert at_once.get_column("linked").sum() > 0
    assert decide(entities, model, DEMO_RULES.match_probability).equals(at_once.drop("resolution"))


def test_a_training_sample_holds_whole_neighbourhoods_of_candidates(messy):
    records, identifiers, links = messy.records, messy.identifiers, messy.links
    everything = candidate_entities(links, records, identifiers)
    with duckdb.connect() as con:
        for name, frame in {"links": links, "records": records, "identifiers": identifiers}.items():
            con.register(name, frame.to_arrow())
        tables = con.table("links"), con.table("records"), con.table("identifiers")
        candidates = pl.concat([group[0] for group in candidate_chunks(con, *tables, 40)])
        sampled = pl.concat([group[0] for group in candidate_chunks(con, *tables, 40, candidates.height // 3)])
        sample = chunked_candidate_entities(con, *tables, 40, candidates.height // 3)
        assert chunked_candidate_entities(con, *tables, 40, candidates.height).equals(everything)  # no more rows
    drawn = links.join(sampled.select(KEYS).unique(), on=KEYS, how="semi").get_column("neighbourhood").unique()
    whole = candidates.join(links.filter(pl.col("neighbourhood").is_in(drawn.implode())), on=KEYS, how="semi")
    assert sampled.sort(KEYS + ["id_type", "value"]).equals(whole.sort(KEYS + ["id_type", "value"]))
    assert 0 < sampled.height < 0.6 * candidates.height and 2 <= drawn.len()
    # one profile's and value's row each, as in the entities of every candidate
    assert sample.height > 0 and sample.join(everything, on=sample.columns, how="anti", nulls_equal=True).is_empty()


def test_relink_names_the_records_whose_rows_a_nightly_replaces(messy):
    records, identifiers, previous = messy.records, messy.identifiers, messy.links
    gone = records.head(3).select(KEYS)
    new_day = records.join(gone, on=KEYS, how="anti")
    with duckdb.connect() as con:
        con.register("identifiers", identifiers.join(gone, on=KEYS, how="anti").to_arrow())
        con.register("records", new_day.to_arrow())
        con.register("previous", previous.to_arrow())
        fresh, replaced = relink(con, "identifiers", "records", DEMO_RULES, "previous")
        fresh = fresh.pl()
        _, everything = relink(con, "identifiers", "records", DEMO_RULES, "previous", resolve_all=True)
    assert gone.join(replaced, on=KEYS, how="anti").is_empty()  # gone records' rows go
    assert fresh.select(KEYS).unique().join(replaced, on=KEYS, how="anti").is_empty()  # resolved again: replaced
    assert fresh.get_column("resolution").min() > previous.get_column("resolution").max()
    kept = previous.join(replaced, on=KEYS, how="anti")
    whole = link_records(identifiers.join(gone, on=KEYS, how="anti"), new_day, DEMO_RULES)
    order = [*KEYS, "id_type", "value"]
    assert pl.concat([kept, fresh]).drop("resolution").sort(order).equals(whole.drop("resolution").sort(order))
    assert replaced.height < 0.5 * records.height
    assert everything is None


def test_relink_given_the_candidates_replaces_what_comparing_every_record_does(messy):
    """A nightly that compares only the records staged again (and those erasure marked) resolves the same
    neighbourhoods as one comparing every record's fingerprint, and its table is a resolution of everything."""
    records, identifiers = messy.records, messy.identifiers
    late = pl.int_range(pl.len()).over("source") % 50 == 0  # one record in 50 arrives the next day
    first_day = records.filter(~late)
    previous = link_records(identifiers.join(first_day, on=KEYS, how="semi"), first_day, DEMO_RULES)
    # The next day: the late records, two records staged again with another city, one record erased (its rows
    # deleted, its neighbourhood marked as erasure marks it).
    moved = first_day.filter(pl.col("city").is_not_null()).head(2).with_columns(city=pl.lit("Elsewhere"))
    erased = previous.filter(pl.col("id_type") == "email").head(1).select(KEYS)
    marked = previous.join(erased, on=KEYS, how="semi").select("neighbourhood").unique()
    previous = previous.join(erased, on=KEYS, how="anti").with_columns(
        fingerprint=pl.when(pl.col("neighbourhood").is_in(marked.get_column("neighbourhood").implode()))
        .then(pl.lit(0, pl.UInt64))
        .otherwise(pl.col("fingerprint"))
    )
    today = pl.concat([records.join(moved, on=KEYS, how="anti"), moved]).join(erased, on=KEYS, how="anti")
    today_identifiers = identifiers.join(erased, on=KEYS, how="anti")
    candidates = pl.concat(
        [
            records.filter(late).select(KEYS),
            moved.select(KEYS),
            previous.filter(pl.col("fingerprint") == 0).select(KEYS),
        ]
    ).unique()
    order = [*KEYS, "id_type", "value"]
    with duckdb.connect() as con:
        con.register("identifiers", today_identifiers.to_arrow())
        con.register("records", today.to_arrow())
        con.register("previous", previous.to_arrow())
        con.register("candidates", candidates.to_arrow())
        every, every_replaced = relink(con, "identifiers", "records", DEMO_RULES, "previous")
        every = every.pl()
        fresh, replaced = relink(con, "identifiers", "records", DEMO_RULES, "previous", candidates="candidates")
        fresh = fresh.pl()
        # the candidates' rows given apart, among others' (as the rows staged since the last run hold them)
        staged = pl.concat([candidates, today.select(KEYS).sample(fraction=0.1, seed=3)]).unique()
        con.register("staged_identifiers", today_identifiers.join(staged, on=KEYS, how="semi").to_arrow())
        con.register("staged_records", today.join(staged, on=KEYS, how="semi").to_arrow())
        given = {"identifiers": "staged_identifiers", "records": "staged_records"}
        from_staged, staged_replaced = relink(
            con, "identifiers", "records", DEMO_RULES, "previous", candidates="candidates", candidate_rows=given
        )
        from_staged = from_staged.pl()
    assert replaced.sort(KEYS).equals(every_replaced.sort(KEYS))
    assert fresh.drop("resolution").sort(order).equals(every.drop("resolution").sort(order))
    assert staged_replaced.sort(KEYS).equals(replaced.sort(KEYS))
    assert from_staged.drop("resolution").sort(order).equals(fresh.drop("resolution").sort(order))
    assert replaced.height < 0.5 * today.height
    kept = previous.join(replaced, on=KEYS, how="anti")
    whole = link_records(today_identifiers, today, DEMO_RULES)
    assert pl.concat([kept, fresh]).drop("resolution").sort(order).equals(whole.drop("resolution").sort(order))


@pytest.mark.parametrize(
    ("mix", "seed", "rules"),
    [
        ("balanced", 11, DEMO_RULES),
        ("households", 12, DEMO_RULES),
        # tight limits, a short recycling pause and values crowded at four records: the guards an attach checks
        ("households", 13, replace(DEMO_RULES, recycle_days=30, max_records_per_value=4, limits={"phone": 1})),
    ],
)
def test_new_records_attached_without_resolving_their_profile_again_leave_the_table_a_resolution_of_all(
    mix, seed, rules
):
    """A night whose new records include many that only join a known profile (a known customer's new order): those
    get their rows without their neighbourhood being resolved again, and the table equals resolving everything."""
    frames = messy_data.staged(messy_data.build(messy_data.MessyConfig(persons=300, seed=seed, mix=mix)))
    raw, records = extract_identifiers(frames)
    identifiers = normalise_identifiers(raw, rules)
    late = pl.int_range(pl.len()).over("source") % 4 == 0  # a quarter of each source's records arrive today
    first_day = records.filter(~late)
    previous = link_records(identifiers.join(first_day, on=KEYS, how="semi"), first_day, rules)
    with duckdb.connect() as con:
        con.register("identifiers", identifiers.to_arrow())
        con.register("records", records.to_arrow())
        con.register("previous", previous.to_arrow())
        con.register("candidates", records.filter(late).select(KEYS).to_arrow())
        fresh, replaced = relink(con, "identifiers", "records", rules, "previous", candidates="candidates")
        fresh = fresh.pl()
    attached = fresh.select(KEYS).unique().join(replaced, on=KEYS, how="anti")
    assert attached.height >= 10  # new records with rows of their own, no neighbourhood resolved for them
    assert attached.join(previous, on=KEYS, how="semi").is_empty()  # only new records are attached
    order = [*KEYS, "id_type", "value"]
    kept = previous.join(replaced, on=KEYS, how="anti")
    whole = link_records(identifiers, records, rules)
    assert pl.concat([kept, fresh]).drop("resolution").sort(order).equals(whole.drop("resolution").sort(order))


def _budi_and_a_new_record(new, extra=()):
    """(identifier rows, records) of Budi's account C1 and three orders of it, `extra` rows (source, record_id,
    id_type, raw_value, name) and the new record's `new` rows (the same shape)."""
    rows = [
        ("webshop_customer", "C1", "webshop_customer_id", "C1", "Budi Santoso"),
        ("webshop_customer", "C1", "email", "budi@contoh.id", "Budi Santoso"),
        ("webshop_customer", "C1", "phone", "0813-9271-5508", "Budi Santoso"),
        *[("webshop_order", f"O{k}", "webshop_customer_id", "C1", None) for k in (1, 2, 3)],
        *[("webshop_order", f"O{k}", "order_id", f"O{k}", None) for k in (1, 2, 3)],
        *extra,
        *new,
    ]
    frame = pl.DataFrame(rows, schema=["source", "record_id", "id_type", "raw_value", "name"], orient="row")
    records = frame.group_by(KEYS, maintain_order=True).agg(pl.col("name").first())
    day = pl.int_range(pl.len()).cast(pl.Int32) * 10  # a record every ten days: no pause to recycle a number
    records = records.with_columns(
        name_rank=pl.lit(0, pl.Int32),
        city=pl.lit(None, pl.Utf8),
        seen_on=pl.date(2025, 1, 1) + pl.duration(days=day),
        current=pl.col("source") == "webshop_customer",
    )
    return frame.drop("name"), records


@pytest.mark.parametrize(
    ("new", "extra", "rules", "attached"),
    [
        # a new order of the known account: it joins Budi's profile as it is
        ([("webshop_order", "O9", "webshop_customer_id", "C1", None)], (), DEMO_RULES, True),
        # ... unless it makes the account id too common to link (five records, four allowed)
        (
            [("webshop_order", "O9", "webshop_customer_id", "C1", None)],
            (),
            replace(DEMO_RULES, max_records_per_value=4),
            False,
        ),
        # a guest order with the account's email and phone, which the account carries together
        (
            [
                ("webshop_order", "O9", "email", "Budi@Contoh.id", None),
                ("webshop_order", "O9", "phone", "+62 813 9271 5508", None),
            ],
            (),
            DEMO_RULES,
            True,
        ),
        # ... but a phone of the profile that no record carried with that email: two groups may join earlier
        (
            [
                ("webshop_order", "O9", "email", "budi@contoh.id", None),
                ("webshop_order", "O9", "phone", "0857-1122-9900", None),
            ],
            [
                ("webshop_order", "O4", "webshop_customer_id", "C1", None),
                ("webshop_order", "O4", "phone", "0857-1122-9900", None),
            ],
            DEMO_RULES,
            False,
        ),
        # a named record: its name is compared (and here disagrees: the phone is shared)
        ([("webshop_order", "O9", "phone", "+62 813 9271 5508", "Siti Rahayu")], (), DEMO_RULES, False),
        # an order id alone is no person's identifier
        ([("webshop_order", "O9", "order_id", "O1", None)], (), DEMO_RULES, False),
        # a new email for the profile: it counts toward the email limit
        (
            [
                ("webshop_order", "O9", "webshop_customer_id", "C1", None),
                ("webshop_order", "O9", "email", "budi.baru@contoh.id", None),
            ],
            (),
            DEMO_RULES,
            False,
        ),
        # Budi's phone is shared with Siti: the neighbourhood holds a row that does not link (the matcher's)
        (
            [("webshop_order", "O9", "webshop_customer_id", "C1", None)],
            [
                ("webshop_customer", "C2", "webshop_customer_id", "C2", "Siti Rahayu"),
                ("webshop_customer", "C2", "phone", "0813-9271-5508", "Siti Rahayu"),
            ],
            DEMO_RULES,
            False,
        ),
        # an unnamed ticket whose key sorts before the account's: it would name the profile
        ([("helpdesk_ticket", "T0", "email", "budi@contoh.id", None)], (), DEMO_RULES, False),
    ],
)
def test_only_a_new_record_that_changes_no_decision_is_attached(new, extra, rules, attached):
    identifiers, records = _budi_and_a_new_record(new, extra)
    identifiers = normalise_identifiers(identifiers, rules)
    new_keys = pl.DataFrame([row[:2] for row in new], schema=KEYS, orient="row").unique()
    before = records.join(new_keys, on=KEYS, how="anti")
    previous = link_records(identifiers.join(before, on=KEYS, how="semi"), before, rules)
    with duckdb.connect() as con:
        con.register("identifiers", identifiers.to_arrow())
        con.register("records", records.to_arrow())
        con.register("previous", previous.to_arrow())
        con.register("candidates", new_keys.to_arrow())
        fresh, replaced = relink(con, "identifiers", "records", rules, "previous", candidates="candidates")
        fresh = fresh.pl()
    assert (replaced.join(new_keys, on=KEYS, how="semi").is_empty()) is attached
    order = [*KEYS, "id_type", "value"]
    kept = previous.join(replaced, on=KEYS, how="anti")
    whole = link_records(identifiers, records, rules)
    assert pl.concat([kept, fresh]).drop("resolution").sort(order).equals(whole.drop("resolution").sort(order))


def test_a_full_build_in_batches_of_neighbourhoods_resolves_as_all_at_once(messy, tmp_path):
    records, identifiers = messy.records, messy.identifiers
    at_once = resolve_identities(identifiers, records, DEMO_RULES)
    expected = pl.concat([at_once.links, at_once.linkless], how="diagonal")
    order = [*KEYS, "id_type", "value"]
    assert records.height > 3 * 300
    # the connection's memory_limit: it keeps a share beside the frames; the batch files go to the temp_directory
    limits = {"memory_limit": "1GB", "temp_directory": str(tmp_path / "spill")}
    killed = tmp_path / "spill" / f"{BATCH_FILES}killed"  # a killed build's batch files, personal data
    killed.mkdir(parents=True)
    (killed / "rows.parquet").write_bytes(b"rina@gmail.com")
    with duckdb.connect(config={"memory_limit": "1GB"}) as con:
        con.register("identifiers", identifiers.to_arrow())
        con.register("records", records.to_arrow())
        con.execute("create table prints as " + record_fingerprints(con, "identifiers", "records").sql_query())
        for batch_records in (300, records.height):  # several batches, then all in one
            table = resolve_in_batches(con, "identifiers", "records", "prints", DEMO_RULES, 7, limits, batch_records)
            batched = con.table(table).pl()
            assert batched.get_column("resolution").unique().to_list() == [7]
            assert batched.select(expected.columns).sort(order).equals(expected.sort(order))
        assert con.execute("select current_setting('memory_limit')").fetchone()[0] == "953.6 MiB"  # 1GB again
    assert not list((tmp_path / "spill").glob(f"{BATCH_FILES}*"))  # none left, the killed build's neither
    assert expected.get_column("reason").drop_nulls().n_unique() >= 3  # shared values decided in the batches too


def test_batches_take_the_oldest_records_first_in_the_rules_key_order():
    # Four accounts of one person on one email, each with its own phone: the three oldest join, the fourth would
    # break the phone limit of 3. "Oldest" is the sort order of the keys, which the batches number in DuckDB; these
    # keys sort differently by bytes (C a b \u00c1) than case- or accent-blind (a \u00c1 b C).
    keys = ["b", "C", "a", "\u00c1"]
    rows = [
        row
        for key, phone in zip(
            keys, ("0812-0000-1111", "0812-0000-2222", "0812-0000-3333", "0812-0000-4444"), strict=True
        )
        for row in (
            ("webshop_customer", key, "webshop_customer_id", key),
            ("webshop_customer", key, "email", "rina@gmail.com"),
            ("webshop_customer", key, "phone", phone),
        )
    ]
    raw = pl.DataFrame(rows, schema=["source", "record_id", "id_type", "raw_value"], orient="row")
    identifiers = normalise_identifiers(raw, DEMO_RULES)
    records = pl.DataFrame({"source": "webshop_customer", "record_id": keys, "name": "Rina Wijaya", "name_rank": 0})
    at_once = resolve_identities(identifiers, records, DEMO_RULES)
    profiles = at_once.clusters.group_by("cluster_key").agg(pl.col("record_id").sort()).get_column("record_id")
    assert sorted(profiles.to_list()) == [["C", "a", "b"], ["\u00c1"]]  # the last by bytes stays apart
    order = [*KEYS, "id_type", "value"]
    with duckdb.connect() as con:
        con.register("identifiers", identifiers.to_arrow())
        con.register("records", records.to_arrow())
        con.execute("create table prints as " + record_fingerprints(con, "identifiers", "records").sql_query())
        batched = con.table(resolve_in_batches(con, "identifiers", "records", "prints", DEMO_RULES, 7)).pl()
    assert batched.select(at_once.links.columns).sort(order).equals(at_once.links.sort(order))


def test_record_rows_in_duckdb_equal_the_extracted_records(messy):
    staged, records = messy.staged, messy.records
    with duckdb.connect() as con:
        in_duckdb = record_rows(staged_relations(con, staged)).pl()
    assert in_duckdb.schema == records.schema
    assert in_duckdb.sort(KEYS).equals(records.sort(KEYS))
    assert in_duckdb.get_column("seen_on").null_count() < in_duckdb.height


@pytest.mark.parametrize("days", [400, 20])
def test_a_record_whose_only_change_is_a_day_no_decision_reads_keeps_its_rows(messy, days):
    """The demo's nights move the day of thousands of orders and accounts (a status change, an account update):
    only the records whose day can change what the recycled-number rule or the matcher decides are resolved again
    with their neighbourhoods; the others keep their decisions and get today's fingerprint and day. Either way the
    table is what resolving everything gives, even where the move makes a number recycled. A move of a few weeks
    (a status change) keeps most records."""
    records, identifiers, previous = messy.records, messy.identifiers, messy.links
    later = pl.int_range(pl.len()).over("source") % 7 == 0
    moved = records.filter(later & pl.col("seen_on").is_not_null()).with_columns(
        seen_on=pl.col("seen_on") + pl.duration(days=days)
    )
    today = pl.concat([records.join(moved, on=KEYS, how="anti"), moved])
    order = [*KEYS, "id_type", "value"]
    with duckdb.connect() as con:
        con.register("identifiers", identifiers.to_arrow())
        con.register("records", today.to_arrow())
        con.register("previous", previous.to_arrow())
        con.register("candidates", moved.select(KEYS).to_arrow())
        every, every_replaced = relink(con, "identifiers", "records", DEMO_RULES, "previous")
        every = every.pl()
        fresh, replaced = relink(con, "identifiers", "records", DEMO_RULES, "previous", candidates="candidates")
        fresh = fresh.pl()
        # a table of the older layout, without the day: every moved record counts as changed
        con.register("undated", previous.drop("seen_on").to_arrow())
        _, undated_replaced = relink(con, "identifiers", "records", DEMO_RULES, "undated", candidates="candidates")
    assert replaced.sort(KEYS).equals(every_replaced.sort(KEYS))
    assert fresh.drop("resolution").sort(order).equals(every.drop("resolution").sort(order))
    whole = link_records(identifiers, today, DEMO_RULES)
    kept = previous.join(replaced, on=KEYS, how="anti")
    assert pl.concat([kept, fresh]).drop("resolution").sort(order).equals(whole.drop("resolution").sort(order))
    # Moved records both ways: kept with their decisions and old resolution, and resolved again (a shared
    # phone's day, a matcher candidate's activity) with their whole neighbourhoods.
    newest = fresh.get_column("resolution").max()
    resolved = fresh.filter(pl.col("resolution") == newest).select(KEYS).unique()
    kept_moved = fresh.filter(pl.col("resolution") < newest).select(KEYS).unique()
    assert kept_moved.join(moved, on=KEYS, how="anti").is_empty()
    assert kept_moved.height > (0.5 if days < 30 else 0.2) * moved.height
    assert resolved.join(moved, on=KEYS, how="semi").height > 0.2 * moved.height
    assert resolved.height < 0.8 * undated_replaced.height
    # the move made numbers recycled: decisions it reaches changed, and were resolved again
    assert not whole.filter(pl.col("reason") == "recycled").equals(previous.filter(pl.col("reason") == "recycled"))


def test_a_night_takes_the_candidates_rows_from_what_it_staged_unless_erasure_marked_records():
    """int_identity_links' night_candidates: the rows staged since the watermark hold every candidate's rows only when
    no record is marked by erasure (a marked neighbour's rows are older), so then relink must search the history."""
    import importlib.util
    from datetime import datetime

    from pipeline.defs.dbt.resources import DBT_DIR

    spec = importlib.util.spec_from_file_location(
        "links", DBT_DIR / "models" / "intermediate" / "int_identity_links.py"
    )
    links = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(links)
    seen, night = datetime(2026, 1, 5, 23), datetime(2026, 1, 6, 23)
    with duckdb.connect() as con:
        con.execute(
            "create table previous as "
            "select * from (values ('a', '1', 5), ('a', '2', 7)) t(source, record_id, fingerprint)"
        )
        rows = "(values ('a', '1', 'x', ?::timestamp), ('a', '2', 'y', ?::timestamp), ('a', '3', 'z', ?::timestamp))"
        con.execute(
            f"create table idents as select * from {rows} t(source, record_id, value, staged_until)",
            [seen, seen, night],
        )
        con.execute("create table recs as select source, record_id, staged_until from idents")
        views = {
            "identifiers": (con.table("idents"), "source, record_id, value"),
            "records": (con.table("recs"), "source, record_id"),
        }

        candidates, staged = links.night_candidates(con, "previous", seen, views)
        assert con.table(candidates).fetchall() == [("a", "3")]
        assert staged == {"identifiers": "identity_restaged_identifiers", "records": "identity_restaged_records"}
        assert con.table(staged["identifiers"]).fetchall() == [("a", "3", "z")]

        con.execute("update previous set fingerprint = 0 where record_id = '2'")  # erasure marked a neighbour
        candidates, staged = links.night_candidates(con, "previous", seen, views)
        assert sorted(con.table(candidates).fetchall()) == [("a", "2"), ("a", "3")]
        assert staged is None


def test_rows_of_neighbourhoods_are_the_same_from_a_table_and_from_a_frame(tmp_path):
    """The rows of the neighbourhoods that hold a wanted record or carry a usable value of today's identifiers: from a
    table fetched by rowid after matching on the selecting columns alone, from a frame by a semi join. The same rows,
    every column, deleted rows left out; a value rejected today touches nothing."""
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("""create schema intermediate; create table intermediate.links as select * from (values
            ('webshop_order', 'O1', 'email', 'a@x.id', 'n1'), ('webshop_order', 'O1', 'phone', '+62811', 'n1'),
            ('helpdesk_ticket', 'T1', 'email', 'a@x.id', 'n1'),
            ('webshop_order', 'O2', 'email', 'b@x.id', 'n2'), ('survey_response', 'S2', 'email', 'b@x.id', 'n2'),
            ('webshop_order', 'O3', 'email', 'c@x.id', 'n3'), ('helpdesk_ticket', 'O1', 'email', 'd@x.id', 'n4')
        ) t(source, record_id, id_type, value, neighbourhood)""")
        con.execute("delete from intermediate.links where value = '+62811'")
        con.execute("create temp table wanted as select 'webshop_order' as source, 'O1' as record_id")
        con.execute("""create temp table today as select * from (values
            ('survey_response', 'S9', 'email', 'b@x.id', 'ok'), ('survey_response', 'S9', 'email', 'c@x.id', 'invalid')
        ) t(source, record_id, id_type, value, status)""")
        frame = con.table("intermediate.links").pl()
        con.register("links_frame", frame.to_arrow())
        from_table = rows_of_neighbourhoods(con, "intermediate.links", "wanted", "today")
        from_frame = rows_of_neighbourhoods(con, "links_frame", "wanted", "today")
        assert "rowid" in from_table and "rowid" not in from_frame
        expected = [
            ("helpdesk_ticket", "T1", "email", "a@x.id", "n1"),
            ("survey_response", "S2", "email", "b@x.id", "n2"),
            ("webshop_order", "O1", "email", "a@x.id", "n1"),
            ("webshop_order", "O2", "email", "b@x.id", "n2"),
        ]
        assert sorted(con.execute(from_table).fetchall()) == sorted(con.execute(from_frame).fetchall()) == expected
