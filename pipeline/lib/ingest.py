"""Landing raw source rows in the warehouse, one window of partition days at a time, with quarantine.

Every source is first staged as a DuckDB relation of the rows it delivered. `land()` then, set-wise:
1. refuses the batch if a required contract column is missing (schema drift), naming source and column;
2. types the contract columns by their kind in the source registry (`pipeline.lib.sources.registry`) and keeps
   extra columns as delivered;
3. tags each row with every rule it breaks (the registry's rules, plus `future date` for a timestamp later than
   the run's as-of plus a tolerance, plus any problem the staging found, e.g. a partial last line);
4. drops exact re-deliveries (counted) and resolves conflicting versions of one key: the latest event wins, the
   others are quarantined as `conflicting duplicate`; in a table without versions this holds across days too (the
   later event, then the later delivery day, wins; a losing row already in raw moves to quarantine);
5. in one transaction replaces the window's rows in `raw.<table>` (valid rows) and `quarantine.<table>` (the
   others, with reason and the delivered payload as JSON). A valid row equal to one the window already holds stays
   as it landed, with its first load time: models downstream take what landed since they last ran, and a nightly
   pull re-reads a week of lookback that has mostly not changed.
Every delivered row ends in raw, in quarantine, or in a counted drop (duplicate, suppressed after erasure, or
outside the window: a row dated on a day this run does not cover is that day's run's business).
No value from a source becomes SQL text: identifiers are validated and quoted, values and file names bound as
parameters, and files are read with declared columns.
"""

from __future__ import annotations

import codecs
import csv
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

import duckdb

from pipeline.lib.erasure import clear_suppressed_referrals, drop_suppressed
from pipeline.lib.identity import IdentityRules
from pipeline.lib.sources.registry import TABLES, Column, RawTable
from pipeline.lib.sources.registry import table as registry_table
from pipeline.lib.warehouse import (
    ensure_table,
    literal_list,
    quote_identifier,
    quote_literal,
    table_exists,
    transaction,
)

# A column or field name a source may use: letters, digits, space, underscore, dash, dot; not starting with `_`
# (the pipeline's own columns). Anything else (quotes, braces, semicolons) is refused before it gets near SQL.
SAFE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_ .\-]{0,62}")
FUTURE_DATE = "future date"
CONFLICTING_DUPLICATE = "conflicting duplicate"


class SourceSchemaError(ValueError):
    """A delivery lacks a column the pipeline cannot do without, or names a column unsafely."""


def check_names(names: list[str], where: str) -> None:
    """Refuse unsafe or clashing column names (DuckDB names are case-insensitive)."""
    seen: dict[str, str] = {}
    for name in names:
        if not SAFE_NAME.fullmatch(name):
            shown = name if len(name) <= 80 else name[:77] + "..."
            raise SourceSchemaError(
                f"{where}: column name {shown!r} is not allowed (letters, digits, space, _ - . "
                "only, starting with a letter); rename it in the source or its column mapping"
            )
        if name.lower() in seen:
            raise SourceSchemaError(f"{where}: columns {seen[name.lower()]!r} and {name!r} differ only in case")
        seen[name.lower()] = name


# ---------------------------------------------------------------------------------------------------------------------
# The contract of each raw table, derived from the source registry.


@dataclass(frozen=True)
class Limits:
    """Shop-specific bounds of the contract (config: `calendar.currency`, `ingest:`)."""

    currency: str | None = None  # orders in another currency are quarantined
    max_amount: float = 1e12  # money above this is a typo or a test value, not a sale: quarantined
    future_tolerance: timedelta = timedelta(hours=6)  # timestamps this far past the run's as-of are still accepted


_TEXT = "nullif(trim(cast({c} as varchar)), '')"
_NUMBER = "(case when isfinite(try_cast({c} as double)) then try_cast({c} as double) end)"
TYPING = {
    "id": _TEXT,
    "text": _TEXT,
    "free_text": "cast({c} as varchar)",
    "code": f"lower({_TEXT})",
    "currency": f"upper({_TEXT})",
    # Offsets are honoured; naive timestamps are in the session time zone (the shop's); stored as shop-local time.
    "timestamp": "try_cast({c} as timestamptz)::timestamp",
    "number": _NUMBER,
    "money": _NUMBER,
    "integer": f"(case when {_NUMBER} = trunc({_NUMBER}) then try_cast({_NUMBER} as bigint) end)",
    "boolean": "try_cast({c} as boolean)",
    "list": "{c}",
}


# Delivered types whose every non-NULL value has a non-empty text form: for them "sent a value" is "not NULL", which
# spares formatting each number or timestamp as text to look at it.
_NEVER_BLANK = re.compile(
    r"(U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|FLOAT|DOUBLE|DECIMAL.*|DATE|TIME.*|TIMESTAMP.*|BOOLEAN|INTERVAL|UUID)"
)


def _sent(column: str, delivered_type: str) -> str:
    """SQL: the source sent a non-empty value for the column (`_orig` is the delivered row)."""
    if _NEVER_BLANK.fullmatch(delivered_type):
        return f"_orig.{column} is not null"
    return f"nullif(trim(cast(_orig.{column} as varchar)), '') is not null"


def _delivered(column: str) -> str:
    """The source sent a non-empty value for the column: `land` works it out once per row and column (`_sent`)."""
    return f"_sent.{column}"


