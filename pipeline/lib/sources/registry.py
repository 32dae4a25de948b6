"""The source registry: every raw table the pipeline lands, declared once.

Per table: where it comes from (source and source table), its contract columns with their kind, the record key,
the column that dates a row (its partition), the validation rules, and which columns carry a person's identifiers.
Everything that needs to know a source's shape derives from here:
- ingest (`pipeline.lib.ingest`) types the delivered columns by kind and quarantines rows breaking a rule;
- the raw data-quality suites (`pipeline.lib.expectations.raw_suite`) assert the same rules on what landed, so a
  critical raw check can only fail if landing let a bad row through;
- dbt tests `accepted_values` on the raw sources from `dbt_project/models/staging/_sources.yml`, generated from
  here (`python -m pipeline.lib.sources.registry`; a unit test fails when the file is stale);
- identity and erasure read the identifier columns (`identifier_columns`, `RawTable.record_source`).
Adding a source is one `RawTable` entry per table here plus one connector in `pipeline/lib/sources/`.

Why row-level rules only are blocking: a rule over one row can quarantine that row at landing, so it never reaches
staging on any night; table-level rates (share of null channels, row counts) cannot, so they are warnings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Column kinds: how a delivered value is typed (ingest) and what "unparseable" means for it.
KINDS = ("id", "text", "free_text", "code", "currency", "timestamp", "number", "money", "integer", "boolean", "list")


@dataclass(frozen=True)
class Column:
    """One contract column.

    kind: id/text (trimmed text, empty = null), free_text (as delivered), code (trimmed, lower-cased),
      currency (trimmed, upper-cased), timestamp (ISO 8601, naive = the shop's time zone), number, money (number,
      never negative, at most the configured bound), integer (a whole number: 8.6 is not a score), boolean, list.
    required: a delivery without this column is refused (schema drift), naming source, file/table and column.
    not_null: a row without a value is quarantined ("missing <column>").
    accepted: the only values allowed (others quarantined as "unknown <column>"; null is fine unless not_null).
    minimum / maximum: inclusive bounds; a value outside is quarantined.
    identifier: the identifier type the column carries (identity and erasure read these).
    match: what the column tells identity's matcher about the person: "name" (the parts of a name, in column
      order, make the full name) or "city".
    """

    name: str
    kind: str = "text"
    required: bool = False
    not_null: bool = False
    accepted: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    identifier: str | None = None
    match: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name}: kind {self.kind!r} is not one of {KINDS}")


@dataclass(frozen=True)
class Range:
    """A bound on a column that holds only for rows where `when_column = when_value` (e.g. NPS scores 0-10)."""

    reason: str
    column: str
    minimum: float
    maximum: float
    when_column: str
    when_value: str


@dataclass(frozen=True)
class RawTable:
    """One raw table: `raw.<name>` for valid rows, `quarantine.<name>` for the others (with reason and payload).

    key: the record key; with `versioned` a row is one version of the record, ordered by `event_column` (an order
      delivered again after a status change), otherwise one row per key (a survey response).
    event_column: the timestamp whose date is a row's partition when the delivery does not fix one; None = the
      row takes its parent's (an order line travels with its order, `parent`).
    record_source: identity's name for a record of this table (None: not a record of a person, e.g. order lines).
    staging_model / staged_names: the dbt staging model and the columns it renames (raw name -> staged name).
    warnings: table-level expectations (GX type, kwargs) reported but never blocking.
    """

    name: str
    source: str
    source_table: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    event_column: str | None
    versioned: bool
    record_source: str | None
    staging_model: str
    description: str
    staged_names: Mapping[str, str] = field(default_factory=dict)
    ranges: tuple[Range, ...] = ()
    parent: str | None = None
    warnings: tuple[tuple[str, Mapping[str, Any]], ...] = ()

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def record_key(self) -> str | None:
        """The single column identifying a person's record (None for tables that hold no records of their own)."""
        return self.key[0] if self.record_source and len(self.key) == 1 else None

    def staged(self, column: str) -> str:
        return self.staged_names.get(column, column)


ORDER_STATUSES = ("pending", "paid", "shipped", "completed", "cancelled", "refunded")
ORDER_CHANNELS = ("web", "app", "marketplace", "store")
CUSTOMER_TYPES = ("end_customer", "agent", "reseller")
TICKET_STATUSES = ("new", "open", "pending", "solved", "closed")
TICKET_CHANNELS = ("email", "whatsapp", "instagram", "facebook", "phone", "chat")
SURVEYS = ("nps", "csat")

