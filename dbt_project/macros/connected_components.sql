{#-
    Connected components of a bipartite record-value graph, by label propagation in plain SQL.

    `links`: a relation with columns record_key, value_key (one row per link). Records and values are numbered once,
    in key order (Spark numbers rows only in an order), so the rounds join integers, not text. Every record starts
    labelled with its own number; each round a value takes the smallest label of its records, then each record the
    smallest label of its values.
    When a round changes nothing the labels are the components, each named by its smallest record key. Rounds are
    bounded by the graph's diameter; `max_rounds` guards against a runaway (an error, never a partial answer).
    Returns the name of a table (record_key, component) that lives for the session.
-#}
{% macro connected_components(links, max_rounds=100) %}
    {%- set record_numbers = '__identity_record_numbers' -%}
    {%- set value_numbers = '__identity_value_numbers' -%}
    {%- set edges = '__identity_edges' -%}
    {%- set labels = '__identity_labels' -%}
    {%- set next_labels = '__identity_labels_next' -%}
    {%- set components = '__identity_components' -%}
    {%- if execute -%}
        {#- the links are read once, not in every round -#}
        {%- do create_scratch_table(record_numbers,
            'select record_key, row_number() over (order by record_key) as r'
            ~ ' from (select distinct record_key from ' ~ links ~ ') as keys') -%}
        {%- do create_scratch_table(value_numbers,
            'select value_key, row_number() over (order by value_key) as v'
            ~ ' from (select distinct value_key from ' ~ links ~ ') as keys') -%}
        {%- do create_scratch_table(edges,
            'select distinct records.r, vals.v from ' ~ links ~ ' as l'
            ~ ' join ' ~ record_numbers ~ ' as records on records.record_key = l.record_key'
            ~ ' join ' ~ value_numbers ~ ' as vals on vals.value_key = l.value_key') -%}
        {%- do create_scratch_table(labels, 'select r, r as component from ' ~ record_numbers) -%}
        {%- for round in range(max_rounds) -%}
            {%- do create_scratch_table(next_labels,
                'with value_labels as ('
                ~ '    select e.v, min(l.component) as component'
                ~ '    from ' ~ edges ~ ' as e join ' ~ labels ~ ' as l on l.r = e.r'
                ~ '    group by e.v'
                ~ ') '
                ~ 'select e.r, least(min(v.component), min(l.component)) as component'
                ~ ' from ' ~ edges ~ ' as e'
                ~ ' join value_labels as v on v.v = e.v'
                ~ ' join ' ~ labels ~ ' as l on l.r = e.r'
                ~ ' group by e.r') -%}
            {%- set changed = run_query(
                'select count(*) from ' ~ next_labels ~ ' as n join ' ~ labels ~ ' as o on o.r = n.r'
                ~ ' where n.component <> o.component').columns[0].values()[0] -%}
            {%- do create_scratch_table(labels, 'select * from ' ~ next_labels) -%}
            {%- if changed == 0 -%}
                {%- do create_scratch_table(components,
                    'select records.record_key, named.record_key as component from ' ~ labels ~ ' as l'
                    ~ ' join ' ~ record_numbers ~ ' as records on records.r = l.r'
                    ~ ' join ' ~ record_numbers ~ ' as named on named.r = l.component') -%}
                {{ return(components) }}
            {%- endif -%}
        {%- endfor -%}
        {{ exceptions.raise_compiler_error('connected_components did not converge in ' ~ max_rounds ~ ' rounds') }}
    {%- endif -%}
    {{ return(components) }}
{% endmacro %}
