"""Probabilistic matching of profiles that only a shared value joins (Fellegi-Sunter with Splink on DuckDB).

The identity rules (pipeline.lib.identity) refuse to hard-link a value that several people share: a household's
landline, a courier's number, a recycled phone, a family's WhatsApp requester id. The profiles such a value touches
are still candidates: a WhatsApp ticket signed "Bu Ayu" from the family phone is Ayu's, not her brother Dedi's.
This module scores every candidate pair of profiles on first name, last name, city and activity period, and links
the pairs at or above the configured match probability.

The model (m and u probabilities per comparison level) starts from the documented priors below, is trained
unsupervised (u by random sampling, m by expectation maximisation) on full runs, and is kept as JSON so that nightly
runs score with the same model. Splink runs in an in-memory DuckDB; it logs no values.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date

import duckdb
import polars as pl

# Splink's own INFO lines are progress chatter; values never reach a log either way.
logging.getLogger("splink").setLevel(logging.WARNING)

ACTIVE_NEAR_DAYS = 180  # activity periods overlapping or this close are one level, within a year and a half another
ACTIVE_FAR_DAYS = 540
# Share of candidate pairs that are one person (the prior): a shared value's profiles are often one person's split
# records, often relatives.
CANDIDATE_PRIOR = 0.3
EPOCH = date(1970, 1, 1)
# One person's fragments that only a shared number joins are active at about the same time; the old and new holder
# of a recycled number are not. EM over the training pairs (one person's split records spread over years) would
# flatten this, so the activity m probabilities stay these priors.
ACTIVITY_M = [0.9, 0.09, 0.01]
# Bump when the comparisons change: a stored model of another version is trained again, never reused.
MODEL_VERSION = 1
RETAINED = ["profile_key", "has_account"]
ENTITY_SCHEMA = {
    "unique_id": pl.Utf8,
    "profile_key": pl.Utf8,
    "shared": pl.Utf8,
    "first_name": pl.Utf8,
    "last_name": pl.Utf8,
    "city": pl.Utf8,
    "email": pl.Utf8,
    "active_from": pl.Int64,
    "active_to": pl.Int64,
    "has_account": pl.Boolean,
}
DECISION_SCHEMA = {
    "left_key": pl.Utf8,
    "right_key": pl.Utf8,
    "shared": pl.Utf8,
    "match_probability": pl.Float64,
    "match_weight": pl.Float64,
    "first_name": pl.Utf8,
    "last_name": pl.Utf8,
    "city": pl.Utf8,
    "email": pl.Utf8,
    "activity": pl.Utf8,
    "two_accounts": pl.Boolean,
}


def _settings():
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    def name(column: str, m: list[float], u: list[float]):
        return cl.CustomComparison(
            output_column_name=column,
            comparison_levels=[
                cll.NullLevel(column),
                cll.ExactMatchLevel(column),
                # A typo keeps the first letter; Hadi and Adi are two names.
                cll.CustomLevel(
                    f"jaro_winkler_similarity({column}_l, {column}_r) >= 0.88 "
                    f"and substr({column}_l, 1, 1) = substr({column}_r, 1, 1)",
                    f"{column} alike (Jaro-Winkler >= 0.88, same first letter)",
                ),
                cll.ElseLevel(),
            ],
        ).configure(m_probabilities=m, u_probabilities=u)

    gap = "greatest(active_from_l, active_from_r) - least(active_to_l, active_to_r)"
    activity = cl.CustomComparison(
        output_column_name="activity",
        comparison_levels=[
            cll.CustomLevel("active_from_l is null or active_from_r is null").configure(is_null_level=True),
            cll.CustomLevel(f"{gap} <= {ACTIVE_NEAR_DAYS}", f"active within {ACTIVE_NEAR_DAYS} days of each other"),
            cll.CustomLevel(f"{gap} <= {ACTIVE_FAR_DAYS}", f"active within {ACTIVE_FAR_DAYS} days of each other"),
            cll.ElseLevel(),
        ],
    ).configure(m_probabilities=ACTIVITY_M, u_probabilities=[0.6, 0.2, 0.2])
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=[
            # Priors: one person's two records rarely carry unlike first names; relatives often share a last name.
            name("first_name", m=[0.88, 0.11, 0.01], u=[0.03, 0.02, 0.95]),
            name("last_name", m=[0.85, 0.1, 0.05], u=[0.05, 0.03, 0.92]),
            cl.ExactMatch("city").configure(m_probabilities=[0.85, 0.15], u_probabilities=[0.15, 0.85]),
            # Two fragments of one person that both carry an email mostly carry the same one.
            cl.ExactMatch("email").configure(m_probabilities=[0.9, 0.1], u_probabilities=[0.001, 0.999]),
            activity,
        ],
        blocking_rules_to_generate_predictions=[block_on("shared")],
        probability_two_random_records_match=CANDIDATE_PRIOR,
        retain_intermediate_calculation_columns=True,
        retain_matching_columns=True,
        additional_columns_to_retain=RETAINED,
    )


def entities(candidates: pl.DataFrame, profiles: pl.DataFrame, use: pl.DataFrame) -> pl.DataFrame:
    """One row per (profile, shared value) for the matcher: `candidates` (left_key, right_key, id_type, value),
    `profiles` (profile_key, first_name, last_name, city, email, has_account) and `use` (profile_key, id_type,
    value, active_from, active_to as dates: when the profile's records carrying the value were seen - the old and
    the new holder of a recycled number used it a year apart, however long each stays a customer)."""
    sides = pl.concat(
        [
            candidates.select(profile_key="left_key", id_type="id_type", value="value"),
            candidates.select(profile_key="right_key", id_type="id_type", value="value"),
        ]
    ).unique()
    days = [(pl.col(c) - pl.lit(EPOCH)).dt.total_days().alias(c) for c in ("active_from", "active_to")]
    return (
        sides.join(profiles.drop("active_from", "active_to", strict=False), on="profile_key", how="left")
        .join(use.with_columns(days), on=["profile_key", "id_type", "value"], how="left")
        .select(
            unique_id=pl.concat_str(["profile_key", pl.lit("|"), "id_type", pl.lit(":"), "value"]),
            profile_key="profile_key",
            shared=pl.concat_str(["id_type", pl.lit(":"), "value"]),
            first_name="first_name",
            last_name="last_name",
            city="city",
            email="email",
            active_from="active_from",
            active_to="active_to",
            has_account=pl.col("has_account").fill_null(False),
        )
        .cast(ENTITY_SCHEMA)
        .sort("unique_id")
    )


def _linker(frame: pl.DataFrame, settings, duckdb_config: Mapping[str, str] | None = None):
    from splink import DuckDBAPI, Linker

    from pipeline.lib.identity import local_duckdb

    db_api = DuckDBAPI(connection=local_duckdb(duckdb_config))
    # Arrow, not pandas: DuckDB scans it in place, where a pandas copy held every string as a Python object.
    return Linker(db_api.register(frame.to_arrow()), settings, log_level=None)


def train(frame: pl.DataFrame, seed: int = 1, duckdb_config: Mapping[str, str] | None = None) -> dict:
    """A model trained on `entities` (u by random sampling, m by EM over the candidate pairs); the priors when
    there are too few pairs to learn from. `duckdb_config` bounds Splink's in-memory DuckDB."""
    from splink import block_on

    linker = _linker(frame, _settings(), duckdb_config)
    if frame.get_column("shared").is_duplicated().sum() >= 20:
        linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=seed)
        # EM over the pairs agreeing on the first name teaches the other comparisons. The first name's own m
        # probabilities stay the priors: EM over pairs sharing a last name would take the many relatives for the
        # matching class (measured on the messy data: households then merge).
        linker.training.estimate_parameters_using_expectation_maximisation(
            block_on("shared", "first_name"),
            fix_probability_two_random_records_match=True,
            record_sample_proportion=1.0,
        )
    model = linker.misc.save_model_to_json()
    activity = next(c for c in model["comparisons"] if c["output_column_name"] == "activity")
    levels = [level for level in activity["comparison_levels"] if not level.get("is_null_level")]
    for level, m in zip(levels, ACTIVITY_M, strict=True):
        level["m_probability"] = m
    return model