TABLES: dict[str, RawTable] = {
    t.name: t
    for t in (
        RawTable(
            name="webshop_customers",
            source="webshop",
            source_table="customers",
            description="Webshop accounts, one row per delivered version (updated_at).",
            columns=(
                Column(
                    "customer_id",
                    "id",
                    required=True,
                    not_null=True,
                    identifier="webshop_customer_id",
                    description="Webshop account id.",
                ),
                Column("email", identifier="email"),
                Column("phone", identifier="phone"),
                Column("first_name", match="name"),
                Column("last_name", match="name"),
                Column("city", match="city"),
                Column("province"),
                Column("customer_type", "code", accepted=CUSTOMER_TYPES),
                Column("marketing_opt_in", "boolean"),
                Column("created_at", "timestamp"),
                Column("updated_at", "timestamp", required=True, not_null=True),
            ),
            key=("customer_id",),
            event_column="updated_at",
            versioned=True,
            record_source="webshop_customer",
            staging_model="stg_webshop__customers",
            warnings=(
                ("expect_column_values_to_not_be_null", {"column": "customer_type", "mostly": 0.9}),
                ("expect_column_values_to_match_regex", {"column": "email", "regex": "@", "mostly": 0.95}),
            ),
        ),
        RawTable(
            name="webshop_orders",
            source="webshop",
            source_table="orders",
            description="Webshop orders incl. guest checkouts, one row per delivered version (updated_at).",
            columns=(
                Column("order_id", "id", required=True, not_null=True, identifier="order_id"),
                Column(
                    "customer_id",
                    "id",
                    required=True,
                    identifier="webshop_customer_id",
                    description="Null for a guest checkout.",
                ),
                Column("guest_email", identifier="email"),
                Column("guest_phone", identifier="phone"),
                Column("ordered_at", "timestamp", required=True, not_null=True),
                Column("status", "code", required=True, not_null=True, accepted=ORDER_STATUSES),
                Column("channel", "code", required=True, accepted=ORDER_CHANNELS),
                Column("currency", "currency"),
                Column("gross_amount", "money"),
                Column("discount_amount", "money"),
                Column("shipping_amount", "money"),
                Column("net_amount", "money", required=True, not_null=True),
                Column("promo_code"),
                Column("referral_code"),
                Column("updated_at", "timestamp", required=True, not_null=True),
            ),
            key=("order_id",),
            event_column="updated_at",
            versioned=True,
            record_source="webshop_order",
            staging_model="stg_webshop__orders",
            warnings=(
                ("expect_column_values_to_not_be_null", {"column": "customer_id", "mostly": 0.5}),
                ("expect_column_values_to_not_be_null", {"column": "channel", "mostly": 0.9}),
            ),
        ),
        RawTable(
            name="webshop_order_items",
            source="webshop",
            source_table="order_items",
            description="Order lines, delivered with their order (an updated order replaces its set of lines).",
            columns=(
                Column("order_id", "id", required=True, not_null=True, identifier="order_id"),
                Column("line_no", "integer", required=True, not_null=True),
                Column("sku"),
                Column("category"),
                Column("quantity", "number", required=True, not_null=True, minimum=1),
                Column("unit_price", "money", required=True, not_null=True),
                Column("unit_cost", "money"),
            ),
            key=("order_id", "line_no"),
            event_column=None,
            versioned=True,
            parent="webshop_orders",
            record_source=None,
            staging_model="stg_webshop__order_items",
            warnings=(
                ("expect_column_values_to_be_between", {"column": "quantity", "max_value": 1000.0}),
                ("expect_column_values_to_not_be_null", {"column": "sku"}),
            ),
        ),
        RawTable(
            name="helpdesk_tickets",
            source="helpdesk",
            source_table="tickets",
            description="Helpdesk tickets (requester flattened), one row per delivered version (updated_at).",
            columns=(
                Column("id", "id", required=True, not_null=True, identifier="ticket_id"),
                Column("requester_id", "id", identifier="helpdesk_requester_id"),
                Column("requester_email", identifier="email"),
                Column("requester_phone", identifier="phone"),
                Column("requester_name", match="name"),
                Column("channel", "code", accepted=TICKET_CHANNELS),
                Column("subject"),
                Column("status", "code", required=True, not_null=True, accepted=TICKET_STATUSES),
                Column("priority", "code"),
                Column("order_ref", "id", identifier="order_id"),
                Column("created_at", "timestamp", required=True, not_null=True),
                Column("updated_at", "timestamp", required=True, not_null=True),
                Column("solved_at", "timestamp"),
                Column("satisfaction", "code", accepted=("good", "bad")),
                Column("tags", "list"),
            ),
            key=("id",),
            event_column="updated_at",
            versioned=True,
            record_source="helpdesk_ticket",
            staging_model="stg_helpdesk__tickets",
            staged_names={"id": "ticket_id"},
            warnings=(
                ("expect_column_values_to_not_be_null", {"column": "channel", "mostly": 0.9}),
                (
                    "expect_column_pair_values_a_to_be_greater_than_b",
                    {
                        "column_A": "solved_at",
                        "column_B": "created_at",
                        "or_equal": True,
                        "ignore_row_if": "either_value_is_missing",
                    },
                ),
                ("expect_column_values_to_not_be_null", {"column": "solved_at", "mostly": 0.5}),
            ),
        ),
        RawTable(
            name="survey_responses",
            source="survey",
            source_table="responses",
            description="NPS and CSAT responses from survey exports (one row per response_id).",
            columns=(
                Column("response_id", "id", required=True, not_null=True, identifier="survey_response_id"),
                Column("submitted_at", "timestamp", required=True, not_null=True),
                Column("survey", "code", required=True, not_null=True, accepted=SURVEYS),
                Column("score", "integer", required=True, not_null=True),
                Column("comment", "free_text"),
                Column("email", identifier="email"),
                Column("phone", identifier="phone"),
                Column("order_ref", "id", identifier="order_id"),
                Column("consent", "boolean"),
            ),
            key=("response_id",),
            event_column="submitted_at",
            versioned=False,
            record_source="survey_response",
            staging_model="stg_survey__responses",
            ranges=(
                Range("NPS score outside 0-10", "score", 0, 10, "survey", "nps"),
                Range("CSAT score outside 1-5", "score", 1, 5, "survey", "csat"),
            ),
        ),
    )
}


