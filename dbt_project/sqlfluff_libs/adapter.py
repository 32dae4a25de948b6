"""`adapter` for sqlfluff's Jinja templater, which lints the models without dbt: dispatch picks the default (DuckDB)
implementation of a macro in macros/portable, quote quotes an identifier as DuckDB does, get_columns_in_relation
knows no columns."""

from jinja2 import pass_context


@pass_context
def dispatch(context, macro_name: str, macro_namespace: str | None = None):
    return context[f"default__{macro_name}"]


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def get_columns_in_relation(relation) -> list:
    """No warehouse to ask while linting: the relation's columns are unknown."""
    return []
