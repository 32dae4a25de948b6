"""One row per source record x identifier it carries, with the value made canonical (pipeline/lib/identity.py).

Rows whose value is junk or malformed stay with status 'invalid' or 'blocklisted', a null value and the reason, so
identity_violations counts every rejected value; only status 'ok' rows can link records.

The rows never leave the warehouse: only distinct spellings that need it are normalised in Python
(identity.normalised_rows), then joined back there. Spellings the previous version of this table already looked up,
with the same lookup rules (`normaliser`: identity.lookup_digest), are reused, so a nightly run normalises only new
spellings.
"""

import json


def earlier_lookups(session, this, digest):
    """Whether the table as the last run left it holds lookups made as this run would make them."""
    from pipeline.lib.warehouse import table_exists

    if not table_exists(session, f"{this.schema}.{this.identifier}"):
        return False
    if "normaliser" not in session.sql(f"select * from {this} limit 0").columns:
        return False
    other = session.execute(f"select count(*) from {this} where normaliser is distinct from ?", [digest]).fetchone()
    return other[0] == 0


def model(dbt, session):
    dbt.config(materialized="table")
    from pipeline.lib.identity import IdentityRules, identifier_rows, lookup_digest, normalised_rows

    # dbt only sees refs written as literals
    staged = {
        "stg_webshop__customers": dbt.ref("stg_webshop__customers"),
        "stg_webshop__orders": dbt.ref("stg_webshop__orders"),
        "stg_helpdesk__tickets": dbt.ref("stg_helpdesk__tickets"),
        "stg_survey__responses": dbt.ref("stg_survey__responses"),
    }
    phones = dbt.ref("int_phone_numbers")
    rules = IdentityRules.from_config(json.loads(dbt.config.get("identity_rules")))
    digest = lookup_digest(rules)
    known = str(dbt.this) if earlier_lookups(session, dbt.this, digest) else None
    rows = normalised_rows(session, identifier_rows(staged), rules, phones.pl(), known)
    session.execute("create or replace temp table identity_lookup_rules as select ? as normaliser", [digest])
    return rows.cross(session.table("identity_lookup_rules"))
