"""A `dbt build` tests the rows it wrote (macro this_build): a nightly run checks the night's orders, not every
order again, while `dbt test` on its own still checks the whole table. Real dbt on a real DuckDB file."""

from __future__ import annotations

import json
import shutil
from datetime import datetime

import duckdb
import polars as pl

from pipeline.lib.identity import record_sources
from pipeline.settings import load_settings
from tests.support.dbt_cli import plant_tables, run_dbt

UNIQUE_ORDER = "unique_stg_webshop__orders_order_id"


def _orders(ids: list[str], loaded_at: datetime) -> pl.DataFrame:
    """Raw webshop orders, one version each, landed at `loaded_at`."""
    ordered_at = datetime(2026, 1, 5, 10, 0)
    return pl.DataFrame(
        {
            "order_id": ids,
            "customer_id": ["C1"] * len(ids),
            "guest_email": [None] * len(ids),
            "guest_phone": [None] * len(ids),
            "ordered_at": [ordered_at] * len(ids),
            "status": ["paid"] * len(ids),
            "channel": ["web"] * len(ids),
            "currency": ["IDR"] * len(ids),
            "gross_amount": [100.0] * len(ids),
            "discount_amount": [0.0] * len(ids),
            "shipping_amount": [0.0] * len(ids),
            "net_amount": [100.0] * len(ids),
            "promo_code": [None] * len(ids),
            "referral_code": [None] * len(ids),
            "updated_at": [ordered_at] * len(ids),
            "_loaded_at": [loaded_at] * len(ids),
        },
        schema_overrides={name: pl.String for name in ("guest_email", "guest_phone", "promo_code", "referral_code")},
    )


def _build(warehouse):
    """Stage the orders and run their uniqueness test in one `dbt build`, as the pipeline does."""
    return run_dbt(warehouse, "build", "--select", "stg_webshop__orders", UNIQUE_ORDER, "--indirect-selection", "empty")


