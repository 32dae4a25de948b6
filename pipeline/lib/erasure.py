"""Right to erasure: find one person, delete every row of theirs from the warehouse, and keep them out for good.

Why: Indonesia's Personal Data Protection law (UU No. 27 Tahun 2022 tentang Pelindungan Data Pribadi, the data
subject's right to have their personal data deleted, art. 8 and the controller's duty to erase, art. 43) and the EU
GDPR (art. 17, "right to be forgotten") require a controller to erase a person's data on request and not to
re-collect it silently.

How:
  1. `find_person` matches the given email / phone / customer id against every identifier in raw.*, normalised
     exactly as identity resolution does (`pipeline.lib.identity`: lower-cased emails, E.164 phones, blocklist), then
     widens to every record of the same resolved customer (intermediate.int_identity_map; without it, to the
     records sharing the matched records' account / order / requester ids).
  2. `erase_person` deletes, in every table of every schema, each row carrying one of that person's identifiers:
     customer ids, order ids (also as order_ref), ticket / requester / response ids, emails and phones in any
     spelling, and quarantine payloads (JSON fields, plus the email text in unparseable lines).
  3. `record_suppression` stores the identifiers as unsalted, typed SHA-256 hashes (never clear values) in
     privacy.suppression_list. They must match across runs whatever the serving salt is, so they are hashed
     without a secret: a hash proves nothing beyond "this value was erased", which is what the list is for.
  4. `drop_suppressed` is the ingestion hook (called by `pipeline.lib.ingest.land`): delivered rows carrying a
     suppressed identifier are dropped before landing, and counted.
Caveat: an identifier the person shares with someone else (a household phone) removes the other person's rows that
carry it as well; erasure errs on the side of deleting.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from pipeline.lib.identity import (
    IDENTIFIER_TYPES,
    IdentityRules,
    normalise_emails,
    normalise_identifiers,
)
from pipeline.lib.phones import known_phones, normalise_phones
from pipeline.lib.sources import registry
from pipeline.lib.warehouse import table_exists

SUPPRESSION_TABLE = "privacy.suppression_list"
PROTECTED_SCHEMAS = ("privacy", "information_schema", "pg_catalog")
# raw table -> (identity source, its record key column, {column: identifier type}), from the source registry.
RAW_IDENTIFIERS: dict[str, tuple[str | None, str | None, dict[str, str]]] = {
    t.name: (t.record_source, t.record_key, registry.identifier_columns(t.name)) for t in registry.TABLES.values()
}
# Each source's own record key, as an identifier type.
RECORD_KEY_TYPE = {
    t.record_source: registry.identifier_columns(t.name)[t.record_key] for t in registry.person_records()
}
LINK_TYPES = ("webshop_customer_id", "order_id", "helpdesk_requester_id")  # system keys that tie records together
_HASH = "sha256(id_type || ':' || value)"
PAYLOAD_EMAIL = r'[^\s"@<>(),;:\\]+@[^\s"@<>(),;:\\]+\.[A-Za-z]{2,}'  # an address inside free text
# A webshop account's referral code, carried by other people's orders (marts/customer_profile.sql counts them).
REFERRAL_CODE_PREFIX = "REF-"
TEXT_PAYLOAD_COLUMNS = ("_payload", "_raw_line")  # quarantined deliveries as they came (JSON or a raw line)


@dataclass
class Person:
    """Everything that identifies one person: `identifiers` has id_type, value (normalised) rows."""

    customer_ids: list[str]
    identifiers: pl.DataFrame
    records: pl.DataFrame  # source, record_id of every source record found to be theirs

    def values(self, id_type: str) -> list[str]:
        return self.identifiers.filter(pl.col("id_type") == id_type).get_column("value").to_list()


@dataclass
class ErasureResult:
    person: Person
    deleted: dict[str, int] = field(default_factory=dict)  # "schema.table" -> rows deleted
    referrals_cleared: dict[str, int] = field(default_factory=dict)  # "schema.table" -> rows whose code was cleared
    suppressed_entries: int = 0

    @property
    def rows_deleted(self) -> int:
        return sum(self.deleted.values())


def normalise_values(
    frame: pl.DataFrame, rules: IdentityRules, parsed_phones: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Add `value` (normalised) and `status` to id_type, raw_value rows: identity's rules, ids of other types trimmed.

    `parsed_phones`: earlier phone parses to reuse (pipeline.lib.phones)."""
    identity = frame.filter(pl.col("id_type").is_in(IDENTIFIER_TYPES))
    others = (
        frame.filter(~pl.col("id_type").is_in(IDENTIFIER_TYPES))
        .with_columns(value=pl.col("raw_value").str.strip_chars())
        .with_columns(
            status=pl.when(pl.col("value").fill_null("") == "").then(pl.lit("invalid")).otherwise(pl.lit("ok"))
        )
    )
    normalised = (
        normalise_identifiers(identity, rules, parsed_phones)
        if identity.height
        else identity.with_columns(value=pl.lit(None, pl.Utf8), status=pl.lit(None, pl.Utf8))
    )
    columns = [*frame.columns, "value", "status"]
    return pl.concat([normalised.select(columns), others.select(columns)])


