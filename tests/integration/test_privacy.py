"""Privacy: right to erasure (`python -m pipeline.forget`) with suppression at ingestion, pseudonymised serving."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import phonenumbers
import polars as pl
import pytest

from pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pipeline.defs.resources import resources_for
from pipeline.lib import erasure, serving
from pipeline.lib.erasure import PAYLOAD_EMAIL
from pipeline.lib.phones import normalise_phones
from tests.support.demo_shop import DEMO_REGION, DEMO_RULES
from tests.support.serving import copy_run, ensure_marts, table_digests

REPO = Path(__file__).resolve().parents[2]
SALT = "test-salt-7f3a"
PHONE_SHAPED = r"^[+0-9][0-9 ()\-.]{7,}$"


def _string_values(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, column: str, dtype: str, database: str
) -> str:
    """SQL over one column's string values (lists unnested, JSON payload fields and the addresses inside them)."""
    source = f'"{database}"."{schema}"."{table}"'
    if dtype == "VARCHAR[]":
        return f'select unnest("{column}") as v from {source}'
    if column == "_payload":
        return (
            f"select j.value ->> '$' as v from {source}, json_each({source}._payload) as j union all "
            f"select unnest(regexp_extract_all(_payload, '{PAYLOAD_EMAIL}')) from {source}"
        )
    return f'select "{column}" as v from {source}'


def rows_carrying(
    path: Path, values: list[str], phones: list[str], skip_schemas: tuple[str, ...] = ()
) -> dict[str, int]:
    """Per "schema.table.column": rows whose string value is one of `values` (case-insensitive) or a spelling of
    one of the E.164 `phones`, over every table (not view) of every schema of a DuckDB file."""
    hits = {}
    with duckdb.connect() as con:
        con.execute(f"attach '{path}' as db (read_only)")
        con.register("needles", pl.DataFrame({"v": [v.strip().lower() for v in values]}).to_arrow())
        columns = con.execute(
            "select schema_name, table_name, column_name, data_type from duckdb_columns() "
            "where database_name = 'db' and data_type in ('VARCHAR', 'VARCHAR[]') "
            # Views store no bytes (and name the catalog dbt built them in, not this attachment's alias).
            "and (schema_name, table_name) not in (select (schema_name, view_name) from duckdb_views() "
            "where database_name = 'db')"
        ).fetchall()
        for schema, table, column, dtype in columns:
            if schema in skip_schemas:
                continue
            values_sql = _string_values(con, schema, table, column, dtype, "db")
            direct = con.execute(
                f"select count(*) from ({values_sql}) where lower(trim(v)) in (select v from needles)"
            ).fetchone()[0]
            shaped = con.execute(
                f"select distinct v from ({values_sql}) where regexp_matches(v, '{PHONE_SHAPED}')"
            ).pl()
            phone_hits = 0
            if phones and shaped.height:
                spellings = shaped.filter(normalise_phones(shaped.get_column("v"), DEMO_REGION).is_in(phones))
                if spellings.height:
                    con.register("spellings", spellings.to_arrow())
                    phone_hits = con.execute(
                        f"select count(*) from ({values_sql}) where v in (select v from spellings)"
                    ).fetchone()[0]
                    con.unregister("spellings")
            if direct + phone_hits:
                hits[f"{schema}.{table}.{column}"] = direct + phone_hits
    return hits


def parquet_as_database(parquet_dir: Path, target: Path) -> Path:
    """The served Parquet files as tables of one DuckDB file, so that `rows_carrying` can scan them."""
    files = sorted(parquet_dir.glob("*/*.parquet"))
    assert files
    with duckdb.connect(str(target)) as con:
        for number, parquet in enumerate(files):
            con.execute(f"create table main.file_{number} as select * from read_parquet('{parquet}')")
    return target


@pytest.fixture(scope="module")
def erasure_copy(demo_run, tmp_path_factory) -> Path:
    data = copy_run(demo_run.data_dir, tmp_path_factory.mktemp("erasure") / "data")
    ensure_marts(data / "warehouse.duckdb")
    serving.publish(data / "warehouse.duckdb", serving.serving_dir(data))
    return data