def _column_rules(col: Column, limits: Limits) -> list[tuple[str, str]]:
    c = quote_identifier(col.name)
    rules = []
    if col.not_null:
        rules.append((f"missing {col.name}", f"{c} is null and not ({_delivered(c)})"))
    if col.kind == "timestamp" or col.kind == "boolean":
        rules.append((f"unparseable {col.name}", f"{c} is null and {_delivered(c)}"))
    if col.kind in ("number", "money", "integer"):
        numeric = f"isfinite(try_cast(_orig.{c} as double))"
        # A number or money value is typed exactly when it is a finite number: the typed value says it.
        parsed = numeric if col.kind == "integer" else f"{c} is not null"
        rules.append((f"non-numeric {col.name}", f"{_delivered(c)} and not coalesce({parsed}, false)"))
        if col.kind == "integer":
            rules.append((f"non-integer {col.name}", f"{c} is null and {numeric}"))
    if col.accepted:
        rules.append((f"unknown {col.name}", f"{c} is not null and {c} not in ({literal_list(col.accepted)})"))
    minimum = 0.0 if col.kind == "money" and col.minimum is None else col.minimum
    maximum = limits.max_amount if col.kind == "money" and col.maximum is None else col.maximum
    if minimum is not None:
        reason = f"negative {col.name}" if minimum == 0 else f"{col.name} below {minimum:g}"
        rules.append((reason, f"{c} < {float(minimum)!r}"))
    if maximum is not None:
        rules.append((f"{col.name} above {maximum:g}", f"{c} > {float(maximum)!r}"))
    if col.kind == "currency" and limits.currency:
        if not re.fullmatch(r"[A-Z]{3}", limits.currency):
            raise ValueError(f"not an ISO 4217 currency code: {limits.currency!r}")
        rules.append((f"{col.name} is not {limits.currency}", f"{c} <> {quote_literal(limits.currency)}"))
    return rules


@dataclass(frozen=True)
class TableSpec:
    """How one raw table is typed and validated: the registry's declaration plus the shop's limits."""

    table: RawTable
    limits: Limits = Limits()

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def required(self) -> tuple[str, ...]:
        return self.table.required

    @property
    def columns(self) -> dict[str, str]:
        """Contract column -> SQL typing it from the delivered value (`{c}`)."""
        return {col.name: TYPING[col.kind] for col in self.table.columns}

    @property
    def rules(self) -> tuple[tuple[str, str], ...]:
        """(reason, SQL condition over typed columns and `_orig.<column>` for the delivered value)."""
        rules = [rule for col in self.table.columns for rule in _column_rules(col, self.limits)]
        for bound in self.table.ranges:
            c = quote_identifier(bound.column)
            condition = (
                f"{quote_identifier(bound.when_column)} = {quote_literal(bound.when_value)} "
                f"and {c} not between {float(bound.minimum)!r} and {float(bound.maximum)!r}"
            )
            rules.append((bound.reason, condition))
        return tuple(rules)


def raw_suite(spec: TableSpec) -> dict:
    """The data-quality suite of `raw.<table>` (GX expectation JSON), derived from the same contract as landing.

    Critical expectations restate the row rules that landing enforces (a failure means a bad row got through);
    table-level rates and the registry's `warnings` are warnings."""

    def expectation(kind: str, severity: str = "critical", **kwargs) -> dict:
        return {"type": f"expect_{kind}", "kwargs": kwargs, "meta": {"severity": severity}}

    table = spec.table
    bookkeeping = ("_partition_date", "_loaded_at", "_source")
    suite = [
        expectation("table_columns_to_match_set", column_set=[*table.column_names, *bookkeeping], exact_match=False),
        expectation("table_row_count_to_be_between", "warning", min_value=1, max_value=50_000_000),
        *(
            expectation("column_values_to_not_be_null", column=c)
            for c in [*(col.name for col in table.columns if col.not_null), *bookkeeping]
        ),
        expectation(
            "compound_columns_to_be_unique",
            "warning",
            column_list=[*table.key, table.event_column or "_partition_date"],
        ),
    ]
    for col in table.columns:
        if col.accepted:
            suite.append(expectation("column_values_to_be_in_set", column=col.name, value_set=list(col.accepted)))
        if col.kind == "currency" and spec.limits.currency:
            suite.append(expectation("column_values_to_be_in_set", column=col.name, value_set=[spec.limits.currency]))
        minimum = 0.0 if col.kind == "money" and col.minimum is None else col.minimum
        maximum = spec.limits.max_amount if col.kind == "money" and col.maximum is None else col.maximum
        if minimum is not None or maximum is not None:
            bounds = {k: float(v) for k, v in (("min_value", minimum), ("max_value", maximum)) if v is not None}
            suite.append(expectation("column_values_to_be_between", column=col.name, **bounds))
    for bound in table.ranges:
        condition = {
            "type": "comparison",
            "column": {"name": bound.when_column},
            "operator": "==",
            "parameter": bound.when_value,
        }
        suite.append(
            expectation(
                "column_values_to_be_between",
                column=bound.column,
                row_condition=condition,
                min_value=float(bound.minimum),
                max_value=float(bound.maximum),
            )
        )
    suite += [expectation(kind.removeprefix("expect_"), "warning", **kwargs) for kind, kwargs in table.warnings]
    return {"name": f"raw_{table.name}", "expectations": suite, "meta": {"table": f"raw.{table.name}"}}


def spec(name: str, limits: Limits = Limits()) -> TableSpec:
    return TableSpec(registry_table(name), limits)


# Tables whose rows other tables' rows follow (`RawTable.parent`).
_PARENTS = frozenset(t.parent for t in TABLES.values() if t.parent)

WEBSHOP_CUSTOMERS = spec("webshop_customers")
WEBSHOP_ORDERS = spec("webshop_orders")
WEBSHOP_ORDER_ITEMS = spec("webshop_order_items")
HELPDESK_TICKETS = spec("helpdesk_tickets")
SURVEY_RESPONSES = spec("survey_responses")