def _raw_edges(con: duckdb.DuckDBPyConnection, rules: IdentityRules) -> pl.DataFrame:
    """source, record_id, id_type, value of every usable identifier on every raw record (record keys included)."""
    parts = []
    for table, (source, key, columns) in RAW_IDENTIFIERS.items():
        if source is None:
            continue
        # Quarantined rows count too: their order lines landed in raw and must go with them.
        relations = {f"raw.{table}": "{c}", f"quarantine.{table}": "json_extract_string(_payload, '$.{c}')"}
        for relation, expr in ((r, f) for r, f in relations.items() if table_exists(con, r)):
            parts += [
                f"select '{source}' as source, cast({expr.format(c=key)} as varchar) as record_id, "
                f"'{id_type}' as id_type, cast({expr.format(c=column)} as varchar) as raw_value "
                f"from {relation} where {expr.format(c=column)} is not null and {expr.format(c=key)} is not null"
                for column, id_type in columns.items()
            ]
    if not parts:
        return pl.DataFrame(schema={"source": pl.Utf8, "record_id": pl.Utf8, "id_type": pl.Utf8, "value": pl.Utf8})
    edges = con.execute(" union ".join(parts)).pl()
    parsed_phones = known_phones(con, "intermediate.int_phone_numbers", rules.default_region)
    return (
        normalise_values(edges, rules, parsed_phones)
        .filter(pl.col("status") == "ok")
        .select("source", "record_id", "id_type", "value")
        .unique()
    )


