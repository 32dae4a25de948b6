"""Every distinct phone spelling in the staged sources, parsed to E.164 once and kept (see pipeline/lib/phones.py).

The previous version of this table is read before dbt replaces it: spellings parsed before, in the same region with
the same parser version, are reused, so a nightly run parses only new spellings. Only spellings still present in
staging are kept, so an erased phone leaves this table with the next run.
"""

import json

import polars as pl


def model(dbt, session):
    dbt.config(materialized="table")
    from pipeline.lib.identity import IdentityRules, record_sources
    from pipeline.lib.phones import PARSER, compact, known_phones, normalise_phones

    rules = IdentityRules.from_config(json.loads(dbt.config.get("identity_rules")))
    # dbt only sees refs written as literals
    models = {
        "stg_webshop__customers": dbt.ref("stg_webshop__customers"),
        "stg_webshop__orders": dbt.ref("stg_webshop__orders"),
        "stg_helpdesk__tickets": dbt.ref("stg_helpdesk__tickets"),
        "stg_survey__responses": dbt.ref("stg_survey__responses"),
    }
    # every phone column of the source registry's person records (the ones int_identifiers reads)
    spellings = pl.concat(
        [
            models[source.model].project(f'cast("{column}" as varchar) as raw').distinct().pl().get_column("raw")
            for source in record_sources()
            for column, id_type in source.identifiers
            if id_type == "phone"
        ]
    )
    keys = compact(spellings).drop_nulls().unique().sort()
    known = known_phones(session, f"{dbt.this.schema}.{dbt.this.identifier}", rules.default_region)
    e164 = normalise_phones(keys, rules.default_region, known, rules.phone_parse_workers)
    return (
        pl.DataFrame({"raw_phone": keys, "phone_e164": e164})
        .with_columns(region=pl.lit(rules.default_region), parser=pl.lit(PARSER))
        .to_arrow()
    )