def table(name: str) -> RawTable:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"no raw table {name!r} in the source registry; known: {sorted(TABLES)}") from None


def tables_of(source: str) -> tuple[RawTable, ...]:
    """The registry's tables of one source (config key under `sources:`), in declaration order."""
    return tuple(t for t in TABLES.values() if t.source == source)


def identifier_columns(name: str) -> dict[str, str]:
    """Raw column -> identifier type for one raw table (record keys included, e.g. `id` -> `ticket_id`)."""
    return {c.name: c.identifier for c in table(name).columns if c.identifier}


def person_records() -> tuple[RawTable, ...]:
    """Tables whose rows are records of a person (identity's extracts): those with a `record_source`."""
    return tuple(t for t in TABLES.values() if t.record_source)


# ---------------------------------------------------------------------------------------------------------------------
# dbt: the raw sources and the accepted values, generated (never edited by hand).

DBT_SOURCES_FILE = "dbt_project/models/staging/_sources.yml"
DBT_MACRO_FILE = "dbt_project/macros/contract_accepted_values.sql"
_GENERATED = "Generated from pipeline/lib/sources/registry.py by `python -m pipeline.lib.sources.registry`."


def dbt_sources_yaml() -> str:
    """`_sources.yml` for dbt: every raw table with its description and its not-null key columns."""
    import yaml

    def column(col: Column) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": col.name}
        if col.description:
            entry["description"] = col.description
        if col.not_null:
            entry["data_tests"] = ["not_null"]
        return entry

    document = {
        "version": 2,
        "sources": [
            {
                "name": "raw",
                "description": "Rows landed by the Dagster ingestion assets (typed, validated; invalid rows sit in "
                "`quarantine`).",
                "schema": "raw",
                "tables": [
                    {
                        "name": t.name,
                        "description": t.description,
                        "columns": [column(c) for c in t.columns if c.not_null or c.description],
                    }
                    for t in TABLES.values()
                ],
            }
        ],
    }
    return f"# {_GENERATED}\n" + yaml.safe_dump(document, sort_keys=False, width=120)


def dbt_accepted_values_macro() -> str:
    """A dbt macro returning a raw column's accepted values (used by the `accepted_by_contract` generic test)."""
    import json

    values = {t.name: {c.name: list(c.accepted) for c in t.columns if c.accepted} for t in TABLES.values()}
    return (
        f"{{#- {_GENERATED} -#}}\n"
        "{% macro contract_accepted_values(raw_table, raw_column) -%}\n"
        f"    {{%- set accepted = {json.dumps(values, sort_keys=True)} -%}}\n"
        "    {{ return(accepted[raw_table][raw_column]) }}\n"
        "{%- endmacro %}\n"
    )


GENERATED_FILES = {DBT_SOURCES_FILE: dbt_sources_yaml, DBT_MACRO_FILE: dbt_accepted_values_macro}

if __name__ == "__main__":
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    for relative, render in GENERATED_FILES.items():
        (root / relative).write_text(render(), encoding="utf-8")
        print(f"wrote {relative}")