@dataclass
class LoadResult:
    table: str
    window: tuple[date, date]
    loaded: int = 0
    quarantined: int = 0
    duplicates_dropped: int = 0  # exact re-deliveries of a row in the same batch
    conflicts: int = 0  # versions of one key with different content: all but the latest quarantined
    conflicts_with_other_days: int = 0  # keys landed on other days with other content: the loser quarantined
    outside_window: int = 0  # rows dated on days this run does not cover (landed by those days' runs)
    unchanged: int = 0  # of `loaded`: rows equal to rows already landed, kept as they landed (`_match_unchanged`)
    suppressed: int = 0  # rows of erased persons dropped before landing (pipeline.lib.erasure)
    referrals_cleared: int = 0  # other people's rows landed without an erased account's referral code
    reasons: dict[str, int] = field(default_factory=dict)

    def as_metadata(self) -> dict:
        return {
            f"{self.table}.rows_loaded": self.loaded,
            f"{self.table}.rows_unchanged": self.unchanged,
            f"{self.table}.rows_quarantined": self.quarantined,
            f"{self.table}.duplicates_dropped": self.duplicates_dropped,
            f"{self.table}.conflicting_duplicates": self.conflicts,
            f"{self.table}.conflicts_with_other_days": self.conflicts_with_other_days,
            f"{self.table}.rows_outside_window": self.outside_window,
            f"{self.table}.rows_suppressed": self.suppressed,
            f"{self.table}.referral_codes_cleared": self.referrals_cleared,
            **{f"{self.table}.quarantine[{reason}]": n for reason, n in sorted(self.reasons.items())},
        }


def prepare_session(con: duckdb.DuckDBPyConnection, timezone: str) -> None:
    """Naive timestamps in sources mean the shop's time zone (calendar.timezone), and so do cut dates."""
    if not re.fullmatch(r"[A-Za-z0-9_+\-/]+", timezone):
        raise ValueError(f"not a time zone name: {timezone!r}")
    con.execute(f"set TimeZone = '{timezone}'")
    con.execute("create schema if not exists raw")
    con.execute("create schema if not exists quarantine")


# The quarantine payload of a typed row: the row as delivered (`_delivered_row`), as JSON.
PAYLOAD = "to_json(_delivered_row)::varchar"