def _people(data: Path) -> dict[str, str]:
    """Three people chosen from the demo truth: one by email, one by phone (typed in another format), one by id."""
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        con.execute(f"create temp table truth as select * from read_csv('{data / 'demo' / 'truth.csv'}')")
        # People with an account, tickets and survey answers, busiest first.
        busy = con.execute("""
            select t.person_id, any_value(c.email) as email, any_value(c.phone) as phone
            from truth t
            left join raw.webshop_customers c on t.source = 'webshop_customer' and c.customer_id = t.record_id
            group by 1
            having count(distinct t.source) = 4 and bool_and(t.source <> 'webshop_customer' or c.email like '%@%.%')
               and count(c.phone) > 0
            order by count(*) desc, 1 limit 2
        """).fetchall()
        by_id = con.execute("""
            select p.customer_id from marts.customer_profile p join marts.fct_orders o using (customer_id)
            group by 1 order by count(*) desc, 1 limit 1 offset 5
        """).fetchone()[0]
    phone = phonenumbers.parse(busy[1][2], DEMO_REGION)
    national = phonenumbers.format_number(phone, phonenumbers.PhoneNumberFormat.NATIONAL)  # e.g. 0812-3456-7890
    return {"email": busy[0][1].upper(), "phone": national, "customer_id": by_id}