def find_person(
    con: duckdb.DuckDBPyConnection,
    *,
    email: str | None = None,
    phone: str | None = None,
    customer_id: str | None = None,
    rules: IdentityRules,
) -> Person:
    """The person behind one email, phone or customer id (CDP id or webshop account id), with all their identifiers."""
    given = []
    if email is not None:
        value = normalise_emails(pl.Series([email])).item()
        if value is None:
            raise ValueError(f"{email!r} is not a valid email address")
        given.append(("email", value))
    if phone is not None:
        value = normalise_phones(pl.Series([phone]), rules.default_region).item()
        if value is None:
            raise ValueError(f"{phone!r} is not a valid phone number (region {rules.default_region})")
        given.append(("phone", value))
    if customer_id is not None:
        given += [("customer_id", customer_id.strip()), ("webshop_customer_id", customer_id.strip())]
    if not given:
        raise ValueError("give an email, a phone or a customer id")
    wanted = pl.DataFrame(given, schema={"id_type": pl.Utf8, "value": pl.Utf8}, orient="row")

    edges = _raw_edges(con, rules)
    records = edges.join(wanted, on=["id_type", "value"], how="semi").select("source", "record_id").unique()
    customer_ids = wanted.filter(pl.col("id_type") == "customer_id").get_column("value")
    if table_exists(con, "intermediate.int_identity_map"):
        identity_map = con.execute("select source, record_id, customer_id from intermediate.int_identity_map").pl()
        customer_ids = pl.concat(
            [
                identity_map.join(records, on=["source", "record_id"], how="semi").get_column("customer_id"),
                identity_map.filter(pl.col("customer_id").is_in(customer_ids.implode())).get_column("customer_id"),
            ]
        ).unique()
        records = pl.concat(
            [
                records,
                identity_map.filter(pl.col("customer_id").is_in(customer_ids.implode())).select("source", "record_id"),
            ]
        ).unique()
    else:
        # No identity map yet: widen once through the system keys the matched records carry.
        links = edges.join(records, on=["source", "record_id"], how="semi").filter(pl.col("id_type").is_in(LINK_TYPES))
        records = pl.concat(
            [
                records,
                edges.join(links.select("id_type", "value"), on=["id_type", "value"], how="semi").select(
                    "source", "record_id"
                ),
            ]
        ).unique()
    record_keys = records.select(
        id_type=pl.col("source").replace_strict(RECORD_KEY_TYPE, return_dtype=pl.Utf8), value="record_id"
    )
    identifiers = pl.concat(
        [
            wanted.filter(pl.col("id_type") != "customer_id"),
            edges.join(records, on=["source", "record_id"], how="semi").select("id_type", "value"),
            record_keys,
            pl.DataFrame(
                {"id_type": "customer_id", "value": customer_ids}, schema={"id_type": pl.Utf8, "value": pl.Utf8}
            ),
        ]
    ).unique()
    # Every record carrying one of these identifiers gets erased, so whatever hangs off its key goes too (an order's
    # lines, a second account's orders): close over record keys (contact values are not widened further).
    while True:
        carrying = edges.join(identifiers, on=["id_type", "value"], how="semi").select("source", "record_id").unique()
        grown = pl.concat(
            [
                identifiers,
                carrying.select(
                    id_type=pl.col("source").replace_strict(RECORD_KEY_TYPE, return_dtype=pl.Utf8), value="record_id"
                ),
            ]
        ).unique()
        if grown.height == identifiers.height:
            break
        identifiers = grown
    records = pl.concat([records, carrying]).unique()
    identifiers = identifiers.sort("id_type", "value")
    return Person(
        customer_ids=sorted(customer_ids.to_list()),
        identifiers=identifiers,
        records=records.sort("source", "record_id"),
    )


# ------------------------------------------------------------------------------------------------- erasure


def _column_kind(table: str, column: str, columns: set[str]) -> str | None:
    """Which of a person's identifier sets a column is compared with (None: not an identifier column)."""
    name = column.lower()
    if name == "customer_id" or name.endswith("_customer_id"):
        return "customer_key"  # CDP ids and webshop account ids alike (their formats never collide)
    if name in ("order_id", "order_ref"):
        return "order_id"
    if name == "requester_id":
        return "helpdesk_requester_id"
    if name == "ticket_id" or (name == "id" and "ticket" in table):
        return "ticket_id"
    if name == "response_id":
        return "survey_response_id"
    if name == "record_id":
        return "record_id"
    if name == "value" and "id_type" in columns:
        return "any"
    if "email" in name or name in ("_raw_line", "_payload"):
        return "email"
    if "phone" in name:
        return "phone"
    return None


def _erase_sets(person: Person) -> pl.DataFrame:
    """kind, value: the person's identifier sets as compared by `_column_kind`."""
    ids = person.identifiers
    keys = ids.filter(pl.col("id_type").is_in(["customer_id", "webshop_customer_id"])).with_columns(
        id_type=pl.lit("customer_key")
    )
    records = ids.filter(pl.col("id_type").is_in(list(RECORD_KEY_TYPE.values()))).with_columns(
        id_type=pl.lit("record_id")
    )
    return pl.concat([ids, keys, records, ids.with_columns(id_type=pl.lit("any"))]).unique().rename({"id_type": "kind"})


def _tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = current_database() "
        "and not temporary and schema_name not in (select unnest(?)) order by 1, 2",
        [list(PROTECTED_SCHEMAS)],
    ).fetchall()


def _identifier_expressions(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str, str]]:
    """(kind, SQL expression, data type) per identifier-bearing column, quarantine JSON payload fields included."""
    columns = con.execute(
        "select column_name, data_type from duckdb_columns() where database_name = current_database() "
        "and schema_name = ? and table_name = ?",
        [schema, table],
    ).fetchall()
    names = {c for c, _ in columns}
    found = []
    for column, dtype in columns:
        kind = _column_kind(table, column, names)
        if kind is not None:
            found.append((kind, f'"{column}"', dtype))
        if column == "_payload":
            keys = con.execute(
                f'select distinct unnest(json_keys("_payload")) from "{schema}"."{table}" where json_valid(_payload)'
            ).fetchall()
            for (key,) in keys:
                kind = _column_kind(table, key, {k for (k,) in keys})
                if kind is not None and key not in ("_payload",):
                    found.append((kind, f'json_extract_string("_payload", \'$."{key}"\')', "VARCHAR"))
    return found


