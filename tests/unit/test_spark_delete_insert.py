"""The Spark path's delete+insert of an incremental Python model (pipeline/lib/spark.py) does what dbt-duckdb's
incremental materialization and the model's post-hook do: replace the rows of the returned keys and drop the
tombstones (dbt-spark's session mode runs no hooks). Runs on the in-memory DuckDB the path computes in."""

import duckdb
import pyarrow as pa

from pipeline.lib.spark import _delete_insert, _This

MATCHES_CONFIG = {
    "materialized": "incremental",
    "incremental_strategy": "delete+insert",
    "unique_key": "left_key",
    "post-hook": [{"sql": "{{ delete_identity_tombstones('model_digest') }}", "transaction": True, "index": None}],
}


def test_returned_keys_replace_their_rows_and_tombstones_go():
    with duckdb.connect() as local:
        local.execute("create schema intermediate")
        local.execute("""
            create table intermediate.int_identity_matches as
            select * from (values ('a', 'b', 'm1'), ('a', 'c', 'm1'), ('d', 'e', 'm1'), ('f', 'g', 'm1'))
                as t(left_key, right_key, model_digest)""")
        night = pa.table(
            {
                "left_key": ["a", "d"],  # a: scored again (one pair left); d: no pair left (a tombstone)
                "right_key": ["c", None],
                "model_digest": ["m1", None],
            }
        )
        table = _delete_insert(local, _This("intermediate", "int_identity_matches"), night, MATCHES_CONFIG)
    assert sorted(zip(table["left_key"].to_pylist(), table["right_key"].to_pylist(), strict=True)) == [
        ("a", "c"),
        ("f", "g"),
    ]


def test_without_the_hook_a_null_column_stays():
    config = {k: v for k, v in MATCHES_CONFIG.items() if k != "post-hook"}
    with duckdb.connect() as local:
        local.execute("create table main.t as select 'a' as left_key, 'x' as model_digest")
        table = _delete_insert(local, _This("main", "t"), pa.table({"left_key": ["b"], "model_digest": [None]}), config)
    assert sorted(table["left_key"].to_pylist()) == ["a", "b"]