def _forget(data: Path, option: str, value: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CDP_DATA_DIR": str(data)}
    env.pop("CDP_WAREHOUSE", None)
    return subprocess.run(
        [sys.executable, "-m", "pipeline.forget", f"--{option.replace('_', '-')}", value],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_forget_leaves_no_row_anywhere_and_reingestion_keeps_them_out(erasure_copy, monkeypatch):
    data = erasure_copy
    warehouse, served = data / "warehouse.duckdb", data / "serving" / "cdp.duckdb"
    people = _people(data)
    persons = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for option, value in people.items():
            persons[option] = erasure.find_person(con, **{option: value}, rules=DEMO_RULES)
        # The records that carry the given email directly (per the demo truth) are all found.
        direct = con.execute(
            f"""
            select t.source, t.record_id from read_csv('{data / "demo" / "truth.csv"}') t
            join (select 'webshop_customer' s, customer_id r, email e from raw.webshop_customers
                  union all select 'webshop_order', order_id, guest_email from raw.webshop_orders
                  union all select 'helpdesk_ticket', id, requester_email from raw.helpdesk_tickets
                  union all select 'survey_response', response_id, email from raw.survey_responses) x
              on x.s = t.source and x.r = t.record_id
            where lower(trim(x.e)) = lower(?)
        """,
            [people["email"]],
        ).pl()
    assert direct.height >= 2
    assert direct.join(persons["email"].records, on=["source", "record_id"], how="anti").height == 0
    for option, person in persons.items():
        assert person.records.get_column("source").n_unique() >= 2, f"{option}: {person.records}"

    before = table_digests(warehouse)
    for option, value in people.items():
        done = _forget(data, option, value)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "deleted" in done.stdout

    everything = pl.concat([p.identifiers for p in persons.values()])
    values = everything.filter(pl.col("id_type") != "phone").get_column("value").to_list()
    phones = everything.filter(pl.col("id_type") == "phone").get_column("value").to_list()
    assert phones and values
    assert rows_carrying(warehouse, values, phones, skip_schemas=("privacy",)) == {}
    assert rows_carrying(served, values, phones) == {}
    assert (
        rows_carrying(parquet_as_database(data / "serving" / "parquet", data / "parquet_scan.duckdb"), values, phones)
        == {}
    )
    # Only the current Parquet version survives an erasure (no older copy holding the person).
    assert len(list((data / "serving").glob("parquet-v*"))) == 1
    after = table_digests(warehouse)
    assert sum(after[t][0] for t in after if t.startswith("raw.")) < sum(
        before[t][0] for t in before if t.startswith("raw.")
    )

    # The suppression list holds hashes only.
    with duckdb.connect(str(warehouse), read_only=True) as con:
        entries = con.execute("select id_type, value_sha256 from privacy.suppression_list").fetchall()
    assert len(entries) >= everything.unique().height - everything.filter(pl.col("id_type") == "customer_id").height
    assert all(len(digest) == 64 for _, digest in entries)
    assert rows_carrying(warehouse, values, phones) == {}

    # Re-ingest every source over the whole window: the erased rows stay out, counted as suppressed, nothing else moves.
    from pipeline.defs.ingest.assets import helpdesk_tickets, survey_responses, webshop

    monkeypatch.setenv("CDP_DATA_DIR", str(data))
    monkeypatch.delenv("CDP_WAREHOUSE", raising=False)
    result = dg.materialize(
        [webshop, helpdesk_tickets, survey_responses],
        instance=dg.DagsterInstance.ephemeral(),
        tags={RANGE_START_TAG: "2024-01-01", RANGE_END_TAG: "2026-11-22"},
        resources=resources_for(),
    )
    assert result.success
    suppressed = {
        key: value.value
        for event in result.get_asset_materialization_events()
        for key, value in event.materialization.metadata.items()
        if key.endswith("rows_suppressed")
    }
    assert suppressed["webshop_customers.rows_suppressed"] >= 2
    assert suppressed["helpdesk_tickets.rows_suppressed"] > 0 and suppressed["survey_responses.rows_suppressed"] > 0
    reingested = table_digests(warehouse, ("raw", "quarantine"))
    assert reingested == {t: d for t, d in after.items() if t.split(".")[0] in ("raw", "quarantine")}
    assert rows_carrying(warehouse, values, phones, skip_schemas=("privacy",)) == {}


def test_forget_rejects_a_malformed_identifier(erasure_copy):
    done = _forget(erasure_copy, "phone", "12")
    assert done.returncode == 2 and "not a valid phone number" in done.stderr


def test_pseudonymised_serving_holds_no_email_or_phone(demo_run, tmp_path, monkeypatch):
    data = copy_run(demo_run.data_dir, tmp_path / "data")
    warehouse, out = data / "warehouse.duckdb", serving.serving_dir(data)
    ensure_marts(warehouse)
    monkeypatch.setenv("CDP_PSEUDONYM_SALT", "")
    with pytest.raises(serving.ServingConfigError, match="CDP_PSEUDONYM_SALT"):
        serving.ServingOptions.from_config({"pseudonymise": True})
    monkeypatch.setenv("CDP_PSEUDONYM_SALT", SALT)
    options = serving.ServingOptions.from_config({"pseudonymise": True})
    result = serving.publish(warehouse, out, options)
    assert result.pseudonymised and result.tables

    with duckdb.connect(str(warehouse), read_only=True) as con:
        clear = (
            con.execute("""
            select distinct v from (
                select email as v from raw.webshop_customers union all select phone from raw.webshop_customers
                union all select guest_email from raw.webshop_orders
                union all select guest_phone from raw.webshop_orders
                union all select requester_email from raw.helpdesk_tickets
                union all select requester_phone from raw.helpdesk_tickets
                union all select email from raw.survey_responses union all select phone from raw.survey_responses
                union all select email from marts.customer_profile union all select phone from marts.customer_profile)
            where v is not null
        """)
            .pl()
            .get_column("v")
        )
    phones = normalise_phones(clear, DEMO_REGION).drop_nulls().unique().to_list()
    assert clear.len() > 1000 and len(phones) > 500
    assert rows_carrying(out / "cdp.duckdb", clear.to_list(), phones) == {}
    assert rows_carrying(parquet_as_database(out / "parquet", tmp_path / "scan.duckdb"), clear.to_list(), phones) == {}

    # The hash is sha256(salt || value) of the warehouse value, row for row.
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute(f"attach '{out / 'cdp.duckdb'}' as served (read_only)")
        mismatched = con.execute(
            """
            select count(*) from marts.customer_profile w join served.marts.customer_profile s using (customer_id)
            where s.email is distinct from sha256(? || w.email) or s.full_name is distinct from sha256(? || w.full_name)
        """,
            [SALT, SALT],
        ).fetchone()[0]
        assert mismatched == 0