def test_a_build_checks_the_rows_it_wrote_and_dbt_test_every_row(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    plant_tables(warehouse, {"raw.webshop_orders": _orders(["O1", "O2"], datetime(2026, 1, 5, 23, 0))})
    first = _build(warehouse)
    assert first.returncode == 0, first.stdout[-2000:]
    # Damage outside any build: a second row for O1 among the rows the first build wrote.
    with duckdb.connect(str(warehouse)) as con:
        con.execute("insert into staging.stg_webshop__orders from staging.stg_webshop__orders where order_id = 'O1'")
        # The next night lands O3.
        con.register("next_night", _orders(["O3"], datetime(2026, 1, 6, 23, 0)).to_arrow())
        con.execute("insert into raw.webshop_orders select * from next_night")

    nightly = _build(warehouse)
    assert nightly.returncode == 0, nightly.stdout[-2000:]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        written = con.execute(
            "select order_id, count(distinct _invocation_id) over () from staging.stg_webshop__orders order by 1"
        ).fetchall()
    # O3 is the night's: the build checked it alone (and passed); the old duplicate was not its to check.
    assert [order_id for order_id, _ in written] == ["O1", "O1", "O2", "O3"] and written[0][1] == 2
    assert f"PASS {UNIQUE_ORDER} " in nightly.stdout, nightly.stdout[-2000:]

    whole = run_dbt(warehouse, "test", "--select", UNIQUE_ORDER)
    assert whole.returncode == 1 and "Got 1 result" in whole.stdout, whole.stdout[-2000:]


def _person_records(loaded: dict[str, datetime]) -> dict[str, pl.DataFrame]:
    """The staged person records int_identity_records reads: one account per key (loaded at its time), no other
    records."""
    tables = {}
    for number, source in enumerate(record_sources()):
        keys = list(loaded) if number == 0 else []
        columns = dict.fromkeys([source.key, *source.names, *filter(None, (source.city, source.seen_at))], pl.String)
        frame = {column: [f"{column}-{key}" if column != source.key else key for key in keys] for column in columns}
        frame["_loaded_at"] = [loaded[key] for key in keys]
        tables[f"staging.{source.model}"] = pl.DataFrame(frame, schema={**columns, "_loaded_at": pl.Datetime("us")})
    return tables


def test_a_python_model_build_checks_the_rows_of_its_newest_stamp(tmp_path):
    """int_identity_records cannot stamp the invocation; its rows carry staged_until, which no older row exceeds."""
    warehouse = tmp_path / "warehouse.duckdb"
    first, night = datetime(2026, 1, 5, 23, 0), datetime(2026, 1, 6, 23, 0)
    build = ("build", "--select", "int_identity_records", "--vars", '{"identity_rules": {"default_region": "ID"}}')
    plant_tables(warehouse, _person_records({"W1": first, "W2": first}))
    assert run_dbt(warehouse, *build).returncode == 0
    with duckdb.connect(str(warehouse)) as con:  # damage outside any build: a second row for W1
        con.execute("insert into intermediate.int_identity_records from intermediate.int_identity_records limit 1")
    plant_tables(warehouse, _person_records({"W1": first, "W2": first, "W3": night}))

    nightly = run_dbt(warehouse, *build)
    assert nightly.returncode == 0, nightly.stdout[-2000:]  # W3's row is the night's: the old duplicate is not
    whole = run_dbt(warehouse, "test", "--select", "int_identity_records")
    assert whole.returncode == 1 and "Got 1 result" in whole.stdout, whole.stdout[-2000:]

    with duckdb.connect(str(warehouse)) as con:  # a duplicate among the newest rows is the build's to find
        con.execute(
            "insert into intermediate.int_identity_records "
            "from intermediate.int_identity_records where record_id = 'W3'"
        )
    again = run_dbt(warehouse, *build)
    assert again.returncode == 1 and "Got 1 result" in again.stdout, again.stdout[-2000:]


# the identity models and what they read besides staging (int_run_date)
# Only the tests of the chain's own models (cautious): a test that also reads a model outside it, as
# assert_customer_profile_covers_identity_map reads the profile this build does not rebuild, would judge a half build.
IDENTITY_CHAIN = (
    "--select", "+int_identity_map", "--exclude", "path:models/staging", "--indirect-selection", "cautious",
)  # fmt: skip
PERSON_TABLES = ("int_identity_components", "int_identity_map")


def test_the_identity_builds_check_the_persons_they_wrote(demo_run, tmp_path):
    """int_identity_components (stamped with the invocation) and int_identity_map (with the build's `written_at`)
    test the uniqueness of the rows the build wrote: a nightly run does not read the whole history for it."""
    shutil.copytree(demo_run.data_dir, tmp_path / "data")
    warehouse = tmp_path / "data" / "warehouse.duckdb"
    build = ("build", *IDENTITY_CHAIN, "--vars", json.dumps(load_settings().dbt_vars(warehouse)))
    with duckdb.connect(str(warehouse)) as con:
        # damage outside any build: a second row for one record. The first record by key, not any row: the night's
        # build replaces the rows of the person it touches, and an arbitrary row was sometimes theirs.
        for table in PERSON_TABLES:
            first = f"from intermediate.{table} order by source, record_id limit 1"
            con.execute(f"insert into intermediate.{table} {first}")
        # the night stages one new account (a copy of the newest, the first by id among those loaded last)
        con.execute("""
            insert into staging.stg_webshop__customers
            select * replace ('NIGHT-' || customer_id as customer_id, _loaded_at + interval 1 minute as _loaded_at)
            from staging.stg_webshop__customers order by _loaded_at desc, customer_id limit 1""")

    nightly = run_dbt(warehouse, *build)
    assert nightly.returncode == 0, nightly.stdout[-3000:]  # the night's rows are unique; the old duplicates not its
    with duckdb.connect(str(warehouse), read_only=True) as con:
        newest = con.execute("""
            select (select count(*) from intermediate.int_identity_components
                    where _invocation_id = (select max_by(_invocation_id, resolution)
                                            from intermediate.int_identity_components)
                      and record_id like 'NIGHT-%'),
                   (select count(*) from intermediate.int_identity_map
                    where written_at = (select max(written_at) from intermediate.int_identity_map)
                      and record_id like 'NIGHT-%')""").fetchone()
    assert newest == (1, 1)  # the build wrote the new account's rows, which its tests checked

    whole = run_dbt(warehouse, "test", "--select", *PERSON_TABLES)
    assert whole.returncode == 1, whole.stdout[-3000:]
    assert whole.stdout.count("Got 1 result") == 2, whole.stdout[-3000:]  # each duplicate, found by dbt test alone