def column_types(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    """Column name -> DuckDB type name, in the relation's order."""
    return dict((row[0], row[1]) for row in con.execute(f"describe select * from {relation}").fetchall())


def columns_of(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return list(column_types(con, relation))


def as_of(window: tuple[date, date]) -> datetime:
    """The run's as-of: the end of its last partition day, shop-local (how timestamps are stored)."""
    return datetime.combine(window[1], time())


def land(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    staged: str,
    window: tuple[date, date],
    source_label: str,
    identity_rules: IdentityRules,
    run_as_of: datetime | None = None,
    frontier: bool = False,
) -> LoadResult:
    """Type, validate, de-duplicate and land the staged rows of one window (see module docstring).

    `staged` names a relation holding the delivered columns, `_partition_date` (may be NULL: then the event date
    decides) and optionally `_problem` (a reason the staging already found, e.g. malformed JSON).
    `run_as_of` (default: the end of the window) plus the tolerance bounds every timestamp: a row of the window
    with a later one is quarantined as `future date`. With `frontier` (a run at the newest data, e.g. nightly) rows
    dated after the window are judged too; otherwise they are counted as outside the window (a backfill of old
    days is not the judge of what happened since). `identity_rules` normalise identifiers to match them against
    the suppression list of erased persons.
    """
    start, end = window
    delivered_types = column_types(con, staged)
    delivered = list(delivered_types)
    source_columns = [c for c in delivered if not c.startswith("_")]
    missing_required = [c for c in spec.required if c not in delivered]
    if missing_required:
        raise SourceSchemaError(
            f"{source_label}: {spec.name} lacks required column(s) {missing_required}; delivered columns are "
            f"{sorted(source_columns)}. Fix the source or its column mapping in the config (sources:)."
        )
    check_names([c for c in source_columns if c not in spec.columns], f"{source_label}: {spec.name}")
    q = quote_identifier
    absent = "".join(f", null::varchar as {q(c)}" for c in spec.columns if c not in delivered)
    typed = ", ".join(f"{expr.format(c=f'_orig.{q(col)}')} as {q(col)}" for col, expr in spec.columns.items())
    extras = "".join(f"_orig.{q(c)}, " for c in source_columns if c not in spec.columns)
    problem = "_orig._problem" if "_problem" in delivered else "null::varchar"
    # The export a row came from (`_file`) helps staging only: a payload must not change when exports move.
    content_columns = [c for c in delivered if c not in ("_partition_date", "_file")]

    def content(row: str) -> str:
        """The delivered row's content: what makes two deliveries the same row, wherever and whenever delivered."""
        return "struct_pack(" + ", ".join(f"{q(c)} := {row}.{q(c)}" for c in content_columns) + ")"

    event_date = f"cast({q(spec.table.event_column)} as date)" if spec.table.event_column else "null::date"
    future_after = (run_as_of or as_of(window)) + spec.limits.future_tolerance
    in_window = "_partition_date >= ? and _partition_date < ?"
    future_scope = "true" if frontier else f"({in_window})"
    timestamps = [q(c.name) for c in spec.table.columns if c.kind == "timestamp"]
    future = "(" + (" or ".join(f"{c} > ?::timestamp" for c in timestamps) or "false") + f") and {future_scope}"
    rules = [*spec.rules, (FUTURE_DATE, future)]
    reasons = ", ".join(f"case when coalesce({cond}, false) then {quote_literal(reason)} end" for reason, cond in rules)
    # Whether a value was sent, worked out once for each column a rule asks it of.
    sent = ", ".join(
        f"{q(col)} := {_sent(q(col), delivered_types.get(col, 'VARCHAR'))}"
        for col in spec.columns
        if _delivered(q(col)) in reasons
    )
    con.execute(
        f"""
        create or replace temp table _typed_all as
        with typed as (
            select {typed}, {extras}{problem} as _problem, _orig._partition_date as _delivered_date, _orig,
                   {f"struct_pack({sent})" if sent else "null"} as _sent, hash({content("_orig")}) as _content_hash
            from (select *{" exclude (_file)" if "_file" in delivered else ""}{absent} from {staged}) as _orig
        ),
        dated as (
            select * exclude (_delivered_date), coalesce(_delivered_date, {event_date}) as _partition_date from typed
        )
        select * exclude (_problem, _orig, _sent), _orig as _delivered_row,
               coalesce(_problem, concat_ws('; ', {reasons})) as _reason
        from dated
    """,
        [*([future_after] * len(timestamps)), *([] if frontier else [start, end])],
    )
    result = LoadResult(table=spec.name, window=window)
    # Every typed version delivered, in the window or not, of a table whose rows others follow (order lines follow
    # their order: `stage_order_items`).
    if spec.name in _PARENTS:
        con.execute(
            f"create or replace temp table _delivered_versions as select {', '.join(map(q, spec.table.key))}, "
            "_partition_date, _reason from _typed_all"
        )
    # A row dated outside the window belongs to another day's run (a source may deliver more than asked), unless
    # it is in the future: that goes to quarantine whatever its day.
    result.outside_window = con.execute(
        "delete from _typed_all where _partition_date is not null and (_partition_date < ? or _partition_date >= ?) "
        "and not contains(_reason, ?)",
        [start, end, FUTURE_DATE],
    ).fetchone()[0]
    # Rows without a date fit no window: quarantined (and kept there until re-delivered, see below).
    con.execute(
        "update _typed_all set _reason = 'no event date to place the row in a partition' "
        "where _partition_date is null and _reason = ''"
    )
    # Right to erasure (UU PDP / GDPR): rows of persons on privacy.suppression_list never land again, valid or not;
    # they are counted as `suppressed`, not dropped silently.
    result.suppressed = drop_suppressed(con, spec.name, "_typed_all", identity_rules, PAYLOAD)
    result.referrals_cleared = clear_suppressed_referrals(con, "_typed_all", identity_rules)
    # Exact re-deliveries (the same content, e.g. one response in two exports) are kept once, the latest day's
    # (rows of equal content and day are equal in every column). The hash only narrows the rows compared exactly.
    result.duplicates_dropped = con.execute(f"""
        delete from _typed_all where rowid in (
            select rowid from _typed_all
            where _content_hash in (select _content_hash from _typed_all group by 1 having count(*) > 1)
            qualify row_number() over (partition by {content("_delivered_row")}
                                       order by _partition_date desc nulls last) > 1)
    """).fetchone()[0]
    _resolve_conflicts(con, spec.table, content("_delivered_row"))
    # Renamed, not copied: the batch can be the whole history of order lines.
    con.execute("drop table if exists _typed")
    con.execute("alter table _typed_all drop column _content_hash")
    con.execute("alter table _typed_all rename to _typed")
    result.conflicts = con.execute("select count(*) from _typed where _reason = ?", [CONFLICTING_DUPLICATE]).fetchone()[
        0
    ]
    raw_table, q_table = f"raw.{spec.name}", f"quarantine.{spec.name}"
    # One row per key is the contract of a table without versions: a key landed on another day with other content.
    other_days = not spec.table.versioned and table_exists(con, raw_table)
    if other_days:
        result.conflicts_with_other_days = _resolve_conflicts_with_other_days(con, spec, raw_table, window)

    with transaction(con):
        ensure_table(
            con,
            raw_table,
            "select * exclude (_reason, _delivered_row), "
            "current_timestamp::timestamp as _loaded_at, ''::varchar as _source from _typed",
        )
        ensure_table(
            con,
            q_table,
            f"select {PAYLOAD} as _payload, _reason, _partition_date, "
            "current_timestamp::timestamp as _loaded_at, ''::varchar as _source from _typed",
        )
        window_rows = "(_partition_date >= ? and _partition_date < ?)"
        result.unchanged = _match_unchanged(con, spec, raw_table, window, source_label)
        con.execute(
            f"delete from {raw_table} where {window_rows} and rowid not in (select raw_row from _unchanged)",
            [start, end],
        )
        # Quarantine keeps rows this run does not re-judge: those of other days and those without a date that were
        # not delivered again. A re-delivered row replaces its earlier verdict instead of repeating it.
        con.execute(
            f"delete from {q_table} where {window_rows} or _payload in "
            f"(select {PAYLOAD} from _typed where _reason <> '')",
            [start, end],
        )
        if other_days:
            _quarantine_superseded(con, spec, raw_table, q_table)
        landed = "from _typed where _reason = '' and rowid not in (select typed_row from _unchanged)"
        result.loaded = (
            result.unchanged
            + con.execute(
                f"""
            insert into {raw_table} by name
            select * exclude (_reason, _delivered_row), current_timestamp::timestamp as _loaded_at, ? as _source
            {landed}
        """,
                [source_label],
            ).fetchone()[0]
        )
        if spec.name in _PARENTS:  # the versions whose lines may stay as they landed (`_match_unchanged`)
            key = ", ".join(map(q, spec.table.key))
            con.execute(
                f"create or replace temp table _kept_versions as select {key}, _partition_date from _typed "
                "where rowid in (select typed_row from _unchanged)"
            )
        result.quarantined = con.execute(
            f"""
            insert into {q_table} by name
            select {PAYLOAD} as _payload, _reason, _partition_date, current_timestamp::timestamp as _loaded_at,
                   ? as _source
            from _typed where _reason <> ''
        """,
            [source_label],
        ).fetchone()[0]
    result.reasons = dict(
        con.execute("select _reason, count(*) from _typed where _reason <> '' group by 1 order by 1").fetchall()
    )
    con.execute("drop table _typed")  # the batch can be the whole history: free it before the next table lands
    con.execute("drop table _unchanged")
    return result


def _match_unchanged(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, raw_table: str, window: tuple[date, date], source_label: str
) -> int:
    """Pair the raw rows of the window with the valid delivered rows (`_typed`) they equal in every column, NULL-safe,
    and in the source that landed them: `_unchanged(raw_row, typed_row)`, one to one (a row equal to two is landed
    again). Such a raw row stays as it landed. Returns the number of pairs.

    Rows that follow a parent (order lines) stay only as the whole set of one parent version (key and day) whose
    parent row stayed too (`_kept_versions`): a version's lines are landed together, and staging takes the lines of
    its latest load.
    A parent version whose lines all went is landed again (its load time set to now): staging drops an order's lines
    when the order lands, and no line lands to tell it."""
    q = quote_identifier
    in_window = "_partition_date >= ? and _partition_date < ?"
    if not con.execute(f"select exists (select 1 from {raw_table} where {in_window})", list(window)).fetchone()[0]:
        con.execute("create or replace temp table _unchanged (raw_row bigint, typed_row bigint)")
        return 0  # a first load: nothing to keep
    typed_types, raw_types = column_types(con, "_typed"), column_types(con, raw_table)

    def delivered(column: str) -> str:
        value = f"t.{q(column)}"
        return value if typed_types[column] == raw_types[column] else f"cast({value} as {raw_types[column]})"

    joined = [*spec.table.key, "_partition_date"]
    same = [f"r.{q(c)} = {delivered(c)}" for c in joined] + [
        f"r.{q(c)} is not distinct from {delivered(c)}" if c in typed_types else f"r.{q(c)} is null"
        for c in raw_types
        if c not in (*joined, "_loaded_at", "_source")
    ]
    pairs = f"""
        select r.rowid as raw_row, t.rowid as typed_row, {", ".join(f"t.{q(c)}" for c in joined)}
        from {raw_table} r join _typed t on {" and ".join(same)}
        where r._partition_date >= ? and r._partition_date < ? and t._reason = '' and r._source = ?
        qualify count(*) over (partition by r.rowid) = 1 and count(*) over (partition by t.rowid) = 1
    """
    params: list = [*window, source_label]
    if spec.table.parent is None:
        con.execute(f"create or replace temp table _unchanged as select raw_row, typed_row from ({pairs})", params)
        return con.execute("select count(*) from _unchanged").fetchone()[0]
    group = [*registry_table(spec.table.parent).key, "_partition_date"]
    cols = ", ".join(map(q, group))

    def on(left: str, right: str) -> str:
        return " and ".join(f"{left}.{q(c)} = {right}.{q(c)}" for c in group)

    con.execute(
        f"""
        create or replace temp table _unchanged as
        with pairs as ({pairs}),
        raw_sets as (select {cols}, count(*) as n from {raw_table} where {in_window} group by all),
        delivered_sets as (select {cols}, count(*) as n from _typed where _reason = '' group by all),
        paired_sets as (select {cols}, count(*) as n from pairs group by all),
        unchanged_sets as (
            select r.* exclude (n) from raw_sets r
            join delivered_sets d on {on("r", "d")} join paired_sets p on {on("r", "p")}
            where r.n = d.n and r.n = p.n and exists (select 1 from _kept_versions v where {on("r", "v")})
        )
        select raw_row, typed_row from pairs where exists (select 1 from unchanged_sets u where {on("pairs", "u")})
    """,
        [*params, *window],
    )
    con.execute(
        f"""
        update raw.{q(spec.table.parent)} as parent set _loaded_at = current_timestamp::timestamp
        from (
            select {cols} from {raw_table} where {in_window} except select {cols} from _typed where _reason = ''
        ) as emptied
        where {on("parent", "emptied")}
    """,
        list(window),
    )
    return con.execute("select count(*) from _unchanged").fetchone()[0]


def _resolve_conflicts(con: duckdb.DuckDBPyConnection, table: RawTable, content: str) -> None:
    """Valid rows sharing a key (and version) but not content: the latest event wins, deterministically (then the
    later delivery day, then the content's digest; digests only for keys delivered more than once)."""
    version = ", ".join(
        map(quote_identifier, [*table.key, *([table.event_column] if table.versioned and table.event_column else [])])
    )
    latest = f"{quote_identifier(table.event_column)} desc nulls last, " if table.event_column else ""
    # The versions are counted over the key columns only; just the rows of keys delivered more than once are read
    # whole, to order them.
    con.execute(
        f"""
        update _typed_all set _reason = ? where rowid in (
            select rowid from _typed_all
            where rowid in (
                select rowid from (
                    select rowid, count(*) over (partition by {version}) as _versions from _typed_all where _reason = ''
                )
                where _versions > 1
            )
            qualify row_number() over (partition by {version}
                                       order by {latest}_partition_date desc nulls last, md5(to_json({content}))) > 1)
    """,
        [CONFLICTING_DUPLICATE],
    )


def _resolve_conflicts_with_other_days(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, raw_table: str, window: tuple[date, date]
) -> int:
    """Valid delivered rows whose key landed on another day with other content: the later event wins, then the later
    delivery day; a losing delivered row is marked `conflicting duplicate` here, a losing raw row is listed in
    `_other_day_conflicts` for `_quarantine_superseded`. Returns the number of conflicts resolved."""
    q = quote_identifier
    key = spec.table.key
    event = spec.table.event_column

    def version(alias: str) -> str:
        latest = f"coalesce({alias}.{q(event)}, '-infinity'::timestamp)" if event else "null"
        return f"({latest}, {alias}._partition_date)"

    con.execute(
        f"""
        create or replace temp table _other_day_conflicts as
        select t.rowid as _delivered_row, {", ".join(f"r.{q(c)}" for c in key)},
               r._partition_date as _raw_partition_date, {version("t")} > {version("r")} as _delivered_wins
        from _typed t join {raw_table} r on {" and ".join(f"t.{q(c)} = r.{q(c)}" for c in key)}
        where t._reason = '' and not (r._partition_date >= ? and r._partition_date < ?)
          and ({" or ".join(f"t.{q(c)} is distinct from r.{q(c)}" for c in spec.columns)})
    """,
        list(window),
    )
    con.execute(
        "update _typed set _reason = ? where rowid in "
        "(select _delivered_row from _other_day_conflicts where not _delivered_wins)",
        [CONFLICTING_DUPLICATE],
    )
    return con.execute("select count(*) from _other_day_conflicts").fetchone()[0]


def _quarantine_superseded(con: duckdb.DuckDBPyConnection, spec: TableSpec, raw_table: str, q_table: str) -> None:
    """Move the raw rows of other days that lost to a delivered row (`_other_day_conflicts`) into quarantine as
    `conflicting duplicate`, their columns as the payload. Runs inside the landing transaction."""
    q = quote_identifier
    payload = ", ".join(f"{q(c)} := r.{q(c)}" for c in columns_of(con, raw_table) if not c.startswith("_"))

    def superseded(row: str) -> str:
        return " and ".join(
            [f"{row}.{q(c)} = s.{q(c)}" for c in spec.table.key]
            + [f"{row}._partition_date = s._raw_partition_date", "s._delivered_wins"]
        )

    con.execute(
        f"""
        insert into {q_table} by name
        select to_json(struct_pack({payload}))::varchar as _payload, ? as _reason, r._partition_date,
               current_timestamp::timestamp as _loaded_at, r._source
        from {raw_table} r
        where exists (select 1 from _other_day_conflicts s where {superseded("r")})
    """,
        [CONFLICTING_DUPLICATE],
    )
    con.execute(f"delete from {raw_table} using _other_day_conflicts s where {superseded(raw_table)}")


# ---------------------------------------------------------------------------------------------------------------------
# Staging export files (CSV, JSONL, Parquet) safely: declared columns, any common encoding, partial last lines.

_DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})\.[A-Za-z]+$")
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def file_date(path: str) -> date | None:
    found = _DATE_IN_NAME.search(path)
    try:
        return date.fromisoformat(found.group(1)) if found else None
    except ValueError:
        return None