def _phone_spellings(
    con: duckdb.DuckDBPyConnection,
    expressions: list[tuple[str, str, str, str]],
    phones: list[str],
    rules: IdentityRules,
) -> pl.Series:
    """Every delivered spelling, across all phone columns, of the person's phones (normalised like identity does)."""
    selects = [
        f'select distinct cast({expr} as varchar) as raw from "{schema}"."{table}"'
        for schema, table, expr, dtype in expressions
        if dtype == "VARCHAR"
    ]
    selects += [
        f'select distinct unnest({expr}) as raw from "{schema}"."{table}"'
        for schema, table, expr, dtype in expressions
        if dtype == "VARCHAR[]"
    ]
    if not selects or not phones:
        return pl.Series("raw", [], dtype=pl.Utf8)
    raw = con.execute(" union ".join(selects)).pl().get_column("raw").drop_nulls()
    return raw.filter(normalise_phones(raw, rules.default_region).is_in(phones)).rename("raw")


def _predicate(kind: str, expr: str, dtype: str) -> str:
    if kind == "phone":
        pool = "(select list(raw) from _erase_phones)"
        return (
            f"list_has_any({expr}, {pool})"
            if dtype == "VARCHAR[]"
            else f"cast({expr} as varchar) in (select raw from _erase_phones)"
        )
    pool_sql = f"select value from _erase_ids where kind = '{kind}'"
    if kind == "email" and expr in ('"_payload"', '"_raw_line"'):
        # Unparseable lines: the address anywhere in the text.
        return f"exists (select 1 from _erase_ids e where e.kind = 'email' and contains(lower({expr}), e.value))"
    if dtype == "VARCHAR[]":
        value = "lower(trim(v))" if kind == "email" else "trim(v)"
        return f"list_has_any(list_transform({expr}, v -> {value}), (select list(value) from ({pool_sql})))"
    value = f"lower(trim(cast({expr} as varchar)))" if kind == "email" else f"trim(cast({expr} as varchar))"
    return f"{value} in ({pool_sql})"


def erase_person(con: duckdb.DuckDBPyConnection, person: Person, rules: IdentityRules) -> dict[str, int]:
    """Delete the person's rows from every table outside the privacy schema; returns rows deleted per table.

    Runs inside the caller's transaction (the caller commits together with the suppression entries).
    """
    tables = _tables(con)
    expressions = {(schema, table): _identifier_expressions(con, schema, table) for schema, table in tables}
    phone_columns = [
        (s, t, expr, dtype) for (s, t), found in expressions.items() for kind, expr, dtype in found if kind == "phone"
    ]
    con.register("_erase_ids_frame", _erase_sets(person).to_arrow())
    con.register(
        "_erase_phones_frame",
        pl.DataFrame({"raw": _phone_spellings(con, phone_columns, person.values("phone"), rules)}).to_arrow(),
    )
    con.execute("create or replace temp table _erase_ids as select * from _erase_ids_frame")
    con.execute("create or replace temp table _erase_phones as select * from _erase_phones_frame")
    deleted = {}
    wheres = {
        key: " or ".join(f"coalesce({_predicate(kind, expr, dtype)}, false)" for kind, expr, dtype in found)
        for key, found in expressions.items()
        if found
    }
    links = wheres.get(("intermediate", "int_identity_links"))
    has_neighbourhoods = con.execute(
        "select count(*) from duckdb_columns() where database_name = current_database() "
        "and schema_name = 'intermediate' and table_name = 'int_identity_links' and column_name = 'neighbourhood'"
    ).fetchone()[0]
    if links and has_neighbourhoods:
        # The records left in the person's neighbourhoods count as changed, so the next nightly run resolves them
        # again without the erased records (as resolving everything would).
        con.execute(
            "update intermediate.int_identity_links set fingerprint = 0 where neighbourhood in "
            f"(select neighbourhood from intermediate.int_identity_links where {links})"
        )
    for (schema, table), where in wheres.items():
        count = con.execute(f'delete from "{schema}"."{table}" where {where}').fetchone()[0]
        if count:
            deleted[f"{schema}.{table}"] = count
    con.unregister("_erase_ids_frame")
    con.unregister("_erase_phones_frame")
    return deleted


