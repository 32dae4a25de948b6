"""The probabilistic matcher's model (pipeline/lib/identity_matching.py): one row, the Splink model as JSON.

Trained (u by random sampling, m by expectation maximisation) on the candidates of a sample of whole neighbourhoods
(about identity_matching.TRAINING_ROWS link rows; all of them when there are fewer) on the first run and on every
full rebuild (`--vars '{identity_full_rebuild: true}'`) or when the stored model is of another MODEL_VERSION; other
runs keep the stored model, so nightly runs score the day's candidates with the model the full run learned.
"""

import json

import polars as pl


def model(dbt, session):
    dbt.config(materialized="table")  # identity_full_rebuild comes from the YAML config (a dbt var)
    from pipeline.lib.identity import DUCKDB_SHARE_BESIDE_FRAMES, duckdb_limits
    from pipeline.lib.identity_matching import MODEL_VERSION, TRAINING_ROWS, chunked_candidate_entities, train
    from pipeline.lib.warehouse import memory_share, table_exists

    full_rebuild = str(dbt.config.get("identity_full_rebuild")).lower() in ("true", "1", "yes")
    if not full_rebuild and table_exists(session, f"{dbt.this.schema}.{dbt.this.identifier}"):
        kept = session.sql(f"select * from {dbt.this}").pl()
        if kept.height and "version" in kept.columns and kept.get_column("version")[0] == MODEL_VERSION:
            return kept.to_arrow()
    links, records, identifiers = (
        dbt.ref("int_identity_links"),
        dbt.ref("int_identity_records"),
        dbt.ref("int_identifiers"),
    )
    run_date = dbt.ref("int_run_date").pl().get_column("run_date")[0]
    limits = duckdb_limits(dbt.config.get("duckdb_memory_limit"), dbt.config.get("duckdb_temp_directory"))
    # The entities of a sample of whole neighbourhoods, a group at a time, with the warehouse's DuckDB at a share of
    # its memory beside the frames.
    with memory_share(session, limits["memory_limit"], DUCKDB_SHARE_BESIDE_FRAMES):
        entities = chunked_candidate_entities(session, links, records, identifiers, sample_rows=TRAINING_ROWS)
    pairs = entities.group_by("shared").agg(k=pl.len()).select((pl.col("k") * (pl.col("k") - 1) // 2).sum()).item()
    return pl.DataFrame(
        {
            "trained_on": [run_date],
            "candidate_pairs": [int(pairs or 0)],
            "version": [MODEL_VERSION],
            "model": [json.dumps(train(entities, duckdb_config=limits), sort_keys=True)],
        }
    ).to_arrow()
