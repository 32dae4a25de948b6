{#- Generated from pipeline/lib/sources/registry.py by `python -m pipeline.lib.sources.registry`. -#}
{% macro contract_accepted_values(raw_table, raw_column) -%}
    {%- set accepted = {"helpdesk_tickets": {"channel": ["email", "whatsapp", "instagram", "facebook", "phone", "chat"], "satisfaction": ["good", "bad"], "status": ["new", "open", "pending", "solved", "closed"]}, "survey_responses": {"survey": ["nps", "csat"]}, "webshop_customers": {"customer_type": ["end_customer", "agent", "reseller"]}, "webshop_order_items": {}, "webshop_orders": {"channel": ["web", "app", "marketplace", "store"], "status": ["pending", "paid", "shipped", "completed", "cancelled", "refunded"]}} -%}
    {{ return(accepted[raw_table][raw_column]) }}
{%- endmacro %}
