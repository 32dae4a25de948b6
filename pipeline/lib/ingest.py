"""Landing raw source rows in the warehouse, one partition window at a time, with quarantine.

Every source is first staged as a DuckDB relation of the rows delivered for a window of event dates. `land()` then
types the columns set-wise, tags each row with the reasons it is invalid, drops exact duplicates (counted), and in one
transaction replaces the window's rows in `raw.<table>` (valid rows) and `quarantine.<table>` (invalid rows, with the
reason and the original payload as JSON). Re-running a window therefore replaces it: no duplicates, nothing lost.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import duckdb

from pipeline.lib.warehouse import ensure_table, transaction

from pipeline.lib.erasure import drop_suppressed

ORDER_STATUSES = ("pending", "paid", "shipped", "completed", "cancelled", "refunded")
ORDER_CHANNELS = ("web", "app", "marketplace", "store")
CUSTOMER_TYPES = ("end_customer", "agent", "reseller")
TICKET_STATUSES = ("new", "open", "pending", "solved", "closed")
TICKET_CHANNELS = ("email", "whatsapp", "instagram", "facebook", "phone", "chat")


class SourceSchemaError(ValueError):
    """A source delivered rows without a column the pipeline cannot do without."""


@dataclass(frozen=True)
class TableSpec:
    """How one raw table is typed and validated.

    columns: contract column -> SQL expression typing it from the delivered text (`{c}` is the delivered column).
    required: columns whose absence from the source is a schema error (the batch is refused as a whole).
    rules: (reason, SQL condition over typed columns and `_orig.<column>` for the delivered value) marking a row invalid.
    event_column: typed timestamp whose date is the row's partition date when the delivery does not fix one.
