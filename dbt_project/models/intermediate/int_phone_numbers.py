"""Every distinct phone spelling in the staged sources, parsed to E.164 once and kept (see pipeline/lib/phones.py).

Incremental: a nightly run reads the phone columns of the rows staged since the table was last built
(`staged_until`, identity.staged_since) and parses only the spellings the table does not hold yet. It writes the
night's spellings again with the new stamp (delete+insert by spelling); the other rows never leave the warehouse,
and a spelling no longer staged stays as a parse to reuse (records leave staging only through erasure, which deletes
an erased person's spellings here itself: pipeline/lib/erasure.py). A first run, a full rebuild (`--vars
'{identity_full_rebuild: true}'`) or another region or parser version reads every staged spelling (reusing earlier
parses of the same region and parser) and drops the rows of spellings no longer staged (a tombstone per spelling: a
null `parser`, deleted by the post-hook)."""

import json

import polars as pl


def rebuild_needed(session, this, exists, region, parser):
    """Whether the table as the last run left it cannot simply grow: absent, of an older layout, or holding parses of
    another region or parser version."""
    from pipeline.lib.identity import STAGED_UNTIL

    if not exists or STAGED_UNTIL not in session.table(this).columns:
        return True
    other = session.execute(
        f"select count(*) from {this} where region is distinct from ? or parser is distinct from ?", [region, parser]
    ).fetchone()[0]
    return other > 0


def model(dbt, session):
    dbt.config(
        materialized="incremental",
        incremental_strategy="delete+insert",
        unique_key="raw_phone",
        on_schema_change="sync_all_columns",
    )
    from pipeline.lib.identity import STAGED_UNTIL, IdentityRules, record_sources, staged_since, staged_until
    from pipeline.lib.phones import PARSER, compact, known_phones, normalise_phones
    from pipeline.lib.warehouse import table_exists

    rules = IdentityRules.from_config(json.loads(dbt.config.get("identity_rules")))
    full_rebuild = str(dbt.config.get("identity_full_rebuild")).lower() in ("true", "1", "yes")
    # dbt only sees refs written as literals
    models = {
        "stg_webshop__customers": dbt.ref("stg_webshop__customers"),
        "stg_webshop__orders": dbt.ref("stg_webshop__orders"),
        "stg_helpdesk__tickets": dbt.ref("stg_helpdesk__tickets"),
        "stg_survey__responses": dbt.ref("stg_survey__responses"),
    }
    this = f"{dbt.this.schema}.{dbt.this.identifier}"
    exists = table_exists(session, this)
    rebuild = full_rebuild or rebuild_needed(session, this, exists, rules.default_region, PARSER)
    until = staged_until(models)
    since = None if rebuild else session.execute(f"select max({STAGED_UNTIL}) from {this}").fetchone()[0]
    staged = models if since is None else staged_since(models, since)

    # every phone column of the source registry's person records (the ones int_identifiers reads)
    spellings = pl.concat(
        [
            staged[source.model].project(f'cast("{column}" as varchar) as raw').distinct().pl().get_column("raw")
            for source in record_sources()
            for column, id_type in source.identifiers
            if id_type == "phone"
        ]
    )
    keys = compact(spellings).drop_nulls().unique().sort()
    if rebuild:  # earlier parses of the same region and parser are reused
        known = known_phones(session, this, rules.default_region)
    else:  # the table's rows of these spellings, written again with today's stamp (the next run's watermark)
        known = session.execute(
            f"select raw_phone, phone_e164 from {this} semi join (select unnest(?::varchar[]) as raw_phone) "
            "using (raw_phone)",
            [keys.to_list()],
        ).pl()
    e164 = normalise_phones(keys, rules.default_region, known, rules.phone_parse_workers)
    stamp = pl.lit(until, dtype=pl.Datetime("us"))
    rows = pl.DataFrame({"raw_phone": keys, "phone_e164": e164}).with_columns(
        region=pl.lit(rules.default_region), parser=pl.lit(PARSER), **{STAGED_UNTIL: stamp}
    )
    if rebuild and exists:  # spellings no longer staged (or parsed under other settings) leave the table
        gone = session.execute(f"select distinct raw_phone from {this}").pl()
        rows = pl.concat([rows, gone.filter(~gone.get_column("raw_phone").is_in(keys.implode()))], how="diagonal")
    return rows.to_arrow()