def files_in_window(paths: list[str], window: tuple[date, date]) -> list[str]:
    """Export files whose name carries a date inside the window (files without a date are always included)."""
    start, end = window
    return [p for p in sorted(paths) if (d := file_date(p)) is None or start <= d < end]


@dataclass
class ExportFile:
    """One export file as it will be read: `read_path` is the file itself or a clean UTF-8 copy of it."""

    path: str  # as listed (messages, file dates)
    read_path: str
    partial_line: str | None = None  # text after the last newline: the file is still being written


@dataclass
class StagedFiles:
    relation: str
    files: list[ExportFile]
    empty_files: list[str]

    @property
    def partial_files(self) -> list[str]:
        return [f.path for f in self.files if f.partial_line is not None]


def _encoding(head: bytes) -> tuple[str, int]:
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name, len(bom)
    return "utf-8", 0


def prepare_file(path: str, folder: Path) -> ExportFile | None:
    """None for an empty file; else the file, or a UTF-8 copy in `folder` without BOM and cut after its last
    complete line when it needs one (the export itself is never changed). Remote files are read as they are."""
    local = Path(path)
    if not local.is_file():
        return ExportFile(path, path)
    if local.stat().st_size == 0:
        return None
    if local.suffix.lower() == ".parquet":  # binary, self-describing: read as it is
        return ExportFile(path, path)
    with open(local, "rb") as fh:
        encoding, bom = _encoding(fh.read(4))
        newline = "\n".encode(encoding)
        fh.seek(-min(len(newline), local.stat().st_size), 2)
        complete = fh.read() == newline
    if encoding == "utf-8" and not bom and complete:
        return ExportFile(path, path)
    copy = folder / f"{len(list(folder.iterdir()))}-{local.name}"
    with (
        open(local, encoding=encoding, errors="replace", newline="") as src,
        open(copy, "w", encoding="utf-8", newline="") as out,
    ):
        if bom:
            src.read(1)  # the byte order mark, decoded to U+FEFF
        shutil.copyfileobj(src, out)
    partial = None if complete else _cut_after_last_newline(copy)
    if copy.stat().st_size == 0 and not (partial or "").strip():
        return None
    return ExportFile(path, str(copy), partial)


