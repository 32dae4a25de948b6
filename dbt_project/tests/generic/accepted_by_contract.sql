{#- The column holds only the values the source registry accepts for it (pipeline/lib/sources/registry.py, via the
    generated macro `contract_accepted_values`): one declaration for landing, the raw checks and dbt. -#}
{% test accepted_by_contract(model, column_name, raw_table, raw_column=none) %}
    {{ adapter.dispatch('test_accepted_values', 'dbt')(model, column_name,
                                                        contract_accepted_values(raw_table, raw_column or column_name)) }}
{% endtest %}
