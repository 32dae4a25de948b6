"""Why is this one person, and why not one with that other profile: a person's identity graph and decisions, in words.

    python -m pipeline.cli identity explain --email budi@x.id | --phone 0812… | --customer-id C… / W…

Reads the identity tables of the warehouse (int_identifiers, int_identity_links, int_identity_matches,
int_identity_map) and prints: the records of the person per source, each identifier value with whether it links
and why not, and every matcher decision that involves the person's profiles with its evidence. It prints the
person's own identifier values for the analyst who asked, never names, and writes nothing to any log.
"""

from __future__ import annotations

import duckdb
import polars as pl

from pipeline.lib.identity import IdentityRules, normalise_emails
from pipeline.lib.phones import normalise_phones


def find_customer(
    con: duckdb.DuckDBPyConnection,
    *,
    email: str | None = None,
    phone: str | None = None,
    customer_id: str | None = None,
    rules: IdentityRules,
) -> list[str]:
    """The customer ids holding the given email, phone or id (a CDP id or a webshop account id)."""
    if email is not None or phone is not None:
        id_type = "email" if email is not None else "phone"
        value = (
            normalise_emails(pl.Series([email]))
            if email is not None
            else normalise_phones(pl.Series([phone]), rules.default_region)
        ).item()
        if value is None:
            raise ValueError(f"not a valid {id_type}" + (f" (region {rules.default_region})" if phone else ""))
        found = con.execute(
            """
            select distinct m.customer_id from intermediate.int_identifiers as i
            join intermediate.int_identity_map as m using (source, record_id)
            where i.id_type = ? and i.value = ? and m.customer_id is not null""",
            [id_type, value],
        ).fetchall()
    elif customer_id is not None:
        key = customer_id.strip()
        found = con.execute(
            """
            select distinct customer_id from intermediate.int_identity_map where customer_id = ?
            union
            select distinct m.customer_id from intermediate.int_identity_map as m
            where m.source = 'webshop_customer' and m.record_id = ? and m.customer_id is not null""",
            [key, key],
        ).fetchall()
    else:
        raise ValueError("give an email, a phone or a customer id")
    return sorted(row[0] for row in found)


def explain(con: duckdb.DuckDBPyConnection, customer_id: str) -> str:
    """The identity graph and decisions of one customer id, as text."""
    records = con.execute(
        """
        select m.source, m.record_id, l.profile_key
        from intermediate.int_identity_map as m
        left join (select distinct source, record_id, profile_key from intermediate.int_identity_links) as l
            using (source, record_id)
        where m.customer_id = ?""",
        [customer_id],
    ).pl()
    if records.is_empty():
        return f"{customer_id}: no such customer id"
    con.register("_explain_records", records.to_arrow())
    values = con.execute("""
        select l.id_type, l.value, count(*) as records,
               bool_or(l.linked) as links_some, bool_and(l.linked) as links_all,
               any_value(l.reason) as reason, any_value(l.detail) as detail
        from intermediate.int_identity_links as l join _explain_records using (source, record_id)
        where l.id_type is not null
        group by l.id_type, l.value order by l.id_type, l.value""").pl()
    rejected = con.execute("""
        select i.id_type, i.raw_value, i.status, i.reason, count(*) as records
        from intermediate.int_identifiers as i join _explain_records using (source, record_id)
        where i.status <> 'ok' group by all order by all""").pl()
    profiles = records.get_column("profile_key").drop_nulls().unique().to_list()
    decisions = con.execute(
        """
        select left_key, right_key, id_type, match_probability, first_name_level, last_name_level, city_level,
               email_level, activity_level, two_accounts, linked
        from intermediate.int_identity_matches
        where left_key in (select unnest(?::varchar[])) or right_key in (select unnest(?::varchar[]))
        order by match_probability desc""",
        [profiles, profiles],
    ).pl()
    con.unregister("_explain_records")

    lines = [f"customer {customer_id}: {records.height} records in {len(profiles)} rule profile(s)"]
    lines += [
        f"  {source}: {n} record(s)"
        for source, n in records.group_by("source").agg(pl.len()).sort("source").iter_rows()
    ]
    lines.append("identifiers (linked = joins this person's records; otherwise the rule that refused it):")
    # System keys that all link say nothing: one line per type (an account's orders are its order ids).
    quiet = (
        values.group_by("id_type")
        .agg(n=pl.len(), all_linked=pl.col("links_all").all())
        .filter(pl.col("all_linked") & (pl.col("n") > 3))
    )
    for id_type, n, _ in quiet.sort("id_type").iter_rows():
        lines.append(f"  {id_type:<22} {n} values, all linked")
    for row in values.join(quiet, on="id_type", how="anti").iter_rows(named=True):
        state = (
            "linked"
            if row["links_all"]
            else (f"{row['reason']}: {row['detail']}" + (" (links some records)" if row["links_some"] else ""))
        )
        lines.append(f"  {row['id_type']:<22} {row['value']:<32} {row['records']:>4} record(s)  {state}")
    for row in rejected.iter_rows(named=True):
        lines.append(
            f"  {row['id_type']:<22} {row['raw_value']!r:<32} {row['records']:>4} record(s)  "
            f"{row['status']}: {row['reason']}"
        )
    if decisions.is_empty():
        lines.append("matcher: no candidate pairs (no shared value joins this person's profiles to another)")
    else:
        lines.append("matcher decisions (profiles joined only by a shared value):")
        for row in decisions.iter_rows(named=True):
            verdict = "LINKED" if row["linked"] else ("apart: two accounts" if row["two_accounts"] else "apart")
            lines.append(
                f"  {row['left_key']} ~ {row['right_key']} via {row['id_type']}: "
                f"p={row['match_probability']:.3f} {verdict}"
            )
            lines.append(
                f"      first name: {row['first_name_level']}; last name: {row['last_name_level']}; "
                f"city: {row['city_level']}; email: {row['email_level']}; activity: {row['activity_level']}"
            )
    return "\n".join(lines)
