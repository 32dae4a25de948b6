"""The serving copy as BI clients see it: SQLAlchemy + duckdb-engine reflection (the stack the README pins), pandas and
pyarrow on the Parquet folders. Tables carry their descriptions, integer types are ones drivers know, lists come as
bridge tables too."""

from __future__ import annotations

import duckdb
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from pipeline.lib import serving


@pytest.fixture
def published(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema marts")
        con.execute("""create table marts.customer_profile (customer_id varchar, marketing_consent boolean,
                       channels varchar[], orders uinteger, revenue hugeint)""")
        con.execute(
            "insert into marts.customer_profile values ('C1', true, ['web', 'app'], 3, 120000), "
            "('C2', false, [], 1, 5000), ('C3', null, null, 0, 0)"
        )
        con.execute("create table marts.fct_orders (order_id varchar, customer_id varchar, net_amount double)")
        con.execute("insert into marts.fct_orders values ('O1', 'C1', 100.0), ('O2', 'C9', 5.5)")
        con.execute("comment on table marts.customer_profile is 'One row per person: the golden record.'")
        con.execute("comment on table marts.fct_orders is 'One row per order, it''s the fact table.'")
        for column, text in {
            "customer_id": "Person key.",
            "marketing_consent": "Agreed to marketing.",
            "channels": "Channels the person used.",
            "orders": "Orders placed.",
            "revenue": "Net revenue in the shop currency.",
        }.items():
            con.execute(f"comment on column marts.customer_profile.{column} is '{text}'")
        facts = {"order_id": "Order key.", "customer_id": "Person key.", "net_amount": "Net amount."}
        for column, text in facts.items():
            con.execute(f"comment on column marts.fct_orders.{column} is '{text}'")
    out = tmp_path / "serving"
    serving.publish(warehouse, out)
    return out


def test_sqlalchemy_reflects_tables_types_and_descriptions_read_only(published):
    engine = sa.create_engine(f"duckdb:///{published / 'cdp.duckdb'}", connect_args={"read_only": True})
    inspector = sa.inspect(engine)
    # Served as views over the Parquet files (the data is written once); BI tools list views beside tables.
    assert set(inspector.get_view_names(schema="marts")) == {
        "customer_profile",
        "customer_profile__channels",
        "fct_orders",
    }
    for table in inspector.get_view_names(schema="marts"):
        assert inspector.get_table_comment(table, schema="marts")["text"], f"{table} has no description"
        columns = inspector.get_columns(table, schema="marts")
        assert all(c["comment"] for c in columns), f"{table}: {[c['name'] for c in columns if not c['comment']]}"
    types = {c["name"]: str(c["type"]) for c in inspector.get_columns("customer_profile", schema="marts")}
    assert types["orders"] == types["revenue"] == "BIGINT"
    # The bridge holds one row per list element, keyed like its table.
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select customer_id, channels from marts.customer_profile__channels order by 1, 2")
        ).fetchall()
        assert [tuple(r) for r in rows] == [("C1", "app"), ("C1", "web")]
        # marketing_consent added to the order fact from the profile (C9 has no profile: no consent).
        consent = dict(conn.execute(sa.text("select order_id, marketing_consent from marts.fct_orders")).fetchall())
        assert consent == {"O1": True, "O2": False}
        with pytest.raises(sa.exc.DBAPIError, match="read-only"):
            conn.execute(sa.text("create table marts.scratch as select * from marts.fct_orders"))


def test_parquet_one_folder_per_table_with_field_descriptions(published):
    import pandas as pd  # here, not at the top: every xdist worker collects this file, one runs it

    folders = sorted(p.name for p in (published / "parquet").iterdir())
    assert folders == ["customer_profile", "customer_profile__channels", "fct_orders"]
    frame = pd.read_parquet(published / "parquet" / "fct_orders")
    assert list(frame.columns) == ["order_id", "customer_id", "net_amount", "marketing_consent"]
    assert len(frame) == 2
    schema = pq.read_schema(next((published / "parquet" / "customer_profile").glob("*.parquet")))
    assert schema.metadata[b"description"] == b"One row per person: the golden record."
    assert schema.field("channels").metadata[b"description"] == b"Channels the person used."
    assert str(schema.field("orders").type) == "int64"