def clear_referral_codes(con: duckdb.DuckDBPyConnection, person: Person) -> dict[str, int]:
    """Clear the person's referral codes (REF-<account id>) from the rows of other people that carry them.

    `referral_code` columns become null; quarantined payloads and raw lines lose the code text. Runs inside the
    caller's transaction; returns rows changed per table."""
    codes = [REFERRAL_CODE_PREFIX + account for account in person.values("webshop_customer_id")]
    if not codes:
        return {}
    # Whole codes only: REF-W0000012 must not cut into REF-W00000123.
    pattern = "(?i)(" + "|".join(re.escape(code) for code in codes) + r")\b"
    changed: dict[str, int] = {}
    for schema, table in _tables(con):
        columns = [
            c
            for (c,) in con.execute(
                "select column_name from duckdb_columns() where database_name = current_database() and schema_name = ? "
                "and table_name = ? and data_type = 'VARCHAR'",
                [schema, table],
            ).fetchall()
        ]
        relation = f'"{schema}"."{table}"'
        for column in columns:
            quoted = '"' + column.replace('"', '""') + '"'
            if column.lower() == "referral_code":
                sql = f"update {relation} set {quoted} = null where upper(trim({quoted})) in (select unnest(?))"
                params = [[code.upper() for code in codes]]
            elif column in TEXT_PAYLOAD_COLUMNS:
                sql = (
                    f"update {relation} set {quoted} = regexp_replace({quoted}, ?, '', 'g') "
                    f"where regexp_matches({quoted}, ?)"
                )
                params = [pattern, pattern]
            else:
                continue
            count = con.execute(sql, params).fetchone()[0]
            if count:
                changed[f"{schema}.{table}"] = changed.get(f"{schema}.{table}", 0) + count
    return changed


def compact(con: duckdb.DuckDBPyConnection, warehouse: Path) -> None:
    """Rewrite the warehouse `con` has open into a fresh file and swap it in atomically (os.replace).

    Why: DuckDB marks a deleted row's blocks free but does not overwrite them, so erased values stay readable in the
    file until reused. The copy holds live data only. `con` keeps the write lock throughout (no run writes in
    between) and must be closed by the caller right after; a crash before the swap leaves the old file in place and
    a `.compact-*` leftover that the next compaction replaces."""
    fresh = warehouse.with_name(f"{warehouse.name}.compact-{os.getpid()}")
    for leftover in warehouse.parent.glob(f"{warehouse.name}.compact-*"):
        leftover.unlink()
    database = con.execute("select current_database()").fetchone()[0]
    con.execute("force checkpoint")
    con.execute(f"attach '{str(fresh).replace(chr(39), chr(39) * 2)}' as erasure_compacted")
    try:
        con.execute(f'copy from database "{database}" to erasure_compacted')
    finally:
        con.execute("detach erasure_compacted")
    os.replace(fresh, warehouse)


# --------------------------------------------------------------------------------------------- suppression


def ensure_suppression_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists privacy")
    con.execute(
        f"create table if not exists {SUPPRESSION_TABLE} "
        "(id_type varchar, value_sha256 varchar, recorded_at timestamp, primary key (id_type, value_sha256))"
    )


def record_suppression(con: duckdb.DuckDBPyConnection, person: Person) -> int:
    """Add the person's identifiers, hashed, to the suppression list; returns how many entries were new."""
    ensure_suppression_table(con)
    con.register("_suppress_frame", person.identifiers.to_arrow())
    try:
        return con.execute(f"""
            insert into {SUPPRESSION_TABLE}
            select distinct id_type, {_HASH}, current_timestamp::timestamp from _suppress_frame
            where ({_HASH}) not in (select value_sha256 from {SUPPRESSION_TABLE})
        """).fetchone()[0]
    finally:
        con.unregister("_suppress_frame")


