{#-
    Connected components of a bipartite record-value graph, by label propagation in plain SQL.

    `links`: a relation with columns record_key, value_key (one row per link). Every record starts labelled with its
    own key; each round a value takes the smallest label of its records, then each record the smallest label of its
    values. When a round changes nothing the labels are the components (each named by its smallest record key).
    Rounds are bounded by the graph's diameter; `max_rounds` guards against a runaway (an error, never a partial
    answer). Returns the name of a table (record_key, component) that lives for the session.
-#}
{% macro connected_components(links, max_rounds=100) %}
    {%- set edges = '__identity_edges' -%}
    {%- set labels = '__identity_labels' -%}
    {%- set next_labels = '__identity_labels_next' -%}
    {%- if execute -%}
        {#- the links are read once, not in every round -#}
        {%- do create_scratch_table(edges, 'select distinct record_key, value_key from ' ~ links) -%}
        {%- set links = edges -%}
        {%- do create_scratch_table(labels,
            'select record_key, min(record_key) as component from ' ~ links ~ ' group by record_key') -%}
        {%- for round in range(max_rounds) -%}
            {%- do create_scratch_table(next_labels,
                'with value_labels as ('
                ~ '    select l.value_key, min(r.component) as component'
                ~ '    from ' ~ links ~ ' as l join ' ~ labels ~ ' as r on r.record_key = l.record_key'
                ~ '    group by l.value_key'
                ~ ') '
                ~ 'select l.record_key, least(min(v.component), min(r.component)) as component'
                ~ ' from ' ~ links ~ ' as l'
                ~ ' join value_labels as v on v.value_key = l.value_key'
                ~ ' join ' ~ labels ~ ' as r on r.record_key = l.record_key'
                ~ ' group by l.record_key') -%}
            {%- set changed = run_query(
                'select count(*) from ' ~ next_labels ~ ' as n join ' ~ labels ~ ' as o using (record_key)'
                ~ ' where n.component <> o.component').columns[0].values()[0] -%}
            {%- do create_scratch_table(labels, 'select * from ' ~ next_labels) -%}
            {%- if changed == 0 -%}
                {{ return(labels) }}
            {%- endif -%}
        {%- endfor -%}
        {{ exceptions.raise_compiler_error('connected_components did not converge in ' ~ max_rounds ~ ' rounds') }}
    {%- endif -%}
    {{ return(labels) }}
{% endmacro %}