def score(
    frame: pl.DataFrame, model: dict | None = None, duckdb_config: Mapping[str, str] | None = None
) -> pl.DataFrame:
    """Every candidate pair of profiles with its match probability and the evidence (the level each comparison
    reached); `model` None scores with the priors."""
    if frame.get_column("shared").is_duplicated().sum() == 0:
        return pl.DataFrame(schema=DECISION_SCHEMA)
    settings = {**model, "additional_columns_to_retain": RETAINED} if model is not None else _settings()
    linker = _linker(frame, settings, duckdb_config)
    scored = pl.from_arrow(linker.inference.predict().as_duckdbpyrelation().arrow())
    levels = {
        column: _level_labels(linker, column) for column in ("first_name", "last_name", "city", "email", "activity")
    }
    # The prior holds for a value shared by two or three profiles; among k profiles of one value (a courier's
    # number on many customers' orders) a given pair is one person with odds no better than 1 in k - 1.
    fan_out = frame.group_by("shared").agg(k=pl.len())
    prior_odds = CANDIDATE_PRIOR / (1 - CANDIDATE_PRIOR)
    scored = scored.join(fan_out, left_on="shared_l", right_on="shared").with_columns(
        match_weight=pl.col("match_weight")
        + pl.min_horizontal(pl.lit(0.0), (1 / (pl.col("k") - 2).clip(lower_bound=1) / prior_odds).log(2))
    )
    pairs = scored.select(
        left_key=pl.min_horizontal("profile_key_l", "profile_key_r"),
        right_key=pl.max_horizontal("profile_key_l", "profile_key_r"),
        shared="shared_l",
        match_probability=1 - 1 / (1 + pl.lit(2.0).pow(pl.col("match_weight"))),
        match_weight="match_weight",
        **{
            column: pl.col(f"gamma_{column}").replace_strict(labels, default="?", return_dtype=pl.Utf8)
            for column, labels in levels.items()
        },
        # Two webshop accounts under different emails are two people unless a rule links them: the matcher
        # places fragments (tickets, guest orders) with a person, it never merges two full accounts.
        two_accounts=pl.col("has_account_l") & pl.col("has_account_r") & (pl.col("email_l") != pl.col("email_r")),
    )
    # A pair sharing several values is scored once per value: keep its best-supported row.
    return (
        pairs.sort(["left_key", "right_key", "match_weight", "shared"], descending=[False, False, True, False])
        .unique(["left_key", "right_key"], keep="first")
        .cast(DECISION_SCHEMA)
        .sort("left_key", "right_key")
    )