def _suppressing(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether anyone was erased: the ingestion hooks cost nothing while the suppression list is absent or empty."""
    return table_exists(con, SUPPRESSION_TABLE) and bool(
        con.execute(f"select count(*) from {SUPPRESSION_TABLE}").fetchone()[0]
    )


def drop_suppressed(
    con: duckdb.DuckDBPyConnection, table: str, relation: str, rules: IdentityRules, payload: str | None = None
) -> int:
    """Ingestion hook: delete from the (temp) `relation` of raw `table` every row carrying a suppressed identifier,
    in its identifier columns or anywhere in `payload` (SQL of the row's delivered text, for unparseable deliveries).

    Returns the rows dropped. Costs nothing while the suppression list is absent or empty.
    """
    mapping = RAW_IDENTIFIERS.get(table, (None, None, {}))[2]
    if not mapping or not _suppressing(con):
        return 0
    delivered = {row[0] for row in con.execute(f"describe select * from {relation}").fetchall()}
    columns = {c: t for c, t in mapping.items() if c in delivered}
    if not columns:
        return 0
    selects = [
        f"select distinct '{c}' as column_name, '{t}' as id_type, cast({c} as varchar) as raw_value "
        f"from {relation} where {c} is not null"
        for c, t in columns.items()
    ]
    if payload:
        # Unparseable deliveries (quarantine-bound) still carry the address somewhere in their text.
        selects.append(
            f"select distinct '_payload', 'email', unnest(regexp_extract_all({payload}, '{PAYLOAD_EMAIL}')) "
            f"from {relation}"
        )
    values = con.execute(" union ".join(selects)).pl()
    con.register("_suppress_candidates", normalise_values(values, rules).filter(pl.col("status") == "ok").to_arrow())
    try:
        con.execute(f"""
            create or replace temp table _suppressed_values as
            select column_name, raw_value from _suppress_candidates
            where {_HASH} in (select value_sha256 from {SUPPRESSION_TABLE})
        """)
    finally:
        con.unregister("_suppress_candidates")
    where = " or ".join(
        [
            f"cast({c} as varchar) in (select raw_value from _suppressed_values where column_name = '{c}')"
            for c in columns
        ]
        + (
            [
                (
                    "exists (select 1 from _suppressed_values s where s.column_name = '_payload' "
                    f"and contains({payload}, s.raw_value))"
                )
            ]
            if payload
            else []
        )
    )
    return con.execute(f"delete from {relation} where {where}").fetchone()[0]


def clear_suppressed_referrals(con: duckdb.DuckDBPyConnection, relation: str, rules: IdentityRules) -> int:
    """Ingestion hook: null the referral codes of erased accounts (REF-<account id>) that the (temp) `relation`'s
    rows of other people carry, as `forget` cleared them in the warehouse (clear_referral_codes): a re-delivered
    order lands again, its referrer's code does not, in raw nor, as its delivered payload (`_delivered_row`), in
    quarantine. Returns the rows changed."""
    delivered = {row[0] for row in con.execute(f"describe select * from {relation}").fetchall()}
    if "referral_code" not in delivered or not _suppressing(con):
        return 0
    # Codes match whatever their case (as forget clears them): the account id as written, upper- and lower-cased.
    codes = con.execute(
        "select distinct code, 'webshop_customer_id' as id_type, unnest([account, upper(account), lower(account)]) "
        "as raw_value from (select referral_code as code, "
        f"substr(trim(referral_code), {len(REFERRAL_CODE_PREFIX) + 1}) as account "
        f"from {relation} where starts_with(upper(trim(referral_code)), ?))",
        [REFERRAL_CODE_PREFIX],
    ).pl()
    if not codes.height:
        return 0
    payload = (
        ", _delivered_row = struct_update(_delivered_row, referral_code := null)"
        if "_delivered_row" in delivered
        else ""
    )
    con.register("_referral_candidates", normalise_values(codes, rules).filter(pl.col("status") == "ok").to_arrow())
    try:
        return con.execute(f"""
            update {relation} set referral_code = null{payload}
            where referral_code in (
                select code from _referral_candidates where {_HASH} in (select value_sha256 from {SUPPRESSION_TABLE})
            )
        """).fetchone()[0]
    finally:
        con.unregister("_referral_candidates")