An exact re-delivery of a row (the same payload) is a duplicate: kept once and counted.
    """

    name: str
    columns: dict[str, str]
    required: tuple[str, ...]
    rules: tuple[tuple[str, str], ...]
    event_column: str


def ts_sql(col: str = "{c}") -> str:
    # Offsets are honoured; naive timestamps are in the session time zone (the shop's); stored as the shop's local time.
    return f"try_cast({col} as timestamptz)::timestamp"


def _text(col: str = "{c}") -> str:
    return f"nullif(trim(cast({col} as varchar)), '')"


def _num(col: str = "{c}") -> str:
    return f"try_cast({col} as double)"


def _bad_value(column: str) -> str:
    """Delivered but not parseable (a NULL delivered stays a NULL, not an error)."""
    return f"_orig.{column} is not null and nullif(trim(cast(_orig.{column} as varchar)), '') is not null and {column} is null"


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


AMOUNTS = ("gross_amount", "discount_amount", "shipping_amount", "net_amount")

WEBSHOP_CUSTOMERS = TableSpec(
    name="webshop_customers",
    columns={
        "customer_id": _text(), "email": _text(), "phone": _text(), "first_name": _text(), "last_name": _text(),
        "city": _text(), "province": _text(), "customer_type": f"lower({_text()})",
        "marketing_opt_in": "try_cast({c} as boolean)", "created_at": ts_sql(), "updated_at": ts_sql(),
    },
    required=("customer_id", "updated_at"),
    rules=(
        ("missing customer_id", "customer_id is null"),
        ("unparseable updated_at", "updated_at is null"),
        ("unparseable created_at", _bad_value("created_at")),
        ("unknown customer_type", f"customer_type is not null and customer_type not in {_in(CUSTOMER_TYPES)}"),
    ),
    event_column="updated_at",
)

WEBSHOP_ORDERS = TableSpec(
    name="webshop_orders",
    columns={
        "order_id": _text(), "customer_id": _text(), "guest_email": _text(), "guest_phone": _text(),
        "ordered_at": ts_sql(), "status": f"lower({_text()})", "channel": f"lower({_text()})",
        "currency": f"upper({_text()})", **{a: _num() for a in AMOUNTS},
        "promo_code": _text(), "referral_code": _text(), "updated_at": ts_sql(),
    },
    required=("order_id", "ordered_at", "status", "net_amount", "updated_at"),
    rules=(
        ("missing order_id", "order_id is null"),
        ("unparseable ordered_at", "ordered_at is null"),
        ("unparseable updated_at", "updated_at is null"),
        ("unknown status", f"status is null or status not in {_in(ORDER_STATUSES)}"),
        ("unknown channel", f"channel is not null and channel not in {_in(ORDER_CHANNELS)}"),
        *((f"non-numeric {a}", _bad_value(a)) for a in AMOUNTS),
        ("negative amount", " or ".join(f"{a} < 0" for a in AMOUNTS)),
        ("missing net_amount", "net_amount is null"),
    ),
    event_column="updated_at",
)


def webshop_orders(currency: str) -> TableSpec:
    """The orders spec for a shop trading in `currency` (ISO 4217): orders in any other currency are quarantined."""
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValueError(f"not an ISO 4217 currency code: {currency!r}")
    rule = (f"currency is not {currency}", f"currency is not null and currency <> '{currency}'")
    return replace(WEBSHOP_ORDERS, rules=(*WEBSHOP_ORDERS.rules, rule))


WEBSHOP_ORDER_ITEMS = TableSpec(
    name="webshop_order_items",
    columns={
        "order_id": _text(), "line_no": "try_cast({c} as integer)", "sku": _text(), "category": _text(),
        "quantity": _num(), "unit_price": _num(), "unit_cost": _num(),
    },
    required=("order_id", "line_no", "quantity", "unit_price"),
    rules=(
        ("missing order_id", "order_id is null"),
        ("missing line_no", "line_no is null"),
        ("non-numeric quantity", _bad_value("quantity")),
        ("non-numeric unit_price", _bad_value("unit_price")),
        ("negative quantity or price", "quantity < 0 or unit_price < 0 or unit_cost < 0"),
    ),
    event_column="",  # lines take their order's partition date
)

HELPDESK_TICKETS = TableSpec(
    name="helpdesk_tickets",
    columns={
        "id": _text(), "requester_id": _text(), "requester_email": _text(), "requester_phone": _text(),
        "requester_name": _text(), "channel": f"lower({_text()})", "subject": _text(),
        "status": f"lower({_text()})", "priority": f"lower({_text()})", "order_ref": _text(),
        "created_at": ts_sql(), "updated_at": ts_sql(), "solved_at": ts_sql(), "satisfaction": f"lower({_text()})",
        "tags": "{c}",
    },
    required=("id", "created_at", "updated_at", "status"),
    rules=(
        ("malformed JSON", "not _json_ok"),
        ("missing id", "id is null"),
        ("unparseable created_at", "created_at is null"),
        ("unparseable updated_at", "updated_at is null"),
        ("unparseable solved_at", _bad_value("solved_at")),
        ("unknown status", f"status is null or status not in {_in(TICKET_STATUSES)}"),
        ("unknown channel", f"channel is not null and channel not in {_in(TICKET_CHANNELS)}"),
        ("unknown satisfaction", "satisfaction is not null and satisfaction not in ('good', 'bad')"),
    ),
    event_column="updated_at",
)

SURVEY_RESPONSES = TableSpec(
    name="survey_responses",
    columns={
        "response_id": _text(), "submitted_at": ts_sql(), "survey": f"lower({_text()})",
        "score": "try_cast({c} as integer)", "comment": "cast({c} as varchar)", "email": _text(), "phone": _text(),
        "order_ref": _text(), "consent": "try_cast({c} as boolean)",
    },
    required=("response_id", "submitted_at", "survey", "score"),
    rules=(
        ("malformed JSON", "not _json_ok"),
        ("missing response_id", "response_id is null"),
        ("unparseable submitted_at", "submitted_at is null"),
        ("unknown survey", "survey is null or survey not in ('nps', 'csat')"),
        ("non-numeric score", "score is null"),
        ("NPS score outside 0-10", "survey = 'nps' and score not between 0 and 10"),
        ("CSAT score outside 1-5", "survey = 'csat' and score not between 1 and 5"),
    ),
    event_column="submitted_at",
)


@dataclass
class LoadResult:
    table: str
    window: tuple[date, date]
    loaded: int = 0
    quarantined: int = 0
    duplicates_dropped: int = 0
    suppressed: int = 0  # rows of erased persons dropped before landing (pipeline.lib.erasure)
    reasons: dict[str, int] = field(default_factory=dict)

    def as_metadata(self) -> dict:
        return {
            f"{self.table}.rows_loaded": self.loaded,
            f"{self.table}.rows_quarantined": self.quarantined,
            f"{self.table}.duplicates_dropped": self.duplicates_dropped,
            f"{self.table}.rows_suppressed": self.suppressed,
            **{f"{self.table}.quarantine[{reason}]": n for reason, n in sorted(self.reasons.items())},
        }


def prepare_session(con: duckdb.DuckDBPyConnection, timezone: str) -> None:
    """Naive timestamps in sources mean the shop's time zone (calendar.timezone), and so do cut dates."""
    if not re.fullmatch(r"[A-Za-z0-9_+\-/]+", timezone):
        raise ValueError(f"not a time zone name: {timezone!r}")
    con.execute(f"set TimeZone = '{timezone}'")
    con.execute("create schema if not exists raw")
    con.execute("create schema if not exists quarantine")


