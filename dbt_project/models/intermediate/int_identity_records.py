"""One row per staged record of a person with what the identity rules and the matcher read besides identifiers: the
name (parts joined), how trustworthy that name is (name_rank: an account's before a helpdesk display name), the city,
the day the record was seen and whether it states the person's current contacts (an account). Columns come from the
source registry (pipeline/lib/sources/registry.py: Column.match, event column). Built in the warehouse
(identity.record_rows): no row leaves it."""


def model(dbt, session):
    dbt.config(materialized="table")
    from pipeline.lib.identity import record_rows

    # dbt only sees refs written as literals
    staged = {
        "stg_webshop__customers": dbt.ref("stg_webshop__customers"),
        "stg_webshop__orders": dbt.ref("stg_webshop__orders"),
        "stg_helpdesk__tickets": dbt.ref("stg_helpdesk__tickets"),
        "stg_survey__responses": dbt.ref("stg_survey__responses"),
    }
    return record_rows(staged)