def _level_labels(linker, column: str) -> dict[int, str]:
    comparison = next(c for c in linker._settings_obj.comparisons if c.output_column_name == column)
    return {level.comparison_vector_value: level.label_for_charts for level in comparison.comparison_levels}


def profiles(clusters: pl.DataFrame, records: pl.DataFrame, identifiers: pl.DataFrame) -> pl.DataFrame:
    """profile_key, first_name, last_name, city, email, active_from, active_to per profile (cluster_key of
    `clusters`) from its records (source, record_id, name, name_rank, city, seen_on) and identifiers (usable ones):
    the most trustworthy name it carries most often, its most frequent city and email, its first and last day."""
    from pipeline.lib.identity import name_parts

    named = records.with_columns(name_parts(records.get_column("name")))
    joined = clusters.select("source", "record_id", profile_key="cluster_key").join(
        named, on=["source", "record_id"], how="left"
    )
    best_name = (
        joined.filter(pl.col("first").is_not_null())
        .group_by("profile_key", "name_rank", "first", "last")
        .agg(n=pl.len())
        .sort(
            ["profile_key", "name_rank", "n", "first", "last"],
            descending=[False, False, True, False, False],
            nulls_last=True,
        )
        .unique("profile_key", keep="first")
        .select("profile_key", first_name="first", last_name="last")
    )
    city = (
        joined.filter(pl.col("city").is_not_null())
        .with_columns(pl.col("city").str.to_lowercase().str.strip_chars())
        .group_by("profile_key", "city")
        .agg(n=pl.len())
        .sort(["profile_key", "n", "city"], descending=[False, True, False])
        .unique("profile_key", keep="first")
        .select("profile_key", "city")
    )
    accounts = (
        identifiers.filter((pl.col("status") == "ok") & (pl.col("id_type") == "webshop_customer_id"))
        .join(clusters.select("source", "record_id", profile_key="cluster_key"), on=["source", "record_id"])
        .select("profile_key")
        .unique()
        .with_columns(has_account=pl.lit(True))
    )
    email = (
        identifiers.filter((pl.col("status") == "ok") & (pl.col("id_type") == "email"))
        .join(clusters.select("source", "record_id", profile_key="cluster_key"), on=["source", "record_id"])
        .group_by("profile_key", "value")
        .agg(n=pl.len())
        .sort(["profile_key", "n", "value"], descending=[False, True, False])
        .unique("profile_key", keep="first")
        .select("profile_key", email="value")
    )
    active = joined.group_by("profile_key").agg(active_from=pl.col("seen_on").min(), active_to=pl.col("seen_on").max())
    return (
        active.join(best_name, on="profile_key", how="left")
        .join(city, on="profile_key", how="left")
        .join(email, on="profile_key", how="left")
        .join(accounts, on="profile_key", how="left")
    )