def _cut_after_last_newline(path: Path) -> str:
    """Truncate the UTF-8 file after its last newline; return the cut-off text (the incomplete last line)."""
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        position, chunk = size, 65536
        while position > 0:
            step = min(chunk, position)
            fh.seek(position - step)
            found = fh.read(step).rfind(b"\n")
            if found >= 0:
                cut = position - step + found + 1
                break
            position -= step
        else:
            cut = 0
        fh.seek(cut)
        tail = fh.read().decode("utf-8", errors="replace")
        fh.truncate(cut)
    return tail


@contextmanager
def export_files(paths: list[str]) -> Iterator[tuple[list[ExportFile], list[str]]]:
    """(files to read, empty files skipped); re-encoded copies live in a temporary folder removed on exit."""
    with tempfile.TemporaryDirectory(prefix="cdp-exports-") as folder:
        files, empty = [], []
        for path in paths:
            prepared = prepare_file(path, Path(folder))
            if prepared is None:
                empty.append(path)
            else:
                files.append(prepared)
        yield files, empty


def _register_files(con: duckdb.DuckDBPyConnection, files: list[ExportFile]) -> None:
    """`_export_files(read_path, path, file_date, partial_line)`: what the SQL reads, mapped back to the export."""
    con.execute(
        "create or replace temp table _export_files "
        "(read_path varchar, path varchar, file_date date, partial_line varchar)"
    )
    if files:
        con.executemany(
            "insert into _export_files values (?, ?, ?, ?)",
            [(f.read_path, f.path, file_date(f.path), f.partial_line) for f in files],
        )


