"""Identity resolution: canonical identifier values, identity rules, persons as connected components, stable ids.

The graph: one node per source record; a record links to another through an identifier value both carry. Links are
decided value by value, identifier type by identifier type in priority order (Segment Unify's model):

  canonical   emails lose `mailto:`, display names, comments, every Unicode space and trailing dots and are
              lower-cased, then are syntax-checked (email-validator); phones go to E.164 (pipeline.lib.phones).
              Rejected values keep a reason (invalid email, invalid phone, blocklist pattern) and never link.
  blocklists  configurable regular expressions per identifier type (placeholder addresses, repeated or sequential
              digits).
  limits      a profile holds at most `limits[type]` values of each type (account 5, email 5, phone 3, requester 3).
              A value that would merge profiles into one over a limit is not used as a link (`limit_exceeded`).
  names       a value whose profiles carry names that disagree (first names unlike each other) is a shared contact:
              a household landline, a courier's phone, a recycled number (`names_disagree`).
A value refused as a link is *shared*: it is listed with its evidence and never hard-links anything, but it stays
evidence for the probabilistic matcher (pipeline.lib.identity_matching), which may still link two of the profiles
it touches on names, city and activity period.
Everything here is set-wise (polars, numpy, scipy's connected components); per-value Python runs only on distinct
phone spellings (cached) and on the few emails a strict pattern cannot accept on its own.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
from email_validator import EmailNotValidError, validate_email
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pipeline.lib.phones import PARSER, normalise_phones
from pipeline.lib.sources.registry import person_records
from pipeline.lib.warehouse import in_memory, literal_list, memory_share, quote_literal

IDENTIFIER_TYPES = ("webshop_customer_id", "order_id", "email", "phone", "helpdesk_requester_id")
CONTACT_TYPES = ("email", "phone")
PERSON_TYPES = ("webshop_customer_id", "email", "phone", "helpdesk_requester_id")  # an order id alone is no person
CHANNEL_TYPES = ("helpdesk_requester_id",)  # ids a channel derives from a contact (WhatsApp: the phone)
PHONE_GRADE = ("phone", *CHANNEL_TYPES)  # numbers change hands
ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
ALWAYS = 1_000_000_000  # days: a span that covers every date

# Every Unicode space, zero-width characters and the byte-order mark.
SPACES = r"[\s\x{200B}-\x{200D}\x{2060}\x{FEFF}]"
# Addresses this strict ASCII pattern accepts are valid for email-validator too; only the rest are checked one by one.
PLAIN_EMAIL = (
    r"^[a-z0-9_%+\-]+(\.[a-z0-9_%+\-]+)*@([a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?\.)+"
    r"(?:[a-z]{2,63})$"
)
SPECIAL_USE_TLDS = r"\.(arpa|invalid|local|localhost|onion|test)$"

DEFAULT_BLOCKLISTS = {
    # Placeholders people type when a form insists: test@…, noemail@…, tidakada@…, -@…, a@a.com, @example.com.
    "email": (
        r"^(test|tes|testing|noemail|no-?email|nomail|no\.?mail|none|null|nil|na|n\.a|tidakada|tidak\.?ada|tdkada|"
        r"belumada|kosong|dummy|sample|example|asdf|qwerty|abc|email|user|anonymous|unknown|x+|-+|\.+|0+)@",
        r"@(example|test|email|domain)\.(com|net|org|id|co\.id)$",
        r"^[a-z0-9]@[a-z0-9]{1,2}\.[a-z]{2,3}$",
    ),
    # Matched against the digits of the E.164 number.
    "phone": (
        r"0{6,}|1{6,}|2{6,}|3{6,}|4{6,}|5{6,}|6{6,}|7{6,}|8{6,}|9{6,}",  # six or more repeats: 08000000000
        r"0123456|1234567|2345678|3456789|9876543|8765432|7654321|6543210",  # sequential runs
    ),
}


@dataclass(frozen=True)
class IdentityRules:
    """The identity rules; defaults are the documented values of the `identity:` config section, except the phone
    region, which has none: callers pass the shop's (`identity.default_region`)."""

    default_region: str  # region national phone numbers are read in (ISO 3166 alpha-2)
    # Identifier types in the order their links are decided (first = most trusted).
    priority: tuple[str, ...] = ("webshop_customer_id", "order_id", "email", "phone", "helpdesk_requester_id")
    # Most values of a type one profile may hold; types not listed are unlimited.
    limits: Mapping[str, int] = field(
        default_factory=lambda: {"webshop_customer_id": 5, "email": 5, "phone": 3, "helpdesk_requester_id": 3}
    )
    # Optional time window per limited type, in days (Segment Unify's limit within a time window): values of that
    # type count together toward its limit only when the profile used them within this many days of each other, so
    # a profile may change numbers over the years. Types not listed (the default: none) count every value held.
    limit_windows: Mapping[str, int] = field(default_factory=dict)
    blocklists: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_BLOCKLISTS))
    # Two names are the same person's when their Jaro-Winkler similarity reaches this and they start with the same
    # letter: Budi/Budy 0.883 together, Dewi/Dedi 0.867 apart (Putri/Putra 0.92 cannot be told from a typo).
    name_similarity: float = 0.87
    # A value on more records than this is shared outright (a shop's own number), without comparing names.
    max_records_per_value: int = 5000
    # A phone-grade value unused for this many days, with differently named profiles before and after the pause, is
    # a recycled number: it links nobody (None switches the rule off). An account's phone counts as in use from the
    # account's last update on.
    recycle_days: int | None = 270
    # The probabilistic matcher links two profiles that share a refused value at or above this match probability.
    match_probability: float = 0.95
    phone_parse_workers: int = 0  # processes parsing phones (0 = one per core)

    def digest(self) -> str:
        """md5 of the settings that decide links (not how many processes parse phones): stored with the links, so a
        run with other rules resolves everything again."""
        deciding = {k: v for k, v in asdict(self).items() if k != "phone_parse_workers"}
        return hashlib.md5(json.dumps(deciding, sort_keys=True, default=list).encode()).hexdigest()

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> IdentityRules:
        """Rules from the `identity:` config section; absent keys keep their defaults, unknown keys are an error."""
        unknown = set(cfg) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown identity settings {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        if not cfg.get("default_region"):
            raise ValueError("identity.default_region is required (the region national phone numbers are read in)")
        known = dict(cfg)
        if "priority" in known:
            known["priority"] = tuple(str(v) for v in known["priority"])
            if sorted(known["priority"]) != sorted(IDENTIFIER_TYPES):
                raise ValueError(f"identity.priority must list each of {IDENTIFIER_TYPES} once")
        if "limits" in known:
            known["limits"] = {str(k): int(v) for k, v in (known["limits"] or {}).items()}
            bad = set(known["limits"]) - set(IDENTIFIER_TYPES)
            if bad:
                raise ValueError(f"identity.limits names unknown identifier types {sorted(bad)}")
        if "limit_windows" in known:
            known["limit_windows"] = {str(k): int(v) for k, v in (known["limit_windows"] or {}).items()}
            limited = known.get("limits", cls.__dataclass_fields__["limits"].default_factory())
            unlimited = set(known["limit_windows"]) - set(limited)
            if unlimited:
                raise ValueError(f"identity.limit_windows names types without a limit {sorted(unlimited)}")
            if any(days < 1 for days in known["limit_windows"].values()):
                raise ValueError("identity.limit_windows are whole days, at least 1")
        if "blocklists" in known:
            lists = {str(k): tuple(str(p) for p in (v or ())) for k, v in (known["blocklists"] or {}).items()}
            bad = set(lists) - set(CONTACT_TYPES)
            if bad:
                raise ValueError(f"identity.blocklists has lists for {sorted(bad)}; only email and phone have them")
            known["blocklists"] = {**{t: () for t in CONTACT_TYPES}, **lists}
        return cls(**known)


@dataclass(frozen=True)
class Resolution:
    clusters: pl.DataFrame  # source, record_id, cluster_key (the smallest record key of its cluster)
    violations: pl.DataFrame  # id_type, value, reason, records, linked, detail
    # source, record_id, id_type, value, linked, reason, detail, profile_key (its cluster_key), neighbourhood (the
    # component through every usable value, linked or not: smallest record key)
    links: pl.DataFrame
    linkless: pl.DataFrame  # source, record_id, neighbourhood (itself) of the records without a usable identifier

    @property
    def candidates(self) -> pl.DataFrame:
        """left_key, right_key, id_type, value: profile pairs joined only by a shared value."""
        return candidate_pairs(self.links)


# --------------------------------------------------------------------------------------------- canonical values


def canonical_emails(values: pl.Series) -> pl.Series:
    """The address inside any display name or `mailto:` link, without comments, spaces or trailing dots, lower-cased
    (unvalidated).

    The address is the part in angle brackets (`Budi <budi@x.id>`), else the whole text without its spaces (`budi @
    x.id`: a space inside an address is a typo, not a separator). Parenthesised comments (`budi@x.id (kantor)`, as
    RFC 5322 allows them) and a mailto link's query (`?subject=…`) go too."""
    text = values.cast(pl.Utf8).str.normalize("NFKC").str.replace_all(r"\([^()]*\)", "")
    inside_brackets = text.str.extract(r"<([^<>]*@[^<>]*)>", 1)
    return (
        pl.select(pl.coalesce(inside_brackets, text))
        .to_series()
        .str.replace_all(SPACES, "")
        .str.replace(r"(?i)^mailto:([^?]*)(\?.*)?$", "$1")
        .str.strip_chars("\"'<>;,")
        .str.strip_chars_end(".")
        .str.to_lowercase()
        .rename(values.name)
    )


def _valid_by_library(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def normalise_emails(values: pl.Series) -> pl.Series:
    """Canonical addresses (`canonical_emails`); null where the syntax is not a valid address."""
    canonical = canonical_emails(values)
    distinct = canonical.drop_nulls().unique()
    plain = distinct.str.contains(PLAIN_EMAIL) & ~distinct.str.contains(SPECIAL_USE_TLDS)
    others = distinct.filter(~plain)
    checked = pl.DataFrame(
        {"email": others, "valid": [_valid_by_library(v) for v in others.to_list()]},
        schema={"email": pl.Utf8, "valid": pl.Boolean},
    )
    valid = pl.concat([distinct.filter(plain), checked.filter("valid").get_column("email")])
    return pl.select(pl.when(canonical.is_in(valid.implode())).then(canonical)).to_series().rename(values.name)


def _blocked(values: pl.Expr, patterns: tuple[str, ...]) -> pl.Expr:
    """The index of the first pattern `values` match, else null."""
    expr = pl.lit(None, pl.UInt32)
    for index in reversed(range(len(patterns))):
        expr = pl.when(values.str.contains(patterns[index])).then(pl.lit(index, pl.UInt32)).otherwise(expr)
    return expr


def normalise_identifiers(
    raw: pl.DataFrame, rules: IdentityRules, known_phones: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Normalise `source, record_id, id_type, raw_value` rows; adds `value`, `status` (ok|invalid|blocklisted) and
    `reason` (why a value was rejected).

    Rows without a raw value are dropped. `value` is null unless the status is ok. `known_phones` (raw_phone,
    phone_e164; see pipeline.lib.phones) are earlier parses to reuse.
    """
    rows = raw.filter(pl.col("raw_value").is_not_null()).with_columns(pl.col("raw_value").cast(pl.Utf8))
    lookup = identifier_lookup(rows.select("id_type", "raw_value").unique(), rules, known_phones)
    return rows.join(lookup, on=["id_type", "raw_value"], how="left", maintain_order="left")


# A key (account, order, requester id) spelled with these characters only is its own canonical value: nothing to
# trim, not empty.
PLAIN_KEY = r"[A-Za-z0-9._:/@+\-]+"


# Bump when a spelling's canonical value or status changes (a new normalisation rule): lookups stored by earlier
# runs (int_identifiers) are then made again instead of reused.
NORMALISER_VERSION = 2


def lookup_digest(rules: IdentityRules) -> str:
    """md5 of what decides a spelling's value and status (blocklists, phone region and parser, NORMALISER_VERSION):
    stored with the identifier rows, so a later run reuses their lookups only when it would make the same ones."""
    deciding = [dict(rules.blocklists), rules.default_region, PARSER, NORMALISER_VERSION]
    return hashlib.md5(json.dumps(deciding, sort_keys=True, default=list).encode()).hexdigest()


# Distinct spellings looked up together (identifier_lookup): the frames of one chunk, not of every spelling in the
# history, are alive at once.
LOOKUP_CHUNK = 500_000


def normalised_rows(
    con: duckdb.DuckDBPyConnection,
    rows: duckdb.DuckDBPyRelation,
    rules: IdentityRules,
    known_phones: pl.DataFrame | None = None,
    known: str | None = None,
    duckdb_config: DuckDBConfig | None = None,
    chunk: int = LOOKUP_CHUNK,
) -> duckdb.DuckDBPyRelation:
    """normalise_identifiers of `rows` (identifier_rows: a relation of `con`) as a relation of `con`: only the
    distinct spellings of contacts and of keys that are not PLAIN_KEY, and not in `known`, leave DuckDB for
    identifier_lookup, `chunk` of them at a time (a spelling's lookup does not depend on the others); the lookups go
    back into a temporary table (DuckDB's memory: bounded, spillable), which is joined there. `known`: the name of a
    relation of `con` with earlier lookups' rows (id_type, raw_value, value, status, reason) made under the same
    lookup_digest, e.g. the previous int_identifiers: a nightly run looks up only new spellings. While the chunks
    are looked up, `con`'s DuckDB keeps DUCKDB_SHARE_BESIDE_FRAMES of `duckdb_config`'s memory_limit (see
    resolve_in_batches)."""
    contact_types = literal_list(CONTACT_TYPES)
    needed = f"id_type in ({contact_types}) or not regexp_full_match(raw_value, '{PLAIN_KEY}')"
    unknown = set(rows.project("id_type").distinct().pl().get_column("id_type").to_list()) - set(IDENTIFIER_TYPES)
    if unknown:
        raise ValueError(f"unknown identifier types {sorted(unknown)}")
    distinct = rows.filter(needed).project("id_type, raw_value").distinct()
    if known is not None:
        # only the earlier lookups of these spellings: a nightly's few, not the history's
        con.execute("create or replace temp table identity_spellings as " + distinct.sql_query())
        con.execute(
            "create or replace temp table identity_known_lookup as "
            f"select distinct id_type, raw_value, value, status, reason from {known} "
            "semi join identity_spellings using (id_type, raw_value)"
        )
        con.execute("drop table identity_spellings")
        distinct = distinct.set_alias("spelling").join(
            con.table("identity_known_lookup").set_alias("known"),
            "spelling.id_type = known.id_type and spelling.raw_value = known.raw_value",
            how="anti",
        )
    # numbered, so that each chunk is a range of them
    con.execute(
        "create or replace temp table identity_spellings as "
        f"select id_type, raw_value, row_number() over () as n from ({distinct.sql_query()})"
    )
    con.execute(
        "create or replace temp table identity_value_lookup "
        "(id_type varchar, raw_value varchar, value varchar, status varchar, reason varchar)"
    )
    spellings = con.execute("select count(*) from identity_spellings").fetchone()[0]
    with memory_share(con, (duckdb_config or {}).get("memory_limit"), DUCKDB_SHARE_BESIDE_FRAMES):
        for start in range(0, spellings, chunk):
            part = con.execute(
                "select id_type, raw_value from identity_spellings where n > ? and n <= ?", [start, start + chunk]
            ).pl()
            con.register("identity_lookup_frame", identifier_lookup(part, rules, known_phones).to_arrow())
            del part
            con.execute("insert into identity_value_lookup select * from identity_lookup_frame")
            con.unregister("identity_lookup_frame")
    con.execute("drop table identity_spellings")
    if known is not None:
        con.execute("insert into identity_value_lookup select * from identity_known_lookup")
        con.execute("drop table identity_known_lookup")
    plain = "lookup.id_type is null"  # a plain key
    return (
        rows.set_alias("row")
        .join(
            con.table("identity_value_lookup").set_alias("lookup"),
            "row.id_type = lookup.id_type and row.raw_value = lookup.raw_value",
            how="left",
        )
        .project(
            "row.source, row.record_id, row.id_type, row.raw_value, "
            f"if({plain}, row.raw_value, lookup.value) as value, if({plain}, 'ok', lookup.status) as status, "
            "lookup.reason"
        )
    )


def identifier_lookup(
    distinct: pl.DataFrame, rules: IdentityRules, known_phones: pl.DataFrame | None = None
) -> pl.DataFrame:
    """id_type, raw_value, value, status, reason for distinct (id_type, raw_value) pairs: what
    normalise_identifiers adds to each row carrying them. A caller holding the rows elsewhere (the dbt model, in
    the warehouse) normalises only the distinct spellings and joins them back there."""
    unknown = set(distinct.get_column("id_type").unique().to_list()) - set(IDENTIFIER_TYPES)
    if unknown:
        raise ValueError(f"unknown identifier types {sorted(unknown)}")
    emails = distinct.filter(pl.col("id_type") == "email")
    phones = distinct.filter(pl.col("id_type") == "phone")
    keys = distinct.filter(~pl.col("id_type").is_in(CONTACT_TYPES))
    email_patterns = tuple(rules.blocklists.get("email", ()))
    phone_patterns = tuple(rules.blocklists.get("phone", ()))

    emails = emails.with_columns(normalised=normalise_emails(emails.get_column("raw_value"))).with_columns(
        pattern=_blocked(pl.col("normalised"), email_patterns),
        invalid=pl.lit("invalid email address"),
        patterns=pl.lit(list(email_patterns), pl.List(pl.Utf8)),
    )
    e164 = normalise_phones(
        phones.get_column("raw_value"), rules.default_region, known_phones, rules.phone_parse_workers
    )
    phones = phones.with_columns(normalised=e164).with_columns(
        pattern=_blocked(pl.col("normalised").str.strip_chars_start("+"), phone_patterns),
        invalid=pl.lit("not a valid phone number"),
        patterns=pl.lit(list(phone_patterns), pl.List(pl.Utf8)),
    )
    keys = keys.with_columns(normalised=pl.col("raw_value").str.replace_all(f"^{SPACES}+|{SPACES}+$", "")).with_columns(
        normalised=pl.when(pl.col("normalised") != "").then(pl.col("normalised")),
        pattern=pl.lit(None, pl.UInt32),
        invalid=pl.lit("empty key"),
        patterns=pl.lit([], pl.List(pl.Utf8)),
    )
    return pl.concat([emails, phones, keys]).select(
        "id_type",
        "raw_value",
        value=pl.when(pl.col("pattern").is_null()).then(pl.col("normalised")),
        status=pl.when(pl.col("normalised").is_null())
        .then(pl.lit("invalid"))
        .when(pl.col("pattern").is_not_null())
        .then(pl.lit("blocklisted"))
        .otherwise(pl.lit("ok")),
        reason=pl.when(pl.col("normalised").is_null())
        .then(pl.col("invalid"))
        .when(pl.col("pattern").is_not_null())
        .then(pl.format("blocklist pattern {}", pl.col("patterns").list.get(pl.col("pattern"), null_on_oob=True))),
    )


HONORIFICS = (
    "ibu",
    "bu",
    "bapak",
    "pak",
    "bpk",
    "mas",
    "mbak",
    "kak",
    "mama",
    "papa",
    "bunda",
    "ayah",
    "om",
    "tante",
    "sdr",
    "sdri",
    "mr",
    "mrs",
    "ms",
    "dr",
    "h",
    "hj",
)


def name_parts(full_names: pl.Series) -> pl.DataFrame:
    """first, last (null for a one-word name): lower-cased, accents and honorifics dropped."""
    tokens = (
        full_names.cast(pl.Utf8)
        .str.normalize("NFKD")
        .str.replace_all(r"\p{M}", "")
        .str.to_lowercase()
        .str.replace_all(r"[^\p{L}]+", " ")
        .str.strip_chars()
        .str.split(" ")
        .list.eval(pl.element().filter((pl.element() != "") & ~pl.element().is_in(HONORIFICS)))
    )
    return pl.DataFrame({"tokens": tokens}).select(
        first=pl.col("tokens").list.first(),
        last=pl.when(pl.col("tokens").list.len() > 1).then(pl.col("tokens").list.last()),
    )


# ------------------------------------------------------------------------------------------------ extraction


@dataclass(frozen=True)
class RecordSource:
    """Where identity finds a kind of record: its staging model and key, identifier columns and what the matcher
    reads (name parts, city, the column dating the record). Derived from the source registry."""

    source: str
    model: str
    key: str
    identifiers: tuple[tuple[str, str], ...]  # (column, identifier type)
    names: tuple[str, ...] = ()  # columns that together give the person's full name
    city: str | None = None
    seen_at: str | None = None
    # The record states the person's current contacts (an account), rather than the contact used at one time.
    current: bool = False


def record_sources() -> tuple[RecordSource, ...]:
    """The registry's tables of person records, in registry order (earlier = more trustworthy names)."""
    sources = []
    for table in person_records():

        def staged(role: str, table=table) -> tuple[str, ...]:
            return tuple(table.staged(c.name) for c in table.columns if c.match == role)

        sources.append(
            RecordSource(
                table.record_source,
                table.staging_model,
                table.staged(table.record_key),
                tuple((table.staged(c.name), c.identifier) for c in table.columns if c.identifier in IDENTIFIER_TYPES),
                names=staged("name"),
                city=next(iter(staged("city")), None),
                seen_at=table.staged(table.event_column) if table.event_column else None,
                current=any(
                    c.identifier == "webshop_customer_id" and c.name == table.record_key for c in table.columns
                ),
            )
        )
    return tuple(sources)


def extract_identifiers(staged: Mapping[str, pl.DataFrame]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(identifier rows: source, record_id, id_type, raw_value; records: source, record_id, name, name_rank, city,
    seen_on, current) from the staged tables of `record_sources()` (staging model name -> frame). A smaller
    name_rank is a more trustworthy name (an account's over a helpdesk display name).
    """
    identifiers, records = [], []
    for rank, spec in enumerate(record_sources()):
        frame = staged[spec.model]
        record_id = pl.col(spec.key).cast(pl.Utf8)
        identifiers += [
            frame.select(
                source=pl.lit(spec.source),
                record_id=record_id,
                id_type=pl.lit(id_type),
                raw_value=pl.col(column).cast(pl.Utf8),
            )
            for column, id_type in spec.identifiers
        ]
        name = (
            pl.concat_str([pl.col(c).cast(pl.Utf8) for c in spec.names], separator=" ", ignore_nulls=True)
            if spec.names
            else pl.lit(None, pl.Utf8)
        )
        records.append(
            frame.select(
                source=pl.lit(spec.source),
                record_id=record_id,
                name=name,
                name_rank=pl.lit(rank, pl.Int32),
                city=pl.col(spec.city).cast(pl.Utf8) if spec.city else pl.lit(None, pl.Utf8),
                seen_on=_as_date(pl.col(spec.seen_at)) if spec.seen_at else pl.lit(None, pl.Date),
                current=pl.lit(spec.current),
            )
        )
    raw = pl.concat(identifiers).filter(pl.col("raw_value").is_not_null())
    return raw, pl.concat(records).filter(pl.col("record_id").is_not_null())


def identifier_rows(relations: Mapping[str, duckdb.DuckDBPyRelation]) -> duckdb.DuckDBPyRelation:
    """extract_identifiers' identifier rows (source, record_id, id_type, raw_value; no null raw value) as one DuckDB
    relation over the staged tables of `record_sources()` (staging model name -> relation, e.g. dbt.ref): the rows
    stay in the warehouse."""
    text = duckdb.sqltypes.VARCHAR
    parts = [
        relations[spec.model]
        .filter(duckdb.ColumnExpression(column).isnotnull())
        .select(
            duckdb.ConstantExpression(spec.source).cast(text).alias("source"),
            duckdb.ColumnExpression(spec.key).cast(text).alias("record_id"),
            duckdb.ConstantExpression(id_type).cast(text).alias("id_type"),
            duckdb.ColumnExpression(column).cast(text).alias("raw_value"),
        )
        for spec in record_sources()
        for column, id_type in spec.identifiers
    ]
    rows = parts[0]
    for part in parts[1:]:
        rows = rows.union(part)
    return rows


def record_rows(relations: Mapping[str, duckdb.DuckDBPyRelation]) -> duckdb.DuckDBPyRelation:
    """extract_identifiers' records (source, record_id, name, name_rank, city, seen_on, current) as one DuckDB
    relation over the staged tables of `record_sources()` (staging model name -> relation, e.g. dbt.ref)."""
    text, column, constant = duckdb.sqltypes.VARCHAR, duckdb.ColumnExpression, duckdb.ConstantExpression
    parts = []
    for rank, spec in enumerate(record_sources()):
        name = (
            duckdb.FunctionExpression("concat_ws", constant(" "), *(column(c).cast(text) for c in spec.names))
            if spec.names
            else constant(None).cast(text)
        )
        # _as_date: the first ten characters of the value's text as an ISO date, else null
        seen_on = (
            duckdb.FunctionExpression(
                "try_strptime",
                duckdb.FunctionExpression("left", column(spec.seen_at).cast(text), constant(10)),
                constant("%Y-%m-%d"),
            ).cast(duckdb.sqltypes.DATE)
            if spec.seen_at
            else constant(None).cast(duckdb.sqltypes.DATE)
        )
        parts.append(
            relations[spec.model]
            .filter(column(spec.key).isnotnull())
            .select(
                constant(spec.source).cast(text).alias("source"),
                column(spec.key).cast(text).alias("record_id"),
                name.alias("name"),
                constant(rank).cast(duckdb.sqltypes.INTEGER).alias("name_rank"),
                (column(spec.city).cast(text) if spec.city else constant(None).cast(text)).alias("city"),
                seen_on.alias("seen_on"),
                constant(spec.current).cast(duckdb.sqltypes.BOOLEAN).alias("current"),
            )
        )
    rows = parts[0]
    for part in parts[1:]:
        rows = rows.union(part)
    return rows


def _as_date(column: pl.Expr) -> pl.Expr:
    """A staged timestamp (or its ISO text) as a date."""
    return column.cast(pl.Utf8).str.slice(0, 10).str.to_date(strict=False)


# ------------------------------------------------------------------------------------------------ local DuckDB

# memory_limit and temp_directory of identity's in-memory DuckDB (pipeline.lib.warehouse.in_memory's arguments)
DuckDBConfig = Mapping[str, str | None]


def local_duckdb(config: DuckDBConfig | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for identity's set work, bounded by `config` (without one DuckDB takes 80 % of RAM) and
    spilling into a directory of its own beside `temp_directory`."""
    return in_memory(**dict(config or {}))


def duckdb_limits(memory_limit: str | None, temp_directory: str | None) -> dict[str, str | None]:
    """The DuckDBConfig of a dbt model's `duckdb_memory_limit` and `duckdb_temp_directory` configs (cdp.yaml's
    duckdb settings, passed as dbt vars; an empty one means DuckDB's default)."""
    return {"memory_limit": memory_limit or None, "temp_directory": temp_directory or None}


# ------------------------------------------------------------------------------------------------ clustering


def _components(n_nodes: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Connected-component label per node; labels depend only on the edge list, so runs are reproducible."""
    graph = coo_matrix((np.ones(src.size, dtype=np.int8), (src, dst)), shape=(n_nodes, n_nodes)).tocsr()
    return connected_components(graph, directed=True, connection="weak")[1]


def _record_key(source: pl.Expr, record_id: pl.Expr) -> pl.Expr:
    return pl.concat_str([source, pl.lit(":"), record_id])


@dataclass
class _Graph:
    """Records are nodes 0..n-1, value i is node n + i, one edge per (record, value). An edge is switched on when
    the rules accept it, so a profile (component) is always the records joined by accepted links."""

    records: pl.DataFrame  # r, source, record_id
    values: pl.DataFrame  # i, id_type, value, records
    edges: pl.DataFrame  # r, i, id_type
    accepted: np.ndarray  # per edge

    @property
    def n(self) -> int:
        return self.records.height

    def labels(self) -> np.ndarray:
        """Profile label per record."""
        on = self.accepted
        return _components(
            self.n + self.values.height,
            self.edges.get_column("r").to_numpy()[on],
            self.n + self.edges.get_column("i").to_numpy()[on],
        )[: self.n]


def _numbered(
    frame: pl.DataFrame, columns: list[str], name: str, order: str | None = None
) -> tuple[pl.DataFrame, np.ndarray]:
    """(the distinct rows of `frame[columns]` in sort order, numbered from 0 in column `name`; each row's number):
    one sort of the text keys instead of a unique, a sort and a join on them. `order`: a column of `frame` that
    numbers the keys in their sort order already (resolve_in_batches numbers them set-wise in DuckDB), so the sort
    is of integers."""
    by = [order] if order else columns
    ordered = frame.select(*columns, *([order] if order else [])).with_row_index("pos").sort(by)
    starts = pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift()) for c in by]) | (pl.int_range(pl.len()) == 0)
    ordered = ordered.with_columns((starts.cum_sum() - 1).cast(pl.UInt32).alias(name))
    numbers = np.empty(frame.height, dtype=np.uint32)
    numbers[ordered.get_column("pos").to_numpy()] = ordered.get_column(name).to_numpy()
    return ordered.filter(starts).select(name, *columns), numbers


# Columns resolve_in_batches adds to the rules' frames: each record's and each usable value's number in the sort
# order of (source, record_id) and of (id_type, value), over the whole build.
RECORD_ORDER, VALUE_ORDER = "record_order", "value_order"


def _build_graph(identifiers: pl.DataFrame, records: pl.DataFrame) -> _Graph:
    ordered = RECORD_ORDER in records.columns  # numbered by resolve_in_batches: the sorts are of integers
    record_keys = [*KEYS, RECORD_ORDER] if ordered else KEYS
    value_keys = ["id_type", "value", VALUE_ORDER] if ordered else ["id_type", "value"]
    ok = identifiers.filter(pl.col("status") == "ok").select(*record_keys, *value_keys)
    record_table, r = _numbered(
        pl.concat([ok.select(record_keys), records.select(record_keys), identifiers.select(record_keys)]),
        KEYS,
        "r",
        RECORD_ORDER if ordered else None,
    )
    value_table, i = _numbered(ok, ["id_type", "value"], "i", VALUE_ORDER if ordered else None)
    edges = (
        pl.DataFrame({"r": r[: ok.height], "i": i, "id_type": ok.get_column("id_type")})
        .unique(["r", "i"])
        .sort("r", "i")
    )
    counts = np.bincount(edges.get_column("i").to_numpy(), minlength=value_table.height)
    value_table = value_table.with_columns(records=pl.Series(counts, dtype=pl.Int64))
    return _Graph(record_table, value_table, edges, np.zeros(edges.height, dtype=bool))


def _name_conflicts(
    con: duckdb.DuckDBPyConnection, touches: pl.DataFrame, names: pl.DataFrame, threshold: float, slips: int
) -> pl.DataFrame:
    """i, conflicts, named: per value, profile pairs with no name in common, and profiles carrying a name.

    `touches`: i, label (the profiles a value touches); `names`: label, first, last. Two names agree when the first
    names are alike (Jaro-Winkler >= threshold with the same first letter, or at most `slips` typing slips apart)
    and so are the last names when both have one; a name written last-first agrees too.
    """
    named = touches.join(names, on="label")
    con.register("named", named.to_arrow())
    try:
        return con.execute(
            """
            with pairs as (
                select a.i, a.label as left_label, b.label as right_label,
                    bool_or(
                        ((alike(a.first, b.first, $t) or damerau_levenshtein(a.first, b.first) <= $slips)
                         and (a.last is null or b.last is null or alike(a.last, b.last, $t)
                              or damerau_levenshtein(a.last, b.last) <= $slips))
                        or (a.last is not null and b.last is not null
                            and alike(a.first, b.last, $t) and alike(a.last, b.first, $t))
                    ) as agree
                from named as a join named as b on a.i = b.i and a.label < b.label
                group by all
            ),
            profiles as (select i, count(distinct label) as named from named group by i)
            select i, count(*) filter (where not agree) as conflicts, any_value(named) as named
            from pairs join profiles using (i) group by i
        """,
            {"t": threshold, "slips": slips},
        ).pl()
    finally:
        con.unregister("named")


def _use_timeline(uses: str, value: str) -> str:
    """A SELECT of the rows of `uses` (one per record carrying a value: `value` columns, day, current) that have a
    day, with `pause`: the days since the value was last in use before that day (a current record, an account,
    keeps it in use from its day on; negative while in use). The recycled-number rule reads its pauses."""
    return f"""
        select *, day - max(case when current then {ALWAYS} else day end) over (
            partition by {value} order by day rows between unbounded preceding and 1 preceding) as pause
        from {uses} where day is not null"""


def _recycled(
    con: duckdb.DuckDBPyConnection, uses: pl.DataFrame, names: pl.DataFrame, gap_days: int, threshold: float
) -> pl.DataFrame:
    """i, gap: values whose use pauses more than `gap_days` between differently named profiles.

    `uses`: i, label, day, current (one row per record carrying the value; a current record - an account - keeps
    using it from its day on); `names`: label, first, last. Not recycled when one profile used the value on both
    sides of the pause, or when a full name (first and last) before it agrees with one after it.
    """
    con.register("uses", uses.to_arrow())
    con.register("names", names.to_arrow())
    try:
        return con.execute(
            f"""
            with timeline as ({_use_timeline("uses", "i")}),
            pause as (select i, min(day) as resume, max(pause) as gap from timeline where pause > $gap group by i),
            sides as (select distinct t.i, t.label, t.day >= p.resume as after
                      from timeline as t join pause as p using (i)),
            bridged as (select distinct i from sides group by i, label having count(distinct after) = 2),
            named as (select s.i, s.after, n.first, n.last from sides as s join names as n using (label)),
            same_person as (
                select distinct b.i from named as b join named as a on a.i = b.i and not b.after and a.after
                where b.last is not null and a.last is not null
                  and alike(b.first, a.first, $t) and alike(b.last, a.last, $t)
            ),
            both_named as (select i from named group by i having count(distinct after) = 2)
            select i, gap::bigint as gap from pause
            where i in (select i from both_named) and i not in (select i from bridged)
              and i not in (select i from same_person)
        """,
            {"gap": gap_days, "t": threshold},
        ).pl()
    finally:
        con.unregister("uses")
        con.unregister("names")


def _profile_values(
    edges: pl.DataFrame,
    labels: np.ndarray,
    refused: np.ndarray,
    among: np.ndarray,
    spans: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """label, id_type, w: the (not refused) values of `edges` (the graph's edges of limited types) each profile of
    `among` (labels) holds; with `spans` (r, first, last: the days each record uses its values) also first, last:
    when the profile used each. A value's number (w) gives its type: keys are numbers, not text."""
    wanted = np.zeros(int(labels.max(initial=0)) + 1, dtype=bool)
    wanted[among] = True
    on = labels[edges.get_column("r").to_numpy()]
    keep = wanted[on] & ~refused[edges.get_column("i").to_numpy()]
    held = edges.with_columns(label=pl.Series(on)).filter(pl.Series(keep))
    if spans is None:
        return held.select("label", "id_type", w="i").unique(["label", "w"])
    return (
        held.join(spans, on="r")
        .group_by("label", w="i")
        .agg(pl.col("id_type").first(), first=pl.col("first").min(), last=pl.col("last").max())
    )


def _windowed_counts(
    con: duckdb.DuckDBPyConnection, spans: pl.DataFrame, group: list[str], windows: Mapping[str, int]
) -> pl.DataFrame:
    """group + rank, held: per group of `spans` (group, id_type, w, rank, first, last) and each value's first day,
    the values of a windowed type used within its window of that day, ordered by rank. Values used within the window
    of each other all overlap the latest first day among them, so these counts are every window's."""
    window_of = pl.DataFrame(
        {"id_type": list(windows), "window": list(windows.values())}, schema={"id_type": pl.Utf8, "window": pl.Int64}
    )
    con.register("spans", spans.join(window_of, on="id_type").to_arrow())
    keys = ", ".join(f"a.{c}" for c in group)
    try:
        return con.execute(f"""
            select {keys}, a.id_type, a.w as at_value, b.rank,
                count(*) over (partition by {keys}, a.id_type, a.w order by b.rank) as held
            from spans as a join spans as b
                on {" and ".join(f"a.{c} = b.{c}" for c in group)} and a.id_type = b.id_type
                and b.first <= a.first and a.first <= b.last + b.window
        """).pl()
    finally:
        con.unregister("spans")


def _first_break(
    con: duckdb.DuckDBPyConnection,
    merging: pl.DataFrame,
    held: pl.DataFrame,
    limit_of: pl.DataFrame,
    windows: Mapping[str, int],
) -> pl.DataFrame:
    """i, rank, id_type, held, limit: for each value, the first profile (in rank order) that would push the merged
    profile over a limit, with the count it would reach. A windowed type counts only values used within its window
    of each other (`held` then carries first, last)."""
    seen = merging.join(held, on="label").group_by("i", "w")  # w gives id_type
    if not windows:
        first_seen = seen.agg(pl.col("id_type").first(), rank=pl.col("rank").min())
    else:
        first_seen = seen.agg(
            pl.col("id_type").first(),
            rank=pl.col("rank").min(),
            first=pl.col("first").min(),
            last=pl.col("last").max(),
        )
    plain = first_seen.filter(~pl.col("id_type").is_in(list(windows)))
    running = (
        plain.group_by("i", "id_type", "rank")
        .agg(new=pl.len())
        .sort("i", "id_type", "rank")
        .with_columns(held=pl.col("new").cum_sum().over("i", "id_type"))
        .select("i", "rank", "id_type", "held")
    )
    if windows:
        windowed = first_seen.filter(pl.col("id_type").is_in(list(windows)))
        counts = _windowed_counts(con, windowed, ["i"], windows).select(
            "i", "rank", "id_type", pl.col("held").cast(running.schema["held"])
        )
        running = pl.concat([running, counts.cast(running.schema)])
    return (
        running.join(limit_of, on="id_type")
        .filter(pl.col("held") > pl.col("limit"))
        .sort(["i", "rank", "id_type", "held"], descending=[False, False, False, True])
        .unique("i", keep="first")
    )


def _over_limit(
    con: duckdb.DuckDBPyConnection, held: pl.DataFrame, limit_of: pl.DataFrame, windows: Mapping[str, int]
) -> np.ndarray:
    """The labels of profiles holding more values of a type than its limit (within its window, if it has one)."""
    plain = held.filter(~pl.col("id_type").is_in(list(windows))).group_by("label", "id_type").agg(held=pl.len())
    if windows:
        windowed = held.filter(pl.col("id_type").is_in(list(windows))).with_columns(rank=pl.lit(0))
        counts = (
            _windowed_counts(con, windowed, ["label"], windows)
            .group_by("label", "id_type")
            .agg(held=pl.col("held").max())
        )
        plain = pl.concat([plain, counts.cast(plain.schema)])
    over = plain.join(limit_of, on="id_type").filter(pl.col("held") > pl.col("limit"))
    return over.get_column("label").unique().to_numpy()


def resolve_identities(
    identifiers: pl.DataFrame,
    records: pl.DataFrame,
    rules: IdentityRules,
    duckdb_config: DuckDBConfig | None = None,
) -> Resolution:
    """Cluster `records` into persons through their `identifiers` (output of normalise_identifiers).

    `records`: source, record_id and optionally `name` (the person's full name as the record gives it). Every record
    gets exactly one cluster; records without a usable identifier are clusters of their own. `duckdb_config` bounds
    the in-memory DuckDB the name and time comparisons run in.
    """
    with local_duckdb(duckdb_config) as con:
        # A slip keeps the first letter: Budi/Budy are alike, Bayu/Ayu (Jaro-Winkler 0.92) are two people.
        con.execute("create macro alike(x, y, t) as jaro_winkler_similarity(x, y) >= t and left(x, 1) = left(y, 1)")
        return _resolve(con, identifiers, records, rules)


def _resolve(
    con: duckdb.DuckDBPyConnection, identifiers: pl.DataFrame, records: pl.DataFrame, rules: IdentityRules
) -> Resolution:
    graph = _build_graph(identifiers, records)
    n, values = graph.n, graph.values
    refused = np.zeros(values.height, dtype=bool)  # shared: links nothing
    reason = np.full(values.height, "", dtype=object)
    detail = np.full(values.height, "", dtype=object)
    linked = np.zeros(values.height, dtype=np.int64)
    e_r, e_i = graph.edges.get_column("r").to_numpy(), graph.edges.get_column("i").to_numpy()
    e_type = graph.edges.get_column("id_type")

    names = None
    if "name" in records.columns:
        parts = name_parts(records.get_column("name"))
        rank = (
            records.get_column("name_rank")
            if "name_rank" in records.columns
            else pl.Series("name_rank", [0] * records.height)
        )
        names = (
            pl.concat([records.select("source", "record_id"), parts, rank.to_frame("rank")], how="horizontal")
            .filter(pl.col("first").is_not_null())
            .join(graph.records, on=["source", "record_id"])
            .select("r", "first", "last", "rank")
        )

    seen = (
        graph.records.join(
            records.select(
                "source",
                "record_id",
                day=(pl.col("seen_on") - pl.date(1970, 1, 1)).dt.total_days()
                if "seen_on" in records.columns
                else pl.lit(None, pl.Int64),
                current=pl.col("current") if "current" in records.columns else pl.lit(False),
            ),
            on=["source", "record_id"],
            how="left",
        )
        .unique("r")
        .sort("r")
    )
    seen_day, seen_current = seen.get_column("day"), seen.get_column("current").fill_null(False)
    windows = {t: days for t, days in rules.limit_windows.items() if t in rules.limits}
    # When each record uses its values, for the limits with a window: from its day on; an account's contacts stay in
    # use (it states the current ones); a record without a day overlaps every window.
    spans = (
        seen.select(
            "r",
            first=pl.col("day").fill_null(-ALWAYS),
            last=pl.when(pl.col("current").fill_null(False)).then(ALWAYS).otherwise(pl.col("day").fill_null(ALWAYS)),
        )
        if windows
        else None
    )

    def refuse(i: np.ndarray, why: str, text) -> None:
        refused[i], reason[i], detail[i] = True, why, text

    crowded = values.get_column("records").to_numpy() > rules.max_records_per_value
    limited = [t for t in rules.priority if t in rules.limits]
    limit_of = pl.DataFrame(
        {"id_type": limited, "limit": [rules.limits[t] for t in limited]},
        schema={"id_type": pl.Utf8, "limit": pl.Int64},
    )
    accounts_limit = rules.limits.get("webshop_customer_id")
    limited_edges = graph.edges.filter(pl.col("id_type").is_in(limited))
    labels = np.arange(n)
    value_types = values.get_column("id_type")
    for id_type in rules.priority:
        of_type = (value_types == id_type).to_numpy()
        if id_type in rules.limits:
            too_many = np.flatnonzero(of_type & crowded)
            refuse(too_many, "too_many_records", f"on more than {rules.max_records_per_value} records")
        on_type = (e_type == id_type).to_numpy()
        if id_type in CHANNEL_TYPES:
            # A requester id keyed by a phone is as shared as that phone: a family's WhatsApp number.
            on_shared_phone = np.zeros(n, dtype=bool)
            on_shared_phone[e_r[(e_type == "phone").to_numpy() & refused[e_i]]] = True
            inherit = np.setdiff1d(np.unique(e_i[on_type & on_shared_phone[e_r]]), np.flatnonzero(refused))
            refuse(inherit, "phone_shared", "carried with a phone that is shared")
        touches = (
            pl.DataFrame({"i": e_i[on_type], "label": labels[e_r[on_type]]})
            .filter(~pl.Series(refused[e_i[on_type]]))
            .unique()
        )
        spread = touches.group_by("i").agg(profiles=pl.len())
        merging = touches.join(spread.filter(pl.col("profiles") > 1), on="i", how="semi")
        partial = pl.DataFrame(schema={"i": pl.UInt32, "label": pl.Int64})
        if merging.height and id_type in rules.limits:
            linked[spread.get_column("i").to_numpy()] = spread.get_column("profiles").to_numpy()
            held = _profile_values(limited_edges, labels, refused, merging.get_column("label").to_numpy(), spans)
            # A value carried by more accounts than the account limit is a shared one (a shop's or courier's).
            if accounts_limit is not None and id_type != "webshop_customer_id":
                accounts = (
                    merging.join(held.filter(pl.col("id_type") == "webshop_customer_id"), on="label")
                    .group_by("i")
                    .agg(accounts=pl.col("w").n_unique())
                    .filter(pl.col("accounts") > accounts_limit)
                )
                refuse(
                    accounts.get_column("i").to_numpy(),
                    "limit_exceeded",
                    [f"carried by {a} accounts (limit {accounts_limit})" for a in accounts.get_column("accounts")],
                )
            # Names: profiles whose names disagree are different people sharing the value.
            all_named = np.zeros(values.height, dtype=bool)
            if names is not None and id_type in PHONE_GRADE and rules.recycle_days is not None:
                uses = pl.DataFrame(
                    {
                        "i": e_i[on_type],
                        "label": labels[e_r[on_type]],
                        "day": seen_day.gather(e_r[on_type]),
                        "current": seen_current.gather(e_r[on_type]),
                    }
                )
                uses = uses.join(merging, on=["i", "label"], how="semi")
                uses = uses.filter(~pl.Series(refused[uses.get_column("i").to_numpy()]))
                named = names.with_columns(label=pl.Series(labels[names.get_column("r").to_numpy()]))
                paused = _recycled(
                    con,
                    uses,
                    named.select("label", "first", "last").unique(),
                    rules.recycle_days,
                    rules.name_similarity,
                )
                refuse(
                    paused.get_column("i").to_numpy(),
                    "recycled",
                    [
                        f"unused for {g} days, differently named profiles before and after"
                        for g in paused.get_column("gap")
                    ],
                )
            if names is not None:
                # A profile speaks with its most trustworthy names: an account's name over a helpdesk display name
                # (a family's WhatsApp name is on every relative's tickets).
                profile_names = (
                    names.with_columns(label=pl.Series(labels[names.get_column("r").to_numpy()]))
                    .filter(pl.col("rank") == pl.col("rank").min().over("label"))
                    .select("label", "first", "last")
                    .unique()
                )
                pending = merging.filter(~pl.Series(refused[merging.get_column("i").to_numpy()]))
                # An email is personal: one slip in a short name (Ayu/Aiu) still agrees. A phone is often a
                # family's, and Dedi/Dodi may be brothers.
                slips = 1 if id_type == "email" else 0
                judged = _name_conflicts(con, pending, profile_names, rules.name_similarity, slips).join(spread, on="i")
                agreeing = judged.filter((pl.col("conflicts") == 0) & (pl.col("named") == pl.col("profiles")))
                all_named[agreeing.get_column("i").to_numpy()] = True
                conflicts = judged.filter(pl.col("conflicts") > 0)
                refuse(
                    conflicts.get_column("i").to_numpy(),
                    "names_disagree",
                    [
                        f"{k} pairs of its {m} named profiles disagree on names"
                        for k, m in conflicts.select("conflicts", "named").iter_rows()
                    ],
                )
            # Limits, link by link: profiles whose names all agree join in order of age (oldest record first) until
            # the next would break a limit; it and the later ones stay apart. Without names to vouch for one person
            # (a courier's number on guests' orders), or when not even two can join, the value is shared.
            oldest = np.full(int(labels.max(initial=0)) + 1, n, dtype=np.int64)
            np.minimum.at(oldest, labels, np.arange(n))  # each profile's first record
            ranked = merging.filter(~pl.Series(refused[merging.get_column("i").to_numpy()]))
            ranked = ranked.with_columns(first_r=pl.Series(oldest[ranked.get_column("label").to_numpy()])).with_columns(
                rank=pl.col("first_r").rank("ordinal").over("i") - 1
            )
            breaks = _first_break(con, ranked, held, limit_of, windows)
            shared = breaks.filter((pl.col("rank") <= 1) | ~pl.Series(all_named[breaks.get_column("i").to_numpy()]))
            refuse(
                shared.get_column("i").to_numpy(),
                "limit_exceeded",
                [
                    f"would give one profile {h} values of {t} (limit {lim})"
                    for h, t, lim in shared.select("held", "id_type", "limit").iter_rows()
                ],
            )
            cut = breaks.join(shared, on="i", how="anti")
            partial = (
                ranked.join(cut.select("i", cut_rank="rank"), on="i")
                .filter(pl.col("rank") >= pl.col("cut_rank"))
                .select("i", "label")
            )
            cut_i = cut.get_column("i").to_numpy()
            reason[cut_i] = "limit_partial"
            detail[cut_i] = [
                f"{p - r} of {p} profiles left apart: one more would hold {h} values of {t} (limit {lim})"
                for p, r, h, t, lim in cut.join(spread, on="i", maintain_order="left")
                .select("profiles", "rank", "held", "id_type", "limit")
                .iter_rows()
            ]
        keep = on_type & ~refused[e_i]
        if partial.height:
            left_apart = (
                pl.DataFrame({"i": e_i, "label": labels[e_r]})
                .with_row_index("e")
                .join(partial, on=["i", "label"])
                .get_column("e")
                .to_numpy()
            )
            keep[left_apart] = False
        graph.accepted |= keep
        labels = graph.labels()
        # Values accepted one by one may still together push a profile over a limit: this type's merging values
        # in such a profile are refused, and the profile falls back to the earlier types' links.
        if merging.height and id_type in rules.limits:
            merging_value = np.zeros(values.height, dtype=bool)
            merging_value[merging.get_column("i").to_numpy()] = True
            holders = labels[e_r[on_type & merging_value[e_i]]]  # the profiles this type's merging values are in
            held = _profile_values(limited_edges, labels, refused, holders, spans)
            over = _over_limit(con, held, limit_of, windows)
            if over.size:
                joint = np.intersect1d(e_i[on_type & np.isin(labels[e_r], over)], merging.get_column("i").to_numpy())
                joint = joint[~refused[joint]]
                refuse(joint, "limit_exceeded", "together with this type's other values a profile would exceed a limit")
                graph.accepted[np.isin(e_i, joint)] = False
                labels = graph.labels()

    clusters = graph.records.with_columns(label=pl.Series(labels)).with_columns(
        cluster_key=_record_key(pl.col("source"), pl.col("record_id")).min().over("label")
    )
    # Neighbourhoods (nightly runs resolve again whole ones) are the components with every edge switched on.
    every_edge = _components(n + values.height, e_r, n + e_i)[:n]
    neighbourhood = graph.records.with_columns(label=pl.Series(every_edge)).select(
        "r", *KEYS, neighbourhood=_record_key(pl.col("source"), pl.col("record_id")).min().over("label")
    )
    has_edge = np.zeros(n, dtype=bool)
    has_edge[e_r] = True
    listed = reason != ""
    cut = values.with_columns(
        reason=pl.Series(reason, dtype=pl.Utf8), detail=pl.Series(detail, dtype=pl.Utf8), linked=pl.Series(linked)
    ).filter(pl.Series(listed))
    rejected = (
        identifiers.filter(pl.col("status") != "ok")
        .group_by("id_type", value="raw_value", reason="status")
        .agg(records=pl.col("record_id").n_unique(), detail=pl.col("reason").first())
    )
    violations = pl.concat(
        [
            cut.select(
                "id_type",
                "value",
                "reason",
                pl.col("records").cast(pl.Int64),
                pl.col("linked").cast(pl.Int64),
                "detail",
            ),
            rejected.select(
                "id_type",
                "value",
                "reason",
                pl.col("records").cast(pl.Int64),
                linked=pl.lit(None, pl.Int64),
                detail="detail",
            ),
        ]
    ).sort("reason", "id_type", "value")
    links = (
        graph.edges.with_columns(linked=pl.Series(graph.accepted))
        .join(clusters, on="r")
        .join(neighbourhood.select("r", "neighbourhood"), on="r")
        .join(cut.select("i", "reason", "detail"), on="i", how="left")
        .join(values.select("i", "value"), on="i")
        .select(
            *KEYS,
            "id_type",
            "value",
            "linked",
            "reason",
            "detail",
            profile_key="cluster_key",
            neighbourhood="neighbourhood",
        )
    )
    return Resolution(
        clusters=clusters.select("source", "record_id", "cluster_key"),
        violations=violations,
        links=links,
        linkless=neighbourhood.filter(~pl.Series(has_edge)).select(*KEYS, "neighbourhood"),
    )


def candidate_pairs(links: pl.DataFrame) -> pl.DataFrame:
    """left_key, right_key, id_type, value: the profile pairs a value joins that does not link them all (shared,
    or left apart by a limit) - the probabilistic matcher's candidates. `links`: Resolution.links."""
    unused = links.filter(~pl.col("linked")).select("id_type", "value").unique()
    touched = links.join(unused, on=["id_type", "value"], how="semi").select("id_type", "value", "profile_key").unique()
    return (
        touched.join(touched, on=["id_type", "value"])
        .filter(pl.col("profile_key") < pl.col("profile_key_right"))
        .select(left_key="profile_key", right_key="profile_key_right", id_type="id_type", value="value")
        .sort("left_key", "right_key", "id_type", "value")
    )


# ------------------------------------------------------------------------------------------------ nightly runs
#
# What identity decides about a record depends only on its neighbourhood: the records reachable from it through
# usable values, linked or refused (a refused value still makes candidates for the matcher). The rules count and
# compare the records and profiles carrying one value, a profile never leaves its neighbourhood and the matcher
# scores the pairs of one shared value with the stored model. So a nightly run resolves again the neighbourhoods a
# new, changed or gone record touches (now or before) and keeps every other record's rows as they are: the same
# result as resolving everything, at the cost of what the day brings.

RECORD_ATTRIBUTES = ("name", "name_rank", "city", "seen_on", "current")  # what the rules read besides identifiers
KEYS = ["source", "record_id"]


def record_fingerprints(con: duckdb.DuckDBPyConnection, identifiers: str, records: str) -> duckdb.DuckDBPyRelation:
    """source, record_id, fingerprint, seen_on: a 64-bit hash of what identity reads of each record (its usable
    identifiers and RECORD_ATTRIBUTES) and the record's day, for every record of the two relations `con` knows by
    these names. DuckDB's hash is not promised stable across versions: after an upgrade every record counts as
    changed once (one nightly run resolves everything)."""
    columns = con.table(records).columns
    present = [c for c in RECORD_ATTRIBUTES if c in columns]
    attributes = f"hash({', '.join(present)})" if present else "0::ubigint"
    day = "seen_on" if "seen_on" in columns else "null::date"
    # One pass: per record the xor of its distinct usable values' hashes and of its attributes' hash (0 for a
    # record whose identifiers were all rejected).
    return con.sql(f"""
        select source, record_id, bit_xor(h) as fingerprint, max(day) as seen_on from (
            select distinct source, record_id, hash(id_type, value) as h, null::date as day
            from {identifiers} where status = 'ok'
            union all
            select source, record_id, any_value({attributes}), any_value({day}) from {records} group by all
            union all
            select source, record_id, 0::ubigint, null::date from {identifiers} where status <> 'ok'
        )
        group by all""")


def redated_records(
    con: duckdb.DuckDBPyConnection,
    fingerprints: str,
    compared_identifiers: str,
    records: str,
    compared: str,
    previous: str,
    rules: IdentityRules,
) -> str | None:
    """Temp table `identity_redated` (its name is returned; None with limit windows, where every day is read):
    source, record_id of the records of `fingerprints` whose only change since `previous` is their day (seen_on: an
    order's status or an account's update moves it) where neither the rules nor the matcher decide otherwise for it,
    so their neighbourhoods need not be resolved again.

    Without limit windows, the rules read a record's day only to find recycled numbers, on _recycled's timeline of a
    phone-grade value: the first day its use resumes after more than `recycle_days`, the longest pause, and which
    side of it each record carrying the value is on. Where those are the same with the days the last run saw and
    with today's, the rule decides as before. The matcher reads a record's day in the activity period (first and
    last day) of a profile's use of a value that does not link all its records (candidate_pairs); where no such
    period moves, it scores as before.
    Relations `con` knows: `fingerprints` (record_fingerprints of the records compared), `records` and
    `compared_identifiers` (the compared records and their identifiers: their fingerprints are taken again with the
    previous day), `previous` (source, record_id, id_type, value, linked, profile_key, fingerprint, seen_on as the
    last run left them) and `compared` (the rows of `previous` of the compared records). Every record carrying a
    value of a redated record is in `previous` (a record carrying it anew is changed, so its neighbourhood is
    resolved again anyway); today's day is the compared record's.
    """
    if rules.limit_windows:  # a windowed limit reads every day
        return None
    con.execute(f"""
        create or replace temp view identity_previous_days as
        select r.* replace (b.seen_on as seen_on) from {records} as r
        join (select distinct source, record_id, seen_on from {compared}) as b using (source, record_id)""")
    as_before = record_fingerprints(con, compared_identifiers, "identity_previous_days")
    con.execute(f"""
        create or replace temp table identity_redated_all as
        select source, record_id from {fingerprints} as today
        join (select distinct source, record_id, fingerprint from {compared}) as before using (source, record_id)
        join ({as_before.sql_query()}) as dated using (source, record_id)
        where today.fingerprint <> before.fingerprint and dated.fingerprint = before.fingerprint""")
    # constants of this module and the registry, not data
    phone_grade = literal_list(PHONE_GRADE)
    current = literal_list(s.source for s in record_sources() if s.current)
    recycling = (
        ""
        if rules.recycle_days is None
        else f"""
        uses as (
            select id_type, value, source in ({current}) as current, 'before' as timeline, day_before as day
            from carriers where id_type in ({phone_grade})
            union all
            select id_type, value, source in ({current}), 'today', day_today
            from carriers where id_type in ({phone_grade})
        ),
        pauses as (
            select id_type, value, timeline, min(day) as resume, max(pause) as gap
            from ({_use_timeline("uses", "id_type, value, timeline")})
            where pause > {int(rules.recycle_days)}
            group by id_type, value, timeline
        ),
        moved_pauses as (
            select distinct c.id_type, c.value from carriers as c
            left join pauses as b on (b.id_type, b.value, b.timeline) = (c.id_type, c.value, 'before')
            left join pauses as t on (t.id_type, t.value, t.timeline) = (c.id_type, c.value, 'today')
            where c.id_type in ({phone_grade}) and (b.resume is distinct from t.resume or b.gap is distinct from t.gap
                or (c.day_before >= b.resume) is distinct from (c.day_today >= t.resume))
        ),"""
    )
    recycled_read = (
        ""
        if rules.recycle_days is None
        else "union all select source, record_id from dated_values semi join moved_pauses using (id_type, value)"
    )
    con.execute(f"""
        create or replace temp table identity_redated as
        with dated_values as (
            select source, record_id, id_type, value, profile_key from {compared}
            semi join identity_redated_all using (source, record_id)
            where id_type is not null
        ),
        -- every record carrying a value of a redated record: its day as the last run saw it and today's
        carriers as (
            select p.source, p.record_id, p.id_type, p.value, p.profile_key, p.linked,
                p.seen_on - date '1970-01-01' as day_before,
                coalesce(r.seen_on, p.seen_on) - date '1970-01-01' as day_today
            from {previous} as p semi join (select distinct id_type, value from dated_values) using (id_type, value)
            left join {records} as r using (source, record_id)
        ),
        -- the matcher's activity periods of the values that leave a row unlinked
        periods as (
            select profile_key, id_type, value from carriers
            semi join (select id_type, value from carriers where not linked) using (id_type, value)
            group by all
            having min(day_before) is distinct from min(day_today) or max(day_before) is distinct from max(day_today)
        ),
        {recycling}
        read_day as (
            select source, record_id from dated_values semi join periods using (profile_key, id_type, value)
            {recycled_read}
        )
        select source, record_id from identity_redated_all except select source, record_id from read_day""")
    con.execute("drop table identity_redated_all")
    return "identity_redated"


def attachable_records(
    con: duckdb.DuckDBPyConnection,
    fingerprints: str,
    identifiers: str,
    records: str,
    compared: str,
    previous: str,
    rules: IdentityRules,
) -> str | None:
    """Temp table `identity_attachable` (its name is returned; None with limit windows): the new records of
    `fingerprints` that join an existing profile without changing any decision, with the rows the rules would give
    them (LINK_SCHEMA but fingerprint, seen_on and resolution) and their `neighbourhood`. A new order of a known
    customer is most of a night's records; resolving it again with its customer's whole neighbourhood was most of a
    night's identity work.

    Such a record is unnamed (no name to compare) and carries usable values of person types that other records of
    one profile carried before (a customer id, an email, a phone, a requester id): `v`, the one of the first type in
    priority order, and any others only where an earlier record carried them together with v (a guest's email and
    phone). Its other usable values are of unlimited types (its own order id) and carried by no other record.
    Before, every row of the profile's neighbourhood linked: no value there was shared, over a limit or recycled,
    and the matcher had nothing to score. With the record:
    - at every stage before v's type the record stands alone (its other values join nothing);
    - at v's stage it adds one unnamed profile holding values the profiles merging through v hold already (the
      earlier record carrying them with v is among them): no name pair and no limited value are added, so no value
      becomes shared or over a limit (a limit breaks only when the profiles' values together exceed it, and they are
      the same values);
    - at a later known value's stage the record is in the profile that earlier record is in, which touched that value
      before: the same profiles merge through it, with the same names;
    - each value's records stay within max_records_per_value, and a phone-grade value's use shows no pause of more
      than recycle_days with the record's day in it: the recycled-number rule finds nothing, as before;
    - the record's key sorts after the profile's and the neighbourhood's smallest key, which name them.
    So the record's rows link, with the profile's key and neighbourhood, and every other row stays as it was.
    Whether its neighbourhood is resolved again anyway (another record there changed) is records_to_resolve's.
    Relations `con` knows: `fingerprints` (record_fingerprints of today's records compared), `identifiers` and
    `records` (their rows today), `compared` (the rows of `previous` of those records) and `previous` (the last run's
    link rows of at least every neighbourhood holding a value a compared record carries).
    """
    if rules.limit_windows:  # a windowed limit reads every day
        return None
    # constants of this module, the registry and the rules, not data
    person_types = literal_list(PERSON_TYPES)
    limited = literal_list(rules.limits)
    phone_grade = literal_list(PHONE_GRADE)
    current = literal_list(s.source for s in record_sources() if s.current)
    priority = ", ".join(f"({quote_literal(t)}, {rank})" for rank, t in enumerate(rules.priority))
    unnamed = "name is null or trim(name) = ''" if "name" in con.table(records).columns else "true"
    crowded = f"or k.records + c.carriers > {int(rules.max_records_per_value)}"
    recycled = (
        ""
        if rules.recycle_days is None
        else f"""
        union all
        select distinct id_type, value from ({_use_timeline("uses", "id_type, value")})
        where pause > {int(rules.recycle_days)}"""
    )
    con.execute(f"""
        create or replace temp table identity_attachable as
        with new_records as (
            select source, record_id from {fingerprints}
            anti join (select distinct source, record_id from {compared}) using (source, record_id)
            semi join (select source, record_id from {records} where {unnamed}) using (source, record_id)
        ),
        carried as (
            select distinct source, record_id, id_type, value from {identifiers}
            semi join new_records using (source, record_id)
            where status = 'ok'
        ),
        -- today's records carrying each of those values (a value carried anew is carried by compared records only)
        carriers as (
            select id_type, value, count(distinct (source, record_id)) as carriers from {identifiers}
            semi join (select distinct id_type, value from carried) using (id_type, value)
            where status = 'ok'
            group by all
        ),
        known as (
            select id_type, value, count(*) as records, any_value(profile_key) as profile_key,
                any_value(neighbourhood) as neighbourhood, any_value(reason) as reason, any_value(detail) as detail
            from {previous} semi join (select distinct id_type, value from carried) using (id_type, value)
            group by all
        ),
        -- neighbourhoods whose every row links: each value there links all its records, in one profile
        tidy as (
            select neighbourhood from {previous}
            semi join (select neighbourhood from known) using (neighbourhood)
            group by neighbourhood having bool_and(coalesce(linked, false))
        ),
        shapes as (
            select c.source, c.record_id,
                count(k.value) as known_values,
                bool_and(k.value is not null or (c.id_type not in ({limited}) and n.carriers = 1)) as others_alone
            from carried as c
            join carriers as n using (id_type, value)
            left join known as k using (id_type, value)
            group by all
        ),
        -- each record's known value of the first type in priority order
        firsts as (
            select c.source, c.record_id, c.id_type, c.value from carried as c
            semi join known using (id_type, value)
            join (values {priority}) as p (id_type, priority) using (id_type)
            qualify row_number() over (partition by c.source, c.record_id order by p.priority, c.value) = 1
        ),
        -- its other known values that an earlier record carried together with that one
        together as (
            select c.source, c.record_id, count(distinct (c.id_type, c.value)) as with_first
            from carried as c
            semi join known using (id_type, value)
            join firsts as f using (source, record_id)
            join {previous} as a on a.id_type = f.id_type and a.value = f.value
            join {previous} as b
                on b.source = a.source and b.record_id = a.record_id and b.id_type = c.id_type and b.value = c.value
            where c.id_type <> f.id_type or c.value <> f.value
            group by all
        ),
        uses as (
            select p.id_type, p.value, p.source in ({current}) as current, p.seen_on - date '1970-01-01' as day
            from {previous} as p semi join known using (id_type, value)
            where p.id_type in ({phone_grade})
            union all
            select i.id_type, i.value, i.source in ({current}), r.seen_on - date '1970-01-01'
            from (select distinct source, record_id, id_type, value from {identifiers} where status = 'ok') as i
            join {records} as r using (source, record_id)
            semi join known using (id_type, value)
            where i.id_type in ({phone_grade})
        ),
        refused as (
            select k.id_type, k.value from known as k join carriers as c using (id_type, value)
            where k.neighbourhood not in (select neighbourhood from tidy)
                or k.id_type not in ({person_types}) {crowded}
            {recycled}
        ),
        attachable as (
            select distinct c.source, c.record_id, k.profile_key, k.neighbourhood from carried as c
            join known as k using (id_type, value)
            join shapes as s using (source, record_id)
            left join together as t using (source, record_id)
            anti join (select source, record_id from carried semi join refused using (id_type, value))
                using (source, record_id)
            where s.known_values = 1 + coalesce(t.with_first, 0) and s.others_alone
                and c.source || ':' || c.record_id > k.profile_key and c.source || ':' || c.record_id > k.neighbourhood
        )
        select a.source, a.record_id, c.id_type, c.value, true as linked, k.reason, k.detail, a.profile_key,
            a.neighbourhood
        from attachable as a
        join carried as c using (source, record_id)
        left join known as k using (id_type, value)""")
    return "identity_attachable"


def records_to_resolve(
    con: duckdb.DuckDBPyConnection,
    fingerprints: str,
    identifiers: str,
    previous: str,
    compared: str | None = None,
    redated: str | None = None,
    attachable: str | None = None,
) -> duckdb.DuckDBPyRelation:
    """source, record_id: the records a nightly run resolves again.

    Relations `con` knows: `fingerprints` (record_fingerprints of today's records, or of the candidates only),
    `identifiers` (today's rows of at least the records of `fingerprints`), `previous` (source, record_id,
    fingerprint, neighbourhood, id_type, value as the last run left them) and `compared` (the rows of `previous` of
    the records that may have changed or gone; None: every record). New and changed records, and every record of a
    previous neighbourhood that holds a changed or gone record or a record sharing a usable value with a new or
    changed one. The set is closed: each of its records' values is carried by its records only, so its
    neighbourhoods are today's. `redated` (source, record_id; redated_records) names changed records whose change no
    decision reads: they count as unchanged. `attachable` (source, record_id, neighbourhood; attachable_records)
    names new records that join their neighbourhood without changing it: resolved again only when something else
    there is.
    An unchanged record carries today the usable values its rows in `previous` hold (one row per usable value), so
    the records sharing a value with a changed one are found there, in the scan that finds their neighbourhoods.
    """
    before = compared or previous
    # a new record joining a neighbourhood resolved again anyway is resolved with it
    joining = f"union select source, record_id from {attachable} semi join dirty using (neighbourhood)"
    return con.sql(f"""
        with before as (select distinct source, record_id, fingerprint from {before}),
        changed as (
            select source, record_id from {fingerprints}
            anti join before using (source, record_id, fingerprint)
            {f"anti join {redated} using (source, record_id)" if redated else ""}
            {f"anti join {attachable} using (source, record_id)" if attachable else ""}
        ),
        gone as (select source, record_id from before anti join {fingerprints} using (source, record_id)),
        touched_values as (
            select distinct id_type, value from {identifiers}
            semi join changed using (source, record_id)
            where status = 'ok'
        ),
        dirty as (
            select neighbourhood from {before}
            semi join (select * from changed union all select * from gone) using (source, record_id)
            union
            select neighbourhood from {previous} semi join touched_values using (id_type, value)
        )
        select source, record_id from changed
        union
        select source, record_id from {previous}
        semi join dirty using (neighbourhood)
        anti join gone using (source, record_id)
        {joining if attachable else ""}""")


LOAD_STAMP = "_loaded_at"  # staging's load time of a row (pipeline/lib/ingest.py); load times only grow
STAGED_UNTIL = "staged_until"  # column of an identity table: the newest load time in staging when its rows were built


def staged_until(relations: Mapping[str, duckdb.DuckDBPyRelation]) -> datetime | None:
    """The newest load time of the staged relations (staging model name -> relation): what a table built from them
    now has seen. None when none of them has load times."""
    newest = [
        relation.aggregate(f"max({LOAD_STAMP})").fetchone()[0]
        for relation in relations.values()
        if LOAD_STAMP in relation.columns
    ]
    return max((stamp for stamp in newest if stamp is not None), default=None)


def restage(
    con: duckdb.DuckDBPyConnection,
    table: str | None,
    relations: Mapping[str, duckdb.DuckDBPyRelation],
    rebuild: bool = False,
) -> tuple[dict[str, duckdb.DuckDBPyRelation], duckdb.DuckDBPyRelation | None]:
    """(relations, stale): the staged relations cut to the rows an identity table built from them by record
    (int_identity_records, int_identifiers: keyed source, record_id) builds again, and source, record_id of the
    records whose rows in `table` go (None: nothing goes), for tombstones (macro delete_identity_tombstones).

    `table` (None: it does not exist) holds STAGED_UNTIL; the rows built again are those loaded after its newest
    one: new records and new versions of old ones (staging replaces a record's row); the records built again are
    stale (a new version may yield no rows). A staged relation without load times is read whole. With `rebuild`,
    or a table of an older layout, every row is built again and every record of the table is stale. Records leave
    staging only through erasure (pipeline/forget.py), which deletes their rows here too.
    """
    since = None
    if table is not None and not rebuild and STAGED_UNTIL in con.table(table).columns:
        since = con.execute(f"select max({STAGED_UNTIL}) from {table}").fetchone()[0]
    if since is None:
        return dict(relations), None if table is None else con.table(table).project("source, record_id").distinct()
    cut = staged_since(relations, since)
    return cut, record_rows(cut).project("source, record_id")


def staged_since(
    relations: Mapping[str, duckdb.DuckDBPyRelation], since: datetime
) -> dict[str, duckdb.DuckDBPyRelation]:
    """The staged relations cut to the rows loaded after `since` (a table's newest STAGED_UNTIL); a relation without
    load times is read whole."""
    return {
        name: relation.filter(duckdb.ColumnExpression(LOAD_STAMP) > duckdb.ConstantExpression(since))
        if LOAD_STAMP in relation.columns
        else relation
        for name, relation in relations.items()
    }


def with_tombstones(
    con: duckdb.DuckDBPyConnection, rows: duckdb.DuckDBPyRelation, stale: duckdb.DuckDBPyRelation | None
) -> duckdb.DuckDBPyRelation:
    """`rows` and one tombstone row per `stale` record (its key, every other column null; see restage)."""
    if stale is None:
        return rows
    return con.sql(
        f"select * from ({rows.sql_query()}) union all by name select source, record_id from ({stale.sql_query()})"
    )


LINK_SCHEMA = {
    "source": pl.Utf8,
    "record_id": pl.Utf8,
    "id_type": pl.Utf8,
    "value": pl.Utf8,
    "linked": pl.Boolean,
    "reason": pl.Utf8,
    "detail": pl.Utf8,
    "profile_key": pl.Utf8,
    "neighbourhood": pl.Utf8,
    "fingerprint": pl.UInt64,
    "seen_on": pl.Date,  # the record's day the fingerprint was taken with (redated_records)
    "resolution": pl.Int64,
}


def link_records(
    identifiers: pl.DataFrame,
    records: pl.DataFrame,
    rules: IdentityRules,
    previous: pl.DataFrame | None = None,
    resolve_all: bool = False,
    duckdb_config: DuckDBConfig | None = None,
) -> pl.DataFrame:
    """Resolution.links for every record (a record without a usable identifier has one row with a null id_type),
    with its neighbourhood, fingerprint and `resolution` (see relink): the previous rows of the records a nightly run
    leaves alone, and the rows of the records it resolved.

    `previous`: the rows the last run returned. Records outside `records_to_resolve` keep them, unless
    `resolve_all` (a full rebuild, other rules). `duckdb_config` bounds the in-memory DuckDB connections.
    """
    with local_duckdb(duckdb_config) as con:
        con.register("identifiers", identifiers.to_arrow())
        con.register("records", records.to_arrow())
        if previous is not None:
            con.register("previous", previous.select(list(LINK_SCHEMA)).to_arrow())
        fresh, replaced = relink(
            con,
            "identifiers",
            "records",
            rules,
            "previous" if previous is not None else None,
            resolve_all,
            duckdb_config,
        )
        fresh = fresh.pl()
    if replaced is None:
        return fresh
    kept = previous.join(replaced, on=KEYS, how="anti", maintain_order="left")
    return pl.concat([kept.select(list(LINK_SCHEMA)).cast(LINK_SCHEMA), fresh])


def relink(
    con: duckdb.DuckDBPyConnection,
    identifiers: str,
    records: str,
    rules: IdentityRules,
    previous: str | None = None,
    resolve_all: bool = False,
    duckdb_config: DuckDBConfig | None = None,
    candidates: str | None = None,
    candidate_rows: Mapping[str, str] | None = None,
) -> tuple[duckdb.DuckDBPyRelation, pl.DataFrame | None]:
    """(fresh, replaced): the link rows (LINK_SCHEMA) of the records this run resolves, as a relation of `con`, and
    source, record_id of the previous records whose rows these replace (resolved again, or gone from `records`);
    replaced is None when every previous row goes (no previous rows, or `resolve_all`: a full rebuild, other rules:
    resolve_in_batches).

    Relations `con` knows by these names: `identifiers` (normalise_identifiers rows), `records`
    (extract_identifiers' records) and `previous` (the last run's link rows, or None; read are source, record_id,
    fingerprint, neighbourhood, resolution and, of unchanged records, id_type and value). Finding what to resolve
    runs in `con` (the warehouse, for the dbt model): only the rows of the records to resolve become frames.
    `resolution` numbers this run: microseconds since 1970, above any in `previous` (so it rises even when the
    previous table was lost), so later steps redo only what is newer than what they saw. `duckdb_config` bounds
    the rules' own in-memory DuckDB. `candidates` (a relation of `con`: source, record_id) names the records that
    may have changed or gone since `previous` (new or restaged ones, neighbours of erased ones): only their
    fingerprints are computed and compared; None compares every record's. `candidate_rows` ("identifiers",
    "records": relations of `con`) hold at least the candidates' rows of `identifiers` and `records`, in fewer rows
    than those (e.g. the rows staged since the last run): the candidates' rows are taken from them.
    """
    resolution = time.time_ns() // 1000
    last = con.sql(f"select max(resolution) from {previous}").fetchone()[0] if previous is not None else None
    if last is not None:
        resolution = max(resolution, int(last) + 1)
    if last is None or resolve_all:
        fingerprints = record_fingerprints(con, identifiers, records)
        con.execute("create or replace temp table identity_fingerprints as " + fingerprints.sql_query())
        fresh = resolve_in_batches(con, identifiers, records, "identity_fingerprints", rules, resolution, duckdb_config)
        con.execute("drop table identity_fingerprints")
        return con.table(fresh), None
    # Only the candidates' fingerprints (all records' when there are none) are compared with the previous ones.
    if candidates is None:
        fingerprints = record_fingerprints(con, identifiers, records)
    else:
        for name, relation in (("identifiers", identifiers), ("records", records)):
            con.execute(
                f"create or replace temp table identity_candidate_{name} as "
                f"select * from {(candidate_rows or {}).get(name, relation)} semi join {candidates} "
                "using (source, record_id)"
            )
        fingerprints = record_fingerprints(con, "identity_candidate_identifiers", "identity_candidate_records")
    con.execute("create or replace temp table identity_fingerprints as " + fingerprints.sql_query())
    # The previous rows every later step reads, taken from the history once: those of the neighbourhoods that hold a
    # candidate or a value a candidate carries today (a neighbourhood holds every record sharing a value with one of
    # its records, so the records to resolve again, their rows and those sharing their values are all there).
    compared = history = previous
    if candidates is not None:
        con.execute(
            "create or replace temp table identity_history as "
            + rows_of_neighbourhoods(con, previous, candidates, "identity_candidate_identifiers")
        )
        con.execute(
            "create or replace temp table identity_compared as "
            f"select * from identity_history semi join {candidates} using (source, record_id)"
        )
        compared, history = "identity_compared", "identity_history"
    today = (
        (identifiers, records)
        if candidates is None
        else ("identity_candidate_identifiers", "identity_candidate_records")
    )
    # Records whose only change is a day no decision reads keep their rows, with today's fingerprint and day; new
    # records that join a profile without changing a decision get their rows without resolving it again.
    redated = attachable = None
    if "seen_on" in con.table(previous).columns and "seen_on" in con.table(records).columns:
        redated = redated_records(con, "identity_fingerprints", *today, compared, history, rules)
        attachable = attachable_records(con, "identity_fingerprints", *today, compared, history, rules)
    con.execute(
        "create or replace temp table identity_todo as "
        + records_to_resolve(con, "identity_fingerprints", today[0], history, compared, redated, attachable).sql_query()
    )
    attached_rows = pl.DataFrame(schema=LINK_SCHEMA)
    if attachable is not None:
        columns = ", ".join(f"a.{c}" for c in LINK_SCHEMA if c not in ("fingerprint", "seen_on", "resolution"))
        attached_rows = (
            con.sql(f"""
                select {columns}, f.fingerprint, f.seen_on, {resolution}::bigint as resolution from {attachable} as a
                join identity_fingerprints as f using (source, record_id)
                anti join identity_todo using (source, record_id)""")
            .pl()
            .select(list(LINK_SCHEMA))
            .cast(LINK_SCHEMA)
        )
        con.execute(f"drop table {attachable}")
    redated_rows = pl.DataFrame(schema=LINK_SCHEMA)
    if redated is not None:
        columns = ", ".join(f"p.{c}" for c in LINK_SCHEMA if c not in ("fingerprint", "seen_on"))
        redated_rows = (
            con.sql(f"""
                select {columns}, f.fingerprint, f.seen_on from {compared} as p
                join identity_fingerprints as f using (source, record_id)
                semi join (select * from {redated} anti join identity_todo using (source, record_id))
                    using (source, record_id)""")
            .pl()
            .select(list(LINK_SCHEMA))
            .cast(LINK_SCHEMA)
        )
        con.execute(f"drop table {redated}")
    replaced = pl.concat(
        [
            con.sql(
                f"select source, record_id from {compared} anti join identity_fingerprints using (source, record_id) "
                "union select source, record_id from identity_todo"
            ).pl(),
            redated_rows.select(KEYS).unique(),
        ]
    )
    todo_rows = {
        name: f"select * from {relation} semi join identity_todo using (source, record_id)"
        for name, relation in (("identifiers", identifiers), ("records", records))
    }
    if candidates is not None:
        # A record resolved again that is no candidate is unchanged since `previous`, whose rows hold each usable
        # value it carries (the rules read no other): its identifier rows come from those, narrower than the
        # identifiers' history; the candidates' from the rows already read.
        todo_rows["identifiers"] = f"""
            select * from identity_candidate_identifiers semi join identity_todo using (source, record_id)
            union all by name
            select source, record_id, id_type, value, 'ok' as status from {history}
            semi join (select * from identity_todo anti join {candidates} using (source, record_id))
                using (source, record_id)
            where id_type is not null"""
    for name, query in todo_rows.items():
        con.execute(f"create or replace temp table identity_todo_{name} as {query}")
    if candidates is not None:
        for name in (
            "identity_history",
            "identity_compared",
            "identity_candidate_identifiers",
            "identity_candidate_records",
        ):
            con.execute(f"drop table {name}")
    # the fingerprints of the records resolved again: the candidates' and their neighbours'
    fingerprints = record_fingerprints(con, "identity_todo_identifiers", "identity_todo_records").pl()
    identifiers_todo, records_todo = (con.table(f"identity_todo_{name}").pl() for name in ("identifiers", "records"))
    for name in ("identity_todo", "identity_fingerprints", "identity_todo_identifiers", "identity_todo_records"):
        con.execute(f"drop table {name}")
    fresh = _link_rows(identifiers_todo, records_todo, fingerprints, rules, resolution, duckdb_config)
    con.register("identity_fresh_links", pl.concat([fresh, redated_rows, attached_rows]).to_arrow())
    return con.table("identity_fresh_links"), replaced


def rows_of_neighbourhoods(con: duckdb.DuckDBPyConnection, relation: str, records: str, identifiers: str) -> str:
    """A query for every column of the rows of `relation` (link rows) in the neighbourhoods that hold a record of
    `records` (source, record_id) or a row carrying a usable value of `identifiers` (normalise_identifiers rows).
    From a table, the rows are found on the few columns that select them and fetched by rowid: a semi join reads
    every column of every row before it filters (1.1M of the 24.7M link rows at 1M: 1.8-2.0 s against 2.9-3.1 s).
    A view or a registered frame has no rowid: a semi join then."""
    touched = f"""
        select neighbourhood from {relation} semi join {records} using (source, record_id)
        union
        select neighbourhood from {relation}
        semi join (select distinct id_type, value from {identifiers} where status = 'ok') using (id_type, value)"""
    schema, _, name = relation.rpartition(".")
    is_table = con.execute(
        "select count(*) from duckdb_tables() where schema_name = ? and table_name = ?", [schema or "main", name]
    ).fetchone()[0]
    if not is_table:
        return f"select * from {relation} semi join ({touched}) using (neighbourhood)"
    selected = f"select rowid from {relation} semi join ({touched}) using (neighbourhood)"
    return f"select * from {relation} where rowid in ({selected})"


def _link_rows(
    identifiers: pl.DataFrame,
    records: pl.DataFrame,
    fingerprints: pl.DataFrame,
    rules: IdentityRules,
    resolution: int,
    duckdb_config: DuckDBConfig | None,
) -> pl.DataFrame:
    """The LINK_SCHEMA rows of whole neighbourhoods' records: resolve_identities' links and linkless records with
    their fingerprints (source, record_id, fingerprint) and this run's `resolution`."""
    resolved = resolve_identities(identifiers, records, rules, duckdb_config)
    fresh = (
        pl.concat([resolved.links, resolved.linkless], how="diagonal")
        .join(fingerprints, on=KEYS)
        .with_columns(resolution=pl.lit(resolution, pl.Int64))
    )
    return fresh.select(list(LINK_SCHEMA)).cast(LINK_SCHEMA)


# Records resolved together in one batch of a full build: the rules' frames of one batch take about 1 GB per million
# records, so this bounds the Python side of a full build whatever the history's size.
BATCH_RECORDS = 500_000
# While the rules' frames are alive, the warehouse's DuckDB keeps this share of its memory_limit: the batch tables
# and the links written so far (the history's size) spill beyond it, so the process holds at most the share plus
# one batch's frames (at 1M, 5.2 GiB with DuckDB at its full 4GB limit beside them).
DUCKDB_SHARE_BESIDE_FRAMES = 0.5
BATCH_FILES = "identity-batches-"  # prefix of a full build's folder of batch files, in DuckDB's temp_directory


def resolve_in_batches(
    con: duckdb.DuckDBPyConnection,
    identifiers: str,
    records: str,
    fingerprints: str,
    rules: IdentityRules,
    resolution: int,
    duckdb_config: DuckDBConfig | None = None,
    batch_records: int = BATCH_RECORDS,
) -> str:
    """Every record's link rows (LINK_SCHEMA) in a temporary table of `con`, whose name is returned; a full build.

    The rules decide within a neighbourhood (see the nightly section below), so whole neighbourhoods are resolved
    in batches of about `batch_records` records (a bigger neighbourhood is a batch of its own), with the result
    of resolving everything at once. Records and values are numbered in `con` and only the integer edges leave it
    to find the neighbourhoods (scipy); then the inputs are written once as Parquet files partitioned by batch, and
    one batch's files at a time become frames, whose link rows go back into the table. Relations `con` knows by
    these names: `identifiers`, `records` (as for relink) and `fingerprints` (record_fingerprints of them: one row
    per record of either). `duckdb_config` bounds the rules' in-memory DuckDB and names the folder the batch files
    are written in (`temp_directory`, else the system's; they are deleted at the end, and a killed build's at the
    next one's start); its memory_limit is taken to be `con`'s too (dbt's profile and the models' configs set both
    from one var), which DUCKDB_SHARE_BESIDE_FRAMES of it is kept while frames are alive.
    """
    # The fingerprints name every record once; records and usable values are numbered once, in key order (the
    # rules' frames then carry the numbers: RECORD_ORDER, VALUE_ORDER, so their sorts are of integers).
    con.execute(f"""
        create or replace temp table identity_record_numbers as
        select source, record_id, fingerprint, seen_on,
            (row_number() over (order by source, record_id) - 1)::bigint as r
        from {fingerprints}""")
    con.execute(f"""
        create or replace temp table identity_value_numbers as
        select id_type, value, (row_number() over (order by id_type, value) - 1)::bigint as v
        from (select distinct id_type, value from {identifiers} where status = 'ok')""")
    n = con.execute("select count(*) from identity_record_numbers").fetchone()[0]
    values = con.execute("select count(*) from identity_value_numbers").fetchone()[0]
    # The joins on text keys run once, with DuckDB's whole memory_limit: the edges and the batch files read the
    # numbered rows; only the integer edges are fetched beside numpy.
    con.execute(f"""
        create or replace temp table identity_numbered_identifiers as
        select rows.*, numbers.r as {RECORD_ORDER}, value_numbers.v as {VALUE_ORDER}
        from {identifiers} as rows
        join identity_record_numbers as numbers using (source, record_id)
        left join identity_value_numbers as value_numbers using (id_type, value)""")
    con.execute(f"""
        create or replace temp table identity_edges as
        select distinct {RECORD_ORDER} as r, {VALUE_ORDER} as v from identity_numbered_identifiers
        where status = 'ok'""")
    limit = (duckdb_config or {}).get("memory_limit")
    with memory_share(con, limit, DUCKDB_SHARE_BESIDE_FRAMES):  # the whole graph's edges are in numpy
        edges = con.execute("select r, v from identity_edges").fetchnumpy()
        con.execute("drop table identity_edges")
        neighbourhood = _components(n + values, edges["r"], n + edges["v"])[:n]
        del edges
    # Neighbourhoods in label order fill batches; one starting in a batch stays whole in it.
    sizes = np.bincount(neighbourhood)
    batch_of = (np.cumsum(sizes) - sizes) // max(batch_records, 1)
    con.register(
        "identity_batch_numbers", pl.DataFrame({"r": np.arange(n), "batch": batch_of[neighbourhood]}).to_arrow()
    )
    # Each input is read once and split by batch into files (a hash partitioning, no sort): a batch's rows are then
    # its files, read straight into frames.
    inputs = {
        "identifiers": f"""
            select rows.*, batches.batch from identity_numbered_identifiers as rows
            join identity_batch_numbers as batches on batches.r = rows.{RECORD_ORDER}""",
        "records": f"""
            select rows.*, numbers.r as {RECORD_ORDER}, batches.batch from {records} as rows
            join identity_record_numbers as numbers using (source, record_id)
            join identity_batch_numbers as batches using (r)""",
        "fingerprints": """
            select numbers.source, numbers.record_id, numbers.fingerprint, numbers.seen_on, batches.batch
            from identity_record_numbers as numbers join identity_batch_numbers as batches using (r)""",
    }
    folder = (duckdb_config or {}).get("temp_directory")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for stale in Path(folder).glob(f"{BATCH_FILES}*"):  # a killed build's files: personal data, never reused
            shutil.rmtree(stale, ignore_errors=True)
    con.register("identity_link_schema", pl.DataFrame(schema=LINK_SCHEMA).to_arrow())
    con.execute("create or replace temp table identity_all_links as select * from identity_link_schema")
    con.unregister("identity_link_schema")
    with tempfile.TemporaryDirectory(prefix=BATCH_FILES, dir=folder) as files:
        empty = {}
        for name, query in inputs.items():
            empty[name] = con.execute(f"select * exclude (batch) from ({query}) limit 0").pl()
            target = quote_literal(str(Path(files) / name))
            con.execute(f"copy ({query}) to {target} (format parquet, partition_by (batch), compression 'lz4_raw')")
        con.unregister("identity_batch_numbers")
        for name in ("identity_record_numbers", "identity_value_numbers", "identity_numbered_identifiers"):
            con.execute(f"drop table {name}")

        def batch_rows(name: str, batch: int) -> pl.DataFrame:
            part = Path(files) / name / f"batch={batch}"
            if not part.is_dir():
                return empty[name]
            return pl.read_parquet(part / "*.parquet", hive_partitioning=False).cast(empty[name].schema)

        with memory_share(con, limit, DUCKDB_SHARE_BESIDE_FRAMES):
            for batch in range(int(batch_of.max(initial=-1)) + 1):
                ids, recs, prints = (batch_rows(name, batch) for name in inputs)
                con.register("identity_batch_links", _link_rows(ids, recs, prints, rules, resolution, duckdb_config))
                del ids, recs, prints
                con.execute("insert into identity_all_links select * from identity_batch_links")
                con.unregister("identity_batch_links")
    return "identity_all_links"


# ------------------------------------------------------------------------------------------------ stable ids
#
# Set-wise in DuckDB: the map's rows never leave the warehouse, and a nightly run decides ids only for the records
# whose components were resolved again (int_identity_map).

NO_IDS = "(select null::varchar as source, null::varchar as record_id, null::varchar as customer_id where false)"


def _minted_id(bits: str) -> str:
    """SQL: 'C' + 10 base32 characters (ID_ALPHABET) of the low 50 bits of the integer expression `bits`."""
    chars = [f"substr('{ID_ALPHABET}', (({bits} >> {5 * k}) & 31)::integer + 1, 1)" for k in range(9, -1, -1)]
    return " || ".join(["'C'", *chars])


def mint_ids(con: duckdb.DuckDBPyConnection, keys: str, taken: str | None = None) -> duckdb.DuckDBPyRelation:
    """pos, key, customer_id: 'C' + 10 base32 chars of md5(key) for each row of the relation `keys` (column key;
    pos numbers its rows): the same key always gets the same id.

    An id in the relation `taken` (column customer_id), or minted for a smaller key in this call, is re-hashed as
    md5(key '#' n) until it is free. The result is a temporary table of `con`.
    """
    taken_ids = f"(select customer_id from {taken})" if taken else NO_IDS
    con.execute(
        f"create or replace temp table identity_mint_pending as select row_number() over () as pos, key from {keys}"
    )
    con.execute("create or replace temp table identity_minted (pos bigint, key varchar, customer_id varchar)")
    salt = 0
    while con.execute("select count(*) from identity_mint_pending").fetchone()[0]:
        # A candidate is kept when it is free and the first (by key) to claim it in this round.
        con.execute(
            f"""
            insert into identity_minted
            select pos, key, candidate from (
                select pos, key, {_minted_id("bits")} as candidate from (
                    select pos, key,
                        ('0x' || left(md5(if($salt = 0, key, key || '#' || $salt::varchar)), 13))::ubigint as bits
                    from identity_mint_pending
                )
            ) as proposal
            where not exists (select 1 from {taken_ids} as t where t.customer_id = proposal.candidate)
              and not exists (select 1 from identity_minted as m where m.customer_id = proposal.candidate)
            qualify row_number() over (partition by candidate order by key, pos) = 1""",
            {"salt": salt},
        )
        con.execute("delete from identity_mint_pending where pos in (select pos from identity_minted)")
        salt += 1
    con.execute("drop table identity_mint_pending")
    return con.table("identity_minted")


def stable_ids(
    con: duckdb.DuckDBPyConnection, clusters: str, previous: str | None = None, taken: str | None = None
) -> duckdb.DuckDBPyRelation:
    """source, record_id, customer_id, previous_customer_id: a customer id for each cluster of the relation
    `clusters` (source, record_id, cluster_key), keeping the ids of the relation `previous` (source, record_id,
    customer_id).

    An old id stays with the cluster holding most of its records (ties: smallest cluster key), so a split leaves
    it on the largest part; a cluster that inherits several old ids is a merge and keeps the smallest one.
    Clusters without an inherited id get a minted id (mint_ids), never one of `previous` or of the relation `taken`
    (column customer_id). `previous=None` is a full rebuild. Works in temporary tables of `con`.
    """
    con.execute(f"""
        create or replace temp table identity_assigned_records as
        select c.source, c.record_id, c.cluster_key, p.customer_id as previous_customer_id
        from {clusters} as c
        left join {previous or NO_IDS} as p on c.source = p.source and c.record_id = p.record_id""")
    con.execute("""
        create or replace temp table identity_heirs as
        with holdings as (
            select cluster_key, previous_customer_id, count(*) as n from identity_assigned_records
            where previous_customer_id is not null group by all
        ),
        heirs as (
            select * from holdings
            qualify row_number() over (partition by previous_customer_id order by n desc, cluster_key) = 1
        )
        select cluster_key, min(previous_customer_id) as customer_id from heirs group by cluster_key""")
    con.execute("""
        create or replace temp view identity_unnamed as
        select distinct cluster_key as key from identity_assigned_records
        anti join identity_heirs using (cluster_key)""")
    taken_ids = f"select customer_id from {taken}" if taken else "select customer_id from " + NO_IDS
    con.execute(f"""
        create or replace temp view identity_taken as
        select customer_id from {previous or NO_IDS} union all {taken_ids}""")
    mint_ids(con, "identity_unnamed", "identity_taken")
    return con.sql("""
        select r.source, r.record_id, coalesce(h.customer_id, m.customer_id) as customer_id, r.previous_customer_id
        from identity_assigned_records as r
        left join identity_heirs as h using (cluster_key)
        left join identity_minted as m on m.key = r.cluster_key""")


def changes(con: duckdb.DuckDBPyConnection, assignments: str) -> duckdb.DuckDBPyRelation:
    """change_type, old_customer_id, new_customer_id, records: identity_changes rows (without the run date) of the
    relation `assignments` (stable_ids' columns): one row per (old id -> new id) move, plus new ids.

    merge: the new id took records of two or more old ids (survivor = the new id);
    split: part of an old id's records moved to an id that holds records of no other old id;
    new:   an id none of whose records had an id before.
    """
    return con.sql(f"""
        with assigned as (select * from {assignments} where customer_id is not null),
        moves as (
            select previous_customer_id, customer_id, count(*) as records from assigned
            where previous_customer_id is not null group by all
        ),
        olds as (select customer_id, count(*) as n_old from moves group by all)
        select if(olds.n_old > 1, 'merge', 'split') as change_type, moves.previous_customer_id as old_customer_id,
            moves.customer_id as new_customer_id, moves.records
        from moves join olds using (customer_id)
        where moves.previous_customer_id <> moves.customer_id
        union all
        select 'new', null, customer_id, count(*) from assigned
        group by customer_id having count(previous_customer_id) = 0
        order by change_type, new_customer_id, old_customer_id nulls last""")


def mint_customer_ids(keys: pl.Series, taken: pl.Series | None = None) -> pl.Series:
    """mint_ids of `keys` in their order (frames in, frames out: the in-memory path and tests)."""
    with local_duckdb() as con:
        con.register("identity_keys", pl.DataFrame({"key": keys.cast(pl.Utf8)}).to_arrow())
        con.register(
            "identity_taken_ids", pl.DataFrame({"customer_id": taken}, schema={"customer_id": pl.Utf8}).to_arrow()
        )
        return mint_ids(con, "identity_keys", "identity_taken_ids").order("pos").pl().get_column("customer_id")


def assign_stable_ids(
    clusters: pl.DataFrame,
    previous: pl.DataFrame | None = None,
    reserved_ids: pl.Series | None = None,
    duckdb_config: DuckDBConfig | None = None,
) -> pl.DataFrame:
    """stable_ids of frames (the in-memory path and tests), sorted by source, record_id."""
    with local_duckdb(duckdb_config) as con:
        con.register("identity_clusters", clusters.to_arrow())
        if previous is not None:
            con.register("identity_previous", previous.to_arrow())
        con.register(
            "identity_reserved", pl.DataFrame({"customer_id": reserved_ids}, schema={"customer_id": pl.Utf8}).to_arrow()
        )
        assigned = stable_ids(
            con, "identity_clusters", "identity_previous" if previous is not None else None, "identity_reserved"
        )
        return assigned.order("source, record_id").pl()


def describe_changes(assignments: pl.DataFrame, run_date: date) -> pl.DataFrame:
    """identity_changes rows (changes) of an assign_stable_ids frame on `run_date`."""
    with local_duckdb() as con:
        con.register("identity_assignments", assignments.to_arrow())
        rows = changes(con, "identity_assignments").pl()
    return rows.select(pl.lit(run_date, pl.Date).alias("run_date"), pl.all())