def accept(decisions: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """decisions + `linked`: pairs at or above `threshold`, best first, unless a link would put two profiles that
    were scored as different people (below the threshold) into one person."""
    decisions = decisions.with_columns(
        match_probability=pl.when(pl.col("two_accounts").fill_null(False)).then(0.0).otherwise("match_probability")
    )
    # Only pairs at or above the threshold can link, and only pairs scored apart among their profiles can stop one:
    # the walk below visits those few, not every candidate pair.
    likely = decisions.filter(pl.col("match_probability") >= threshold).sort(
        ["match_probability", "left_key", "right_key"], descending=[True, False, False]
    )
    keys = pl.concat([likely.get_column("left_key"), likely.get_column("right_key")]).unique().implode()
    apart = set(
        decisions.filter(
            (pl.col("match_probability") < threshold) & pl.col("left_key").is_in(keys) & pl.col("right_key").is_in(keys)
        )
        .select("left_key", "right_key")
        .iter_rows()
    )
    group: dict[str, set[str]] = {}
    linked = []
    for left, right in likely.select("left_key", "right_key").iter_rows():
        ours, theirs = group.get(left, {left}), group.get(right, {right})
        ok = ours is not theirs and not any((min(x, y), max(x, y)) in apart for x in ours for y in theirs)
        if ok:
            merged = ours | theirs
            for key in merged:
                group[key] = merged
        linked.append(ok or ours is theirs)
    verdicts = likely.select("left_key", "right_key", linked=pl.Series(linked, dtype=pl.Boolean))
    return (
        decisions.join(verdicts, on=["left_key", "right_key"], how="left")
        .with_columns(pl.col("linked").fill_null(False))
        .sort("left_key", "right_key")
    )


def candidate_entities(links: pl.DataFrame, records: pl.DataFrame, identifiers: pl.DataFrame) -> pl.DataFrame:
    """The matcher's input from the rules' output: `links` (Resolution.links), `records` and `identifiers` (from
    pipeline.lib.identity.extract_identifiers / normalise_identifiers)."""
    from pipeline.lib.identity import KEYS, candidate_pairs

    candidates = candidate_pairs(links)
    # Only the profiles and values of candidate pairs reach the matcher: the rest of the links is not read.
    sides = pl.concat([candidates.select(profile_key="left_key"), candidates.select(profile_key="right_key")])
    links = links.join(sides.unique(), on="profile_key", how="semi")
    keys = links.select(KEYS).unique()
    clusters = links.select(*KEYS, cluster_key="profile_key").unique()
    use = (
        links.join(candidates.select("id_type", "value").unique(), on=["id_type", "value"], how="semi")
        .join(records.select(*KEYS, "seen_on"), on=KEYS)
        .group_by("profile_key", "id_type", "value")
        .agg(active_from=pl.col("seen_on").min(), active_to=pl.col("seen_on").max())
    )
    return entities(
        candidates,
        profiles(clusters, records.join(keys, on=KEYS, how="semi"), identifiers.join(keys, on=KEYS, how="semi")),
        use,
    )


# Link rows of candidate profiles read into frames at once in a full build (candidate_chunks): the matcher's frames
# are those of whole neighbourhoods holding about this many rows, not of every candidate in the history.
CANDIDATE_CHUNK = 1_000_000
# The model trains on the candidates of a sample of whole neighbourhoods holding about this many link rows (1M
# persons of messy data have 4.77M: one neighbourhood in three), and training then costs the same whatever the
# history's size; precision and recall there stayed 0.9995 / 0.9987.
TRAINING_ROWS = 2_000_000


def candidate_rows(
    con: duckdb.DuckDBPyConnection,
    links: duckdb.DuckDBPyRelation,
    records: duckdb.DuckDBPyRelation,
    identifiers: duckdb.DuckDBPyRelation,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(links, records, identifiers) of only the profiles the matcher can pair, read from DuckDB relations of `con`
    (a dbt model's refs and session): the profiles carrying a value that does not link all its records
    (candidate_pairs), their link rows, records and the identifiers profiles() reads. candidate_entities of these
    rows is that of all rows; the rest of the history never leaves the warehouse."""
    return next(candidate_chunks(con, links, records, identifiers, None))


def candidate_chunks(
    con: duckdb.DuckDBPyConnection,
    links: duckdb.DuckDBPyRelation,
    records: duckdb.DuckDBPyRelation,
    identifiers: duckdb.DuckDBPyRelation,
    chunk_rows: int | None = CANDIDATE_CHUNK,
    sample_rows: int | None = None,
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]]:
    """candidate_rows' frames a group of whole neighbourhoods (`links`' column neighbourhood) at a time, each group
    about `chunk_rows` link rows (a bigger neighbourhood is a group of its own; None: one group). A candidate pair
    and a profile never leave a neighbourhood, so candidate_entities of each group are those rows of the whole's
    (one per profile and value). At least one group is yielded, empty when there are no candidates. With
    `sample_rows` (and `chunk_rows`), only whole neighbourhoods drawn by a hash of their number are read when the
    candidates hold more link rows than that, about `sample_rows` of them: a sample to train on."""
    from pipeline.lib.identity import KEYS

    columns = "source, record_id, id_type, value, linked, profile_key, resolution"
    unused = links.filter("not linked").project("id_type, value").distinct().set_alias("unused")
    profiles = links.set_alias("l").join(unused, "id_type, value", how="semi").project("profile_key").distinct()
    candidates = links.set_alias("l").join(profiles.set_alias("p"), "profile_key", how="semi")
    if chunk_rows is None:
        parts = [candidates.project(columns)]
    else:
        con.execute(
            "create or replace temp table identity_candidate_links as "
            f"select {columns}, neighbourhood from ({candidates.sql_query()})"
        )
        total = con.execute("select count(*) from identity_candidate_links").fetchone()[0]
        if sample_rows is not None and total > sample_rows:
            # one neighbourhood in `every`, drawn by hash: not the first ones, whose numbers follow the key order
            every = -(-total // max(sample_rows, 1))
            con.execute(
                "delete from identity_candidate_links where hash(neighbourhood) % $every <> 0", {"every": every}
            )
        # Neighbourhoods in order fill groups: one starting in a group stays whole in it.
        con.execute(
            """
            create or replace temp table identity_candidate_groups as
            select neighbourhood,
                coalesce(sum(n) over (order by neighbourhood rows between unbounded preceding and 1 preceding), 0)
                    // $chunk as chunk
            from (select neighbourhood, count(*) as n from identity_candidate_links group by neighbourhood)""",
            {"chunk": max(chunk_rows, 1)},
        )
        groups = con.execute("select coalesce(max(chunk) + 1, 1) from identity_candidate_groups").fetchone()[0]
        parts = (
            con.sql(
                f"select {columns} from identity_candidate_links as l semi join "
                f"(select neighbourhood from identity_candidate_groups where chunk = {int(group)}) as g "
                "on l.neighbourhood is not distinct from g.neighbourhood"
            )
            for group in range(groups)
        )
    for part in parts:
        frame = part.pl()
        # The group's records, found once: the two reads below join this small table, not the links query again.
        con.register("identity_candidate_keys", frame.select(KEYS).unique().to_arrow())
        try:
            keys = con.table("identity_candidate_keys").set_alias("k")
            usable = identifiers.filter("status = 'ok' and id_type in ('webshop_customer_id', 'email')")
            chunk = (
                frame,
                records.set_alias("r").join(keys, "source, record_id", how="semi").pl(),
                usable.set_alias("i").join(keys, "source, record_id", how="semi").pl(),
            )
        finally:
            con.unregister("identity_candidate_keys")
        yield chunk
    if chunk_rows is not None:
        for name in ("identity_candidate_links", "identity_candidate_groups"):
            con.execute(f"drop table {name}")


def chunked_candidate_entities(
    con: duckdb.DuckDBPyConnection,
    links: duckdb.DuckDBPyRelation,
    records: duckdb.DuckDBPyRelation,
    identifiers: duckdb.DuckDBPyRelation,
    chunk_rows: int = CANDIDATE_CHUNK,
    sample_rows: int | None = None,
) -> pl.DataFrame:
    """candidate_entities of every candidate in `links` (as candidate_rows), built a group of whole neighbourhoods at
    a time (candidate_chunks): each row is one profile's and value's, so the groups add up to the whole, in
    unique_id order. `sample_rows`: those of a sample of whole neighbourhoods only (candidate_chunks)."""
    groups = candidate_chunks(con, links, records, identifiers, chunk_rows, sample_rows)
    return pl.concat([candidate_entities(*rows) for rows in groups]).sort("unique_id")


def match_profiles(
    links: pl.DataFrame,
    records: pl.DataFrame,
    identifiers: pl.DataFrame,
    model: dict,
    threshold: float,
    previous: pl.DataFrame | None = None,
    duckdb_config: Mapping[str, str] | None = None,
    entities: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The matcher's decisions (decisions_table) with `resolution`: the newest link resolution they reflect.

    `links`: pipeline.lib.identity.link_records rows. `previous`: the decisions the last run returned with the same
    model, or None to score every candidate. Only profiles resolved after those decisions are scored again (their
    pairs never leave a neighbourhood); the other decisions are kept. `duckdb_config` bounds Splink's DuckDB.
    `entities`: candidate_entities of `links` when the caller has them already (a full run trains on them).
    """
    from pipeline.lib.identity import KEYS, _record_key

    seen = None if previous is None or previous.is_empty() else previous.get_column("resolution").max()
    todo = links if seen is None else links.filter(pl.col("resolution") > seen)
    if entities is None or seen is not None:
        keys = todo.select(KEYS).unique()
        entities = candidate_entities(
            todo.filter(pl.col("id_type").is_not_null()),
            records.join(keys, on=KEYS, how="semi"),
            identifiers.join(keys, on=KEYS, how="semi"),
        )
    decisions = decide(entities, model, threshold, duckdb_config)
    if seen is not None:
        settled = links.filter(pl.col("resolution") <= seen)
        profile_keys = settled.select(left_key=_record_key(pl.col("source"), pl.col("record_id")))
        kept = previous.join(profile_keys, on="left_key", how="semi").drop("resolution")
        decisions = pl.concat([kept, decisions], how="vertical_relaxed")
    newest = todo.get_column("resolution").max() if todo.height else seen
    return decisions.with_columns(resolution=pl.lit(newest, pl.Int64)).sort("left_key", "right_key")


def decide(
    entities: pl.DataFrame, model: dict, threshold: float, duckdb_config: Mapping[str, str] | None = None
) -> pl.DataFrame:
    """The decisions (decisions_table) on every candidate pair of `entities` (candidate_entities), by left_key,
    right_key."""
    return decisions_table(accept(score(entities, model, duckdb_config), threshold)).sort("left_key", "right_key")


def decisions_table(decisions: pl.DataFrame) -> pl.DataFrame:
    """The decisions as stored: the shared value split into id_type and value, evidence columns named as such
    (two_accounts: both profiles hold a webshop account under different emails, which the matcher never joins)."""
    return decisions.select(
        "left_key",
        "right_key",
        id_type=pl.col("shared").str.split_exact(":", 1).struct.field("field_0"),
        value=pl.col("shared").str.splitn(":", 2).struct.field("field_1"),
        match_probability="match_probability",
        match_weight="match_weight",
        first_name_level="first_name",
        last_name_level="last_name",
        city_level="city",
        email_level="email",
        activity_level="activity",
        two_accounts="two_accounts",
        linked="linked",
    )


@dataclass(frozen=True)
class Persons:
    """What resolve_persons returns; pass it back as `previous` to resolve the next day's data the nightly way."""

    clusters: pl.DataFrame  # source, record_id, cluster_key (the person), is_person
    decisions: pl.DataFrame  # match_profiles rows
    model: dict  # the matcher's model
    links: pl.DataFrame  # pipeline.lib.identity.link_records rows


def resolve_persons(
    identifiers: pl.DataFrame,
    records: pl.DataFrame,
    rules,
    model: dict | None = None,
    previous: Persons | None = None,
    duckdb_config: Mapping[str, str] | None = None,
) -> Persons:
    """Rules, then the matcher, in memory (the dbt models do the same in steps). Trains a model when none is given;
    with `previous` (and its model) only the neighbourhoods the changes touch are resolved again, and only their
    persons are formed again (a person never leaves its neighbourhood, as int_identity_components has it).
    `duckdb_config` bounds the in-memory DuckDB connections (pipeline.lib.identity.local_duckdb)."""
    from pipeline.lib.identity import KEYS, _record_key, link_records

    links = link_records(
        identifiers, records, rules, previous.links if previous is not None else None, duckdb_config=duckdb_config
    )
    entities = None
    if model is None and previous is not None:
        model = previous.model
    elif model is None:
        entities = candidate_entities(links, records, identifiers)  # trained and scored on the same candidates
        model = train(entities, duckdb_config=duckdb_config)
    earlier = previous.decisions if previous is not None and previous.model == model else None
    decisions = match_profiles(
        links,
        records,
        identifiers,
        model,
        rules.match_probability,
        earlier,
        duckdb_config=duckdb_config,
        entities=entities,
    )
    if previous is None:
        return Persons(_persons(links, decisions), decisions, model, links)
    newest = pl.col("resolution") == pl.col("resolution").max()
    fresh = links.filter(newest)
    settled = links.filter(~newest).select(KEYS).unique()
    fresh_keys = fresh.select(key=_record_key(pl.col("source"), pl.col("record_id"))).unique()
    clusters = pl.concat(
        [
            previous.clusters.join(settled, on=KEYS, how="semi"),
            _persons(fresh, decisions.join(fresh_keys, left_on="left_key", right_on="key", how="semi")),
        ]
    )
    return Persons(clusters, decisions, model, links)


def _persons(links: pl.DataFrame, decisions: pl.DataFrame) -> pl.DataFrame:
    """source, record_id, cluster_key (the person), is_person: the profiles of `links` joined by the linked pairs of
    `decisions`; a person when one of its records links through a person identifier."""
    from pipeline.lib.identity import KEYS, PERSON_TYPES, _components, _record_key

    clusters = links.select(
        *KEYS, cluster_key=pl.coalesce("profile_key", _record_key(pl.col("source"), pl.col("record_id")))
    ).unique(KEYS)
    keys = clusters.select("cluster_key").unique().with_row_index("k")
    linked = (
        decisions.filter("linked")
        .join(keys, left_on="left_key", right_on="cluster_key")
        .join(keys, left_on="right_key", right_on="cluster_key", suffix="_right")
    )
    labels = _components(keys.height, linked.get_column("k").to_numpy(), linked.get_column("k_right").to_numpy())
    named = keys.with_columns(label=pl.Series(labels)).with_columns(
        person_key=pl.col("cluster_key").min().over("label")
    )
    persons = (
        links.filter(pl.col("linked") & pl.col("id_type").is_in(PERSON_TYPES))
        .select(KEYS)
        .unique()
        .with_columns(carries=pl.lit(True))
    )
    return (
        clusters.join(named.select("cluster_key", "person_key"), on="cluster_key")
        .join(persons, on=KEYS, how="left")
        .select(
            *KEYS,
            cluster_key="person_key",
            is_person=pl.col("carries").fill_null(False).any().over("person_key"),
        )
    )