def _partial_lines_sql(files: list[ExportFile], columns: tuple[str, ...]) -> str | None:
    """Rows for the cut-off last lines (quarantined as `partial last line`), or None when no file had one."""
    if not any(f.partial_line for f in files):
        return None
    nulls = ", ".join(f"null::varchar as {quote_identifier(c)}" for c in columns)
    return (
        f"select {nulls}, partial_line as _raw_line, 'partial last line (file still being written?)' as _problem,"
        " file_date as _partition_date, path as _file from _export_files "
        "where partial_line is not null and trim(partial_line) <> ''"
    )


def stage_jsonl_lines(con: duckdb.DuckDBPyConnection, files: list[ExportFile], name: str) -> None:
    """Every non-empty complete line of the files as `_line` with `_problem` (malformed JSON) and the file's path
    and date (set-wise via read_text; file names are bound, never SQL text). The files must be registered."""
    if not files:
        con.execute(
            f"create or replace temp table {name} (_file varchar, _line varchar, _problem varchar, "
            "_partition_date date)"
        )
        return
    con.execute(
        f"""
        create or replace temp table {name} as
        with lines as (
            select f.path, f.file_date,
                   ltrim(rtrim(unnest(string_split(t.content, chr(10))), chr(13)), chr(65279)) as line
            from read_text(?) t join _export_files f on f.read_path = t.filename
        )
        select path as _file, line as _line,
               case when not json_valid(line) then 'malformed JSON'
                    when json_type(line) <> 'OBJECT' then 'not a JSON object' end as _problem,
               file_date as _partition_date
        from lines where trim(line) <> ''
    """,
        [[f.read_path for f in files]],
    )


def _json_fields(
    con: duckdb.DuckDBPyConnection, lines: str, contract: tuple[str, ...], required: tuple[str, ...], where: str
) -> list[str]:
    """Top-level field names of the valid lines beyond the contract (extras, kept); refuses a file lacking a
    required field on every line (renamed or dropped field) and unsafe names."""
    keys = con.execute(f"""
        select _file, list(distinct key) from (
            select _file, unnest(json_keys(_line)) as key from {lines} where _problem is null) group by 1
    """).fetchall()
    for path, names in keys:
        missing = [c for c in required if c not in names]
        if missing:
            raise SourceSchemaError(
                f"{where}: {path} has no field {missing[0]!r} on any line (required by the "
                f"contract; fields found: {sorted(names)[:20]})"
            )
    extras = sorted({k for _, names in keys for k in names} - set(contract))
    check_names(extras, where)
    return extras


def _json_select(lines: str, fields: dict[str, str], extras: list[str], more: str = "") -> tuple[str, list]:
    """SELECT extracting contract fields (name -> JSON path), extra fields and `more` from `_line`; the paths are one
    bound list, so each line is parsed once for all of them."""
    columns = [*fields, *extras]
    paths = [*fields.values(), *(f'$."{extra}"' for extra in extras)]
    values = ", ".join(f"_values[{i}] as {quote_identifier(column)}" for i, column in enumerate(columns, 1))
    return (
        f"select {values}, {more}case when _problem is not null then _line end as _raw_line, "
        f"_problem, _partition_date, _file from (select *, case when _problem is null "
        f"then json_extract_string(_line, ?::varchar[]) end as _values from {lines})"
    ), [paths]


_TICKET_FIELDS = {
    c: f"$.{c}"
    for c in (
        "id",
        "channel",
        "subject",
        "status",
        "priority",
        "order_ref",
        "created_at",
        "updated_at",
        "solved_at",
        "satisfaction",
    )
}
_REQUESTER_FIELDS = {f"requester_{c}": f"$.requester.{c}" for c in ("id", "email", "phone", "name")}


def stage_tickets_jsonl(con: duckdb.DuckDBPyConnection, files: list[ExportFile], where: str = "helpdesk") -> str:
    """Ticket JSON lines (files or API pages) as `_staged_tickets`: requester flattened, tags as a list."""
    _register_files(con, files)
    stage_jsonl_lines(con, files, "_ticket_lines")
    required = tuple(c for c in HELPDESK_TICKETS.required if c in _TICKET_FIELDS)
    extras = _json_fields(con, "_ticket_lines", (*_TICKET_FIELDS, "requester", "tags"), required, where)
    tags = "case when _problem is null then from_json(_line->'$.tags', '[\"VARCHAR\"]') end as tags, "
    select, params = _json_select("_ticket_lines", {**_TICKET_FIELDS, **_REQUESTER_FIELDS}, extras, tags)
    con.execute(f"create or replace temp table _staged_tickets as {select}", params)
    partial = _partial_lines_sql(files, (*_TICKET_FIELDS, *_REQUESTER_FIELDS, *extras))
    if partial:
        con.execute(f"insert into _staged_tickets by name {partial}")
    return "_staged_tickets"