def _columns_of(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return [row[0] for row in con.execute(f"describe select * from {relation}").fetchall()]


def land(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    staged: str,
    window: tuple[date, date],
    source_label: str,
) -> LoadResult:
    """Type, validate, de-duplicate and land the staged rows of one window (see module docstring).

    `staged` names a relation holding the delivered columns, `_partition_date` (may be NULL: then the event date
    decides) and optionally `_json_ok` (false for unparseable JSON lines).
    """
    start, end = window
    delivered = set(_columns_of(con, staged))
    missing_required = [c for c in spec.required if c not in delivered]
    if missing_required:
        raise SourceSchemaError(
            f"{spec.name}: the source no longer delivers required column(s) {missing_required}; "
            f"delivered columns are {sorted(c for c in delivered if not c.startswith('_'))}. Fix the source or its column mapping in pipeline/config/cdp.yaml."
        )
    optional_nulls = ", ".join(f"null::varchar as {c}" for c in spec.columns if c not in delivered)
    extras = [c for c in delivered if c not in spec.columns and not c.startswith("_")]
    typed = ", ".join(f"{expr.format(c=f'_orig.{col}' if col in delivered else col)} as {col}"
                      for col, expr in spec.columns.items())
    json_ok = "_orig._json_ok" if "_json_ok" in delivered else "true"
    event_date = f"cast({spec.event_column} as date)" if spec.event_column else "null::date"
    reasons = ", ".join(f"case when coalesce({cond}, false) then '{reason}' end" for reason, cond in spec.rules)
    con.execute(f"""
        create or replace temp table _typed_all as
        with src as (select *{', ' + optional_nulls if optional_nulls else ''} from {staged}),
        typed as (
            select {typed}, {', '.join(f'_orig.{c}' for c in extras) + ',' if extras else ''}
                   {json_ok} as _json_ok, _orig._partition_date as _delivered_date,
                   _orig, to_json(_orig)::varchar as _payload
            from src as _orig
        )
        select * exclude (_delivered_date, _json_ok, _orig),
               coalesce(_delivered_date, {event_date}) as _partition_date,
               concat_ws('; ', {reasons}) as _reason
        from typed
    """)
    # Keep the window only (a source may deliver more than asked); rows without a date cannot be placed in any
    # window and are quarantined in every run that sees them (replaced, never duplicated).
    con.execute(f"""
        delete from _typed_all
        where _partition_date is not null and (_partition_date < '{start}' or _partition_date >= '{end}')
    """)
    con.execute("update _typed_all set _reason = 'no event date to place the row in a partition' "
                "where _partition_date is null and _reason = ''")
    # Right to erasure (UU PDP / GDPR): rows of persons on privacy.suppression_list never land again, valid or not;
    # they are counted as `suppressed`, not dropped silently.
    suppressed = drop_suppressed(con, spec.name, "_typed_all")
    before = con.execute("select count(*) from _typed_all").fetchone()[0]
    con.execute("""
        create or replace temp table _typed as
        select * from _typed_all
        qualify row_number() over (partition by _payload) = 1
    """)
    result = LoadResult(table=spec.name, window=window, suppressed=suppressed)
    result.duplicates_dropped = before - con.execute("select count(*) from _typed").fetchone()[0]

    raw_table, q_table = f"raw.{spec.name}", f"quarantine.{spec.name}"
    with transaction(con):
        ensure_table(con, raw_table, "select * exclude (_reason, _payload), "
                                      "current_timestamp::timestamp as _loaded_at, ''::varchar as _source from _typed")
        ensure_table(con, q_table, "select _payload, _reason, _partition_date, "
                                    "current_timestamp::timestamp as _loaded_at, ''::varchar as _source from _typed")
        window_rows = f"(_partition_date >= '{start}' and _partition_date < '{end}')"
        con.execute(f"delete from {raw_table} where {window_rows}")
        con.execute(f"delete from {q_table} where {window_rows} or _partition_date is null")
        result.loaded = con.execute(f"""
            insert into {raw_table} by name
            select * exclude (_reason, _payload), current_timestamp::timestamp as _loaded_at, ? as _source
            from _typed where _reason = ''
        """, [source_label]).fetchone()[0]
        result.quarantined = con.execute(f"""
            insert into {q_table} by name
            select _payload, _reason, _partition_date, current_timestamp::timestamp as _loaded_at, ? as _source
            from _typed where _reason <> ''
        """, [source_label]).fetchone()[0]
    result.reasons = dict(con.execute(
        "select _reason, count(*) from _typed where _reason <> '' group by 1 order by 1").fetchall())
    return result


# ---------------------------------------------------------------------------------------------------------------------
# Staging the demo-style sources: a SQL database file, JSONL exports, survey files.

_DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})\.[A-Za-z]+$")