def stage_nothing(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> str:
    """An empty delivery for `spec`: landing it gives a shop without that source an empty, typed raw table."""
    columns = ", ".join(f"null::varchar as {quote_identifier(column)}" for column in spec.columns)
    con.execute(
        f"create or replace temp view _staged_nothing as select {columns}, null::date as _partition_date limit 0"
    )
    return "_staged_nothing"


def stage_order_items(con: duckdb.DuckDBPyConnection, source_table: str) -> str:
    """Order lines travel with their order: each line takes the partition date of its order's landed version.

    Call right after landing the orders of the same pull (it reads that load's delivered versions). A line whose order
    is not in this delivery (the source has no such order) or was quarantined is quarantined too, never dropped."""
    con.execute("""
        create or replace temp table _typed_orders as
        select order_id, max(_partition_date) as _partition_date, bool_and(_reason <> '') as _quarantined
        from _delivered_versions group by 1
    """)
    con.execute(f"""
        create or replace temp view _staged_order_items as
        select i.*, o._partition_date,
               case when o.order_id is null then 'order missing'
                    when o._quarantined then 'order quarantined' end as _problem
        from {source_table} i
        left join _typed_orders o on cast(i.order_id as varchar) = o.order_id
    """)
    return "_staged_order_items"


def _csv_header(file: ExportFile) -> list[str]:
    with open(file.read_path, encoding="utf-8", errors="replace", newline="") as fh:
        return [name.strip() for name in next(csv.reader(fh), [])]


def stage_survey_files(con: duckdb.DuckDBPyConnection, files: list[ExportFile], where: str = "survey") -> str:
    """CSV, JSONL and Parquet exports unioned by column name, every value as delivered text, as `_staged_survey`.

    Every file is read with declared columns (its own header, validated; names bound as a parameter), so a header
    cannot change how the file is parsed. A file lacking a required column is refused, naming file and column."""
    contract = SURVEY_RESPONSES.table.column_names
    required = SURVEY_RESPONSES.required
    parts: list[tuple[str, list]] = []
    csv_files = [f for f in files if f.path.lower().endswith(".csv")]
    jsonl = [f for f in files if f.path.lower().endswith((".jsonl", ".json", ".ndjson"))]
    parquet = [f for f in files if f.path.lower().endswith(".parquet")]
    _register_files(con, files)
    # Files sharing a header are read in one statement; remote files (header unknown without a download) by name.
    by_header: dict[tuple[str, ...] | None, list[ExportFile]] = {}
    for file in csv_files:
        header = tuple(_csv_header(file)) if Path(file.read_path).is_file() else None
        if header is not None:
            check_names(list(header), f"{where}: {file.path}")
            missing = [c for c in required if c not in header]
            if missing:
                raise SourceSchemaError(
                    f"{where}: {file.path} has no column {missing[0]!r} "
                    f"(required by the contract; header: {list(header[:20])})"
                )
        by_header.setdefault(header, []).append(file)
    for n, (header, group) in enumerate(by_header.items()):
        layout = (
            "auto_detect = false, header = false, skip = 1, delim = ',', quote = '\"', escape = '\"', columns = ?"
            if header is not None
            else "header = true, union_by_name = true"
        )
        params = [[f.read_path for f in group], *([{c: "VARCHAR" for c in header}] if header is not None else [])]
        con.execute(
            f"""
            create or replace temp table _survey_csv_{n} as
            select t.* exclude (filename), null::varchar as _problem, f.file_date as _partition_date, f.path as _file
            from read_csv(?, all_varchar = true, filename = true, {layout}) t
            join _export_files f on f.read_path = t.filename
        """,
            params,
        )
        if header is None:
            names = [c for c in columns_of(con, f"_survey_csv_{n}") if not c.startswith("_")]
            check_names(names, f"{where}: {', '.join(f.path for f in group)[:300]}")
        parts.append((f"select * from _survey_csv_{n}", []))
    if jsonl:
        stage_jsonl_lines(con, jsonl, "_survey_lines")
        extras = _json_fields(con, "_survey_lines", contract, required, where)
        parts.append(_json_select("_survey_lines", {c: f"$.{c}" for c in contract}, extras))
    if parquet:
        read = [f.read_path for f in parquet]
        for path in read:
            names = [r[0] for r in con.execute("describe select * from read_parquet(?)", [path]).fetchall()]
            check_names(names, f"{where}: {path}")
            missing = [c for c in required if c not in names]
            if missing:
                raise SourceSchemaError(f"{where}: {path} has no column {missing[0]!r} (required by the contract)")
        con.execute(
            "create or replace temp table _survey_parquet as "
            "select * from read_parquet(?, union_by_name = true, filename = true)",
            [read],
        )
        cols = [c for c in columns_of(con, "_survey_parquet") if c != "filename"]
        casts = ", ".join(f"cast(p.{quote_identifier(c)} as varchar) as {quote_identifier(c)}" for c in cols)
        parquet_rows = (
            f"select {casts}, null::varchar as _problem, f.file_date as _partition_date, "
            "f.path as _file from _survey_parquet p join _export_files f on f.read_path = p.filename"
        )
        parts.append((parquet_rows, []))
    partial = _partial_lines_sql(files, contract)
    if partial:
        parts.append((partial, []))
    if not parts:
        nulls = ", ".join(f"null::varchar as {quote_identifier(c)}" for c in contract)
        nothing = f"select {nulls}, null::varchar as _problem, null::date as _partition_date, null::varchar as _file"
        parts.append((f"{nothing} limit 0", []))
    con.execute(
        "create or replace temp table _staged_survey as " + " union all by name ".join(f"({sql})" for sql, _ in parts),
        [p for _, params in parts for p in params],
    )
    return "_staged_survey"