def files_in_window(paths: list[str], window: tuple[date, date]) -> list[str]:
    """Export files whose name carries a date inside the window (files without a date are always included)."""
    start, end = window
    selected = []
    for path in sorted(paths):
        found = _DATE_IN_NAME.search(path)
        if found is None or start <= date.fromisoformat(found.group(1)) < end:
            selected.append(path)
    return selected


def file_date_sql(column: str = "filename") -> str:
    return f"try_cast(regexp_extract({column}, '(\\d{{4}}-\\d{{2}}-\\d{{2}})\\.[A-Za-z]+$', 1) as date)"


def sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def stage_jsonl_lines(con: duckdb.DuckDBPyConnection, paths: list[str], name: str) -> None:
    """Every non-empty line of the files as `_line`, with `_json_ok` and the file's date (set-wise via read_text)."""
    con.execute(f"""
        create or replace temp table {name} as
        select line as _line, json_valid(line) as _json_ok, {file_date_sql()} as _partition_date
        from (select filename, unnest(string_split(content, chr(10))) as line from read_text({sql_list(paths)}))
        where trim(line) <> ''
    """)


def stage_nothing(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> str:
    """An empty delivery for `spec`: landing it gives a shop without that source an empty, typed raw table."""
    columns = ", ".join(f"null::varchar as {column}" for column in spec.columns)
    con.execute(f"create or replace temp view _staged_nothing as select {columns}, null::date as _partition_date limit 0")
    return "_staged_nothing"


def stage_order_items(con: duckdb.DuckDBPyConnection, source_table: str) -> str:
    """Order lines travel with their order: each line takes the partition date of its order's landed version.

    Call right after landing the orders of the same window (it reads that load's typed rows)."""
    con.execute("create or replace temp table _typed_orders as select order_id, _partition_date from _typed")
    con.execute(f"""
        create or replace temp view _staged_order_items as
        select i.*, o._partition_date
        from {source_table} i
        join (select order_id, max(_partition_date) as _partition_date from _typed_orders group by 1) o
          on cast(i.order_id as varchar) = o.order_id
    """)
    return "_staged_order_items"


def stage_tickets_jsonl(con: duckdb.DuckDBPyConnection, paths: list[str]) -> str:
    stage_jsonl_lines(con, paths, "_ticket_lines")
    fields = ["id", "channel", "subject", "status", "priority", "order_ref", "created_at", "updated_at",
              "solved_at", "satisfaction"]
    requester = ["id", "email", "phone", "name"]
    con.execute(f"""
        create or replace temp view _staged_tickets as
        select {', '.join(f"case when _json_ok then _line->>'$.{f}' end as {f}" for f in fields)},
               {', '.join(f"case when _json_ok then _line->>'$.requester.{f}' end as requester_{f}" for f in requester)},
               case when _json_ok then from_json(_line->'$.tags', '["VARCHAR"]') end as tags,
               _json_ok, _partition_date,
               case when not _json_ok then _line end as _raw_line
        from _ticket_lines
    """)
    return "_staged_tickets"


SURVEY_FIELDS = ("response_id", "submitted_at", "survey", "score", "comment", "email", "phone", "order_ref", "consent")


def _csv_files_by_header(paths: list[str]) -> dict[tuple[str, ...] | None, list[str]]:
    """Local CSV files grouped by their header row; remote files (header unknown without a download) under None."""
    groups: dict[tuple[str, ...] | None, list[str]] = {}
    for path in paths:
        header = None
        if Path(path).is_file():
            with open(path, encoding="utf-8", errors="replace", newline="") as fh:
                header = tuple(next(csv.reader(fh), [])) or None
        groups.setdefault(header, []).append(path)
    return groups


def stage_survey_files(con: duckdb.DuckDBPyConnection, paths: list[str]) -> str:
    """CSV, JSONL and Parquet exports unioned by column name, every value as delivered text."""
    parts = []
    csv_files = [p for p in paths if p.endswith(".csv")]
    jsonl = [p for p in paths if p.endswith((".jsonl", ".json", ".ndjson"))]
    parquet = [p for p in paths if p.endswith(".parquet")]
    for n, (header, group) in enumerate(_csv_files_by_header(csv_files).items()):
        # Files sharing a header are read with declared columns (no sniffing of every file); others by name.
        layout = ("union_by_name = true" if header is None else
                  "auto_detect = false, delim = ',', quote = '\"', escape = '\"', columns = {"
                  + ", ".join(f"'{c}': 'VARCHAR'" for c in header) + "}")
        con.execute(f"""
            create or replace temp table _survey_csv_{n} as
            select *, true as _json_ok, {file_date_sql()} as _partition_date
            from read_csv({sql_list(group)}, all_varchar = true, {layout}, filename = true, header = true)
        """)
        parts.append(f"select * exclude (filename) from _survey_csv_{n}")
    if jsonl:
        stage_jsonl_lines(con, jsonl, "_survey_lines")
        cols = ", ".join(f"case when _json_ok then _line->>'$.{f}' end as {f}" for f in SURVEY_FIELDS)
        parts.append(f"select {cols}, _json_ok, _partition_date, "
                     f"case when not _json_ok then _line end as _raw_line from _survey_lines")
    if parquet:
        con.execute(f"""
            create or replace temp table _survey_parquet as
            select * from read_parquet({sql_list(parquet)}, union_by_name = true, filename = true)
        """)
        cols = [c for c in _columns_of(con, "_survey_parquet") if c != "filename"]
        casts = ", ".join(f"cast({c} as varchar) as {c}" for c in cols)
        parts.append(f"select {casts}, true as _json_ok, {file_date_sql()} as _partition_date from _survey_parquet")
    if not parts:
        con.execute(f"create or replace temp view _staged_survey as select "
                    f"{', '.join(f'null::varchar as {f}' for f in SURVEY_FIELDS)}, true as _json_ok, "
                    f"null::date as _partition_date limit 0")
    else:
        con.execute("create or replace temp view _staged_survey as " + " union all by name ".join(parts))
    return "_staged_survey"
