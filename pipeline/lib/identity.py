"""Identity resolution: normalise identifiers, cluster source records into persons, keep customer ids stable.

The graph is bipartite: one node per source record, one node per normalised identifier value (typed, so the email
"a@b.id" and a phone can never collide), one edge per (record, identifier) pair. A person is a connected component.

Over-merge guards, all configurable (`identity:` in pipeline/config/cdp.yaml) and all reported as violations:
  blocklisted / invalid   junk and malformed values never enter the graph;
  too_many_records        an email/phone on more records than a person plausibly has is a shop or placeholder value;
  shared_identifier       an identifier that reaches more than N distinct persons (judged on the graph of the
                          *stronger* identifier types only) is shared, e.g. a household phone, and links nothing;
  oversized_cluster       a cluster still bigger than the cap loses its weakest identifier type's links, type by
                          type, until it fits (the strongest type, the webshop account, is never dropped).
Everything here is set-wise (polars/numpy/scipy); phones are parsed once per distinct value (pipeline.lib.phones).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb
import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pipeline.lib.phones import normalise_phones

# Strongest first: a system-issued key outranks an address a person types in, a phone (shareable) ranks last.
IDENTIFIER_TYPES = ("webshop_customer_id", "order_id", "helpdesk_requester_id", "email", "phone")
CONTACT_TYPES = ("email", "phone")
# A plausible address: one '@', no spaces, a dot in the domain. (Deliverability is not identity's business.)
EMAIL_SHAPE = r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$"
CUT_REASONS = ("", "too_many_records", "shared_identifier", "oversized_cluster")
ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


@dataclass(frozen=True)
class IdentityRules:
    """The matching rules; defaults are the documented values of the `identity:` config section."""

    default_region: str = "ID"
    blocklist_emails: tuple[str, ...] = ("test@test.com",)
    blocklist_phones: tuple[str, ...] = ("0000000000",)
    max_records_per_identifier: int = 5000
    max_persons_per_identifier: Mapping[str, int] = field(default_factory=lambda: {"email": 2, "phone": 1})
    person_key_types: tuple[str, ...] = ("webshop_customer_id", "email")
    max_cluster_records: int = 2000
    phone_parse_workers: int = 0  # processes parsing phones (0 = one per core)
    strength: tuple[str, ...] = IDENTIFIER_TYPES

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> IdentityRules:
        """Rules from the `identity:` config section; absent keys keep their defaults."""
        known = {k: v for k, v in cfg.items() if k in cls.__dataclass_fields__}
        for key in ("blocklist_emails", "blocklist_phones", "person_key_types", "strength"):
            if key in known:
                known[key] = tuple(str(v) for v in known[key] or ())
        if "max_persons_per_identifier" in known:
            known["max_persons_per_identifier"] = {
                str(k): int(v) for k, v in known["max_persons_per_identifier"].items()
            }
        unknown_types = set(known.get("strength", ())) ^ set(IDENTIFIER_TYPES) if "strength" in known else set()
        if unknown_types:
            raise ValueError(
                f"identity.strength must list exactly {IDENTIFIER_TYPES}, differs in {sorted(unknown_types)}"
            )
        return cls(**known)


@dataclass(frozen=True)
class Resolution:
    clusters: pl.DataFrame  # source, record_id, cluster_key (the smallest record key of its cluster)
    violations: pl.DataFrame  # id_type, value, reason, records, linked, detail


# --------------------------------------------------------------------------------------------- normalisation


def normalise_emails(values: pl.Series) -> pl.Series:
    """Trimmed, lower-cased addresses; null where the value has no valid address shape."""
    cleaned = values.cast(pl.Utf8).str.strip_chars().str.to_lowercase()
    return (
        pl.select(pl.when(cleaned.str.contains(EMAIL_SHAPE)).then(cleaned).otherwise(None))
        .to_series()
        .rename(values.name)
    )


def _digits(expr: pl.Expr) -> pl.Expr:
    return expr.str.replace_all(r"\D", "")


def normalise_identifiers(
    raw: pl.DataFrame, rules: IdentityRules = IdentityRules(), known_phones: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Normalise `source, record_id, id_type, raw_value` rows; adds `value` and `status` (ok|invalid|blocklisted).

    Rows without a raw value are dropped. `value` is null unless the status is ok. `known_phones` (raw_phone,
    phone_e164; see pipeline.lib.phones) are earlier parses to reuse.
    """
    rows = raw.filter(pl.col("raw_value").is_not_null()).with_columns(pl.col("raw_value").cast(pl.Utf8))
    unknown = set(rows.get_column("id_type").unique().to_list()) - set(IDENTIFIER_TYPES)
    if unknown:
        raise ValueError(f"unknown identifier types {sorted(unknown)}")
    distinct = rows.select("id_type", "raw_value").unique()
    emails = distinct.filter(pl.col("id_type") == "email")
    phones = distinct.filter(pl.col("id_type") == "phone")
    keys = distinct.filter(~pl.col("id_type").is_in(CONTACT_TYPES))
    blocked_emails = normalise_emails(pl.Series(rules.blocklist_emails, dtype=pl.Utf8)).drop_nulls()
    blocked_phone_digits = pl.Series(rules.blocklist_phones, dtype=pl.Utf8).str.replace_all(r"\D", "")
    blocked_phones = normalise_phones(
        pl.Series(rules.blocklist_phones, dtype=pl.Utf8), rules.default_region
    ).drop_nulls()

    emails = emails.with_columns(normalised=normalise_emails(emails.get_column("raw_value"))).with_columns(
        blocked=pl.col("normalised").is_in(blocked_emails.implode())
    )
    phones = phones.with_columns(
        normalised=normalise_phones(
            phones.get_column("raw_value"), rules.default_region, known_phones, rules.phone_parse_workers
        )
    ).with_columns(
        # Junk like 0000000000 is not even a valid number: matching on digits reports it as blocklisted, not invalid.
        blocked=pl.col("normalised").is_in(blocked_phones.implode())
        | _digits(pl.col("raw_value")).is_in(blocked_phone_digits.implode())
    )
    keys = keys.with_columns(normalised=pl.col("raw_value").str.strip_chars()).with_columns(
        normalised=pl.when(pl.col("normalised") != "").then(pl.col("normalised")),
        blocked=pl.lit(False),
    )
    lookup = (
        pl.concat([emails, phones, keys])
        .with_columns(
            status=pl.when(pl.col("blocked"))
            .then(pl.lit("blocklisted"))
            .when(pl.col("normalised").is_null())
            .then(pl.lit("invalid"))
            .otherwise(pl.lit("ok")),
        )
        .select(
            "id_type",
            "raw_value",
            value=pl.when(pl.col("blocked")).then(None).otherwise(pl.col("normalised")),
            status="status",
        )
    )
    return rows.join(lookup, on=["id_type", "raw_value"], how="left", maintain_order="left")


# ------------------------------------------------------------------------------------------------ clustering


def _components(n_nodes: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Connected-component label per node; labels depend only on the edge list, so runs are reproducible."""
    graph = coo_matrix((np.ones(src.size, dtype=np.int8), (src, dst)), shape=(n_nodes, n_nodes)).tocsr()
    return connected_components(graph, directed=True, connection="weak")[1]


def _record_key(source: pl.Expr, record_id: pl.Expr) -> pl.Expr:
    return pl.concat_str([source, pl.lit(":"), record_id])


@dataclass(frozen=True)
class _Graph:
    """Records are nodes 0..n_records-1, identifier i is node n_records + i; one edge per (record, identifier)."""

    records: pl.DataFrame  # r, source, record_id
    ids: pl.DataFrame  # i, id_type, value, t (index into the strength order), records (how many carry it)
    e_rec: np.ndarray
    e_id: np.ndarray
    e_type: np.ndarray

    @property
    def n_records(self) -> int:
        return self.records.height

    @property
    def n_nodes(self) -> int:
        return self.records.height + self.ids.height

    def labels(self, edge_mask: np.ndarray) -> np.ndarray:
        return _components(self.n_nodes, self.e_rec[edge_mask], self.n_records + self.e_id[edge_mask])

    def clusters(self, labels: np.ndarray) -> pl.DataFrame:
        """source, record_id, cluster_key: each cluster is named by its smallest record key."""
        return (
            self.records.with_columns(label=pl.Series(labels[: self.n_records]))
            .with_columns(cluster_key=_record_key(pl.col("source"), pl.col("record_id")).min().over("label"))
            .select("source", "record_id", "cluster_key")
        )


def _build_graph(identifiers: pl.DataFrame, records: pl.DataFrame, strength: list[str]) -> _Graph:
    # Node numbers need no sorting: clusters are named by their smallest record key, whatever the numbering.
    record_table = (
        pl.concat([records.select("source", "record_id"), identifiers.select("source", "record_id")])
        .unique()
        .with_row_index("r")
    )
    ok = identifiers.filter(pl.col("status") == "ok").select("source", "record_id", "id_type", "value")
    id_table = (
        ok.select("id_type", "value")
        .unique()
        .with_row_index("i")
        .with_columns(t=pl.col("id_type").replace_strict(strength, list(range(len(strength))), return_dtype=pl.UInt8))
    )
    edges = (
        ok.join(record_table, on=["source", "record_id"])
        .join(id_table.select("id_type", "value", "i", "t"), on=["id_type", "value"])
        .select("r", "i", "t")
        .unique(["r", "i"])
    )
    e_id = edges.get_column("i").to_numpy().astype(np.int64)
    id_table = id_table.with_columns(records=pl.Series(np.bincount(e_id, minlength=id_table.height)))
    return _Graph(
        record_table,
        id_table,
        edges.get_column("r").to_numpy().astype(np.int64),
        e_id,
        edges.get_column("t").to_numpy(),
    )


def resolve_identities(
    identifiers: pl.DataFrame, records: pl.DataFrame, rules: IdentityRules = IdentityRules()
) -> Resolution:
    """Cluster `records` (source, record_id) into persons through their `identifiers` (output of normalise_identifiers).

    Every record gets exactly one cluster; records without a usable identifier are clusters of their own.
    """
    strength = list(rules.strength)
    graph = _build_graph(identifiers, records, strength)
    n_records, n_nodes, id_table = graph.n_records, graph.n_nodes, graph.ids
    e_rec, e_id, e_type = graph.e_rec, graph.e_id, graph.e_type
    id_type_of = id_table.get_column("t").to_numpy()

    reason = np.zeros(id_table.height, dtype=np.int8)  # index into CUT_REASONS; 0 = still used as a link
    linked = np.zeros(id_table.height, dtype=np.int64)  # persons reached / cluster size, for the report

    contact = np.isin(id_type_of, [strength.index(t) for t in CONTACT_TYPES])
    too_many = contact & (id_table.get_column("records").to_numpy() > rules.max_records_per_identifier)
    reason[too_many] = CUT_REASONS.index("too_many_records")

    def labels_over(type_mask: np.ndarray) -> np.ndarray:
        return graph.labels(type_mask[e_type] & (reason[e_id] == 0))

    # Shared identifiers, judged type by type from the strongest capped type down, each on the graph of its
    # stronger types: a value reaching more than N components that hold a person key is shared.
    for id_type in sorted(rules.max_persons_per_identifier, key=strength.index):
        t = strength.index(id_type)
        stronger = np.arange(len(strength)) < t
        labels = labels_over(stronger)
        person_key = np.isin(id_type_of, [strength.index(k) for k in rules.person_key_types if strength.index(k) < t])
        person_labels = np.zeros(n_nodes, dtype=bool)
        person_labels[labels[n_records + np.flatnonzero(person_key)]] = True
        own = (e_type == t) & (reason[e_id] == 0)
        reach = (
            pl.DataFrame({"i": e_id[own], "label": labels[e_rec[own]]})
            .filter(pl.Series(person_labels[labels[e_rec[own]]]))
            .group_by("i")
            .agg(persons=pl.col("label").n_unique())
        )
        shared = reach.filter(pl.col("persons") > rules.max_persons_per_identifier[id_type])
        shared_i = shared.get_column("i").to_numpy()
        reason[shared_i] = CUT_REASONS.index("shared_identifier")
        linked[shared_i] = shared.get_column("persons").to_numpy()

    # Oversized clusters lose their weakest links first; the strongest type always stays.
    all_types = np.ones(len(strength), dtype=bool)
    labels = labels_over(all_types)
    for t in range(len(strength) - 1, 0, -1):
        sizes = np.bincount(labels[:n_records], minlength=n_nodes)
        oversized = sizes > rules.max_cluster_records
        if not oversized[labels[:n_records]].any():
            break
        cut = (e_type == t) & (reason[e_id] == 0) & oversized[labels[e_rec]]
        if not cut.any():
            continue
        reason[e_id[cut]] = CUT_REASONS.index("oversized_cluster")
        linked[e_id[cut]] = sizes[labels[e_rec[cut]]]
        labels = labels_over(all_types)

    clusters = graph.clusters(labels)
    cut_ids = id_table.with_columns(reason=pl.Series(np.asarray(CUT_REASONS)[reason]), linked=pl.Series(linked)).filter(
        pl.col("reason") != ""
    )
    rejected = (
        identifiers.filter(pl.col("status") != "ok")
        .group_by("id_type", value="raw_value", reason="status")
        .agg(records=pl.col("record_id").n_unique())
    )
    violations = (
        pl.concat(
            [
                cut_ids.select(
                    "id_type",
                    "value",
                    "reason",
                    pl.col("records").cast(pl.Int64),
                    linked=pl.col("linked").cast(pl.Int64),
                ),
                rejected.select(
                    "id_type", "value", "reason", pl.col("records").cast(pl.Int64), linked=pl.lit(None, pl.Int64)
                ),
            ]
        )
        .with_columns(
            detail=pl.when(pl.col("reason") == "shared_identifier")
            .then(pl.format("reaches {} persons", pl.col("linked")))
            .when(pl.col("reason") == "oversized_cluster")
            .then(pl.format("cluster of {} records", pl.col("linked")))
            .when(pl.col("reason") == "too_many_records")
            .then(pl.format("on {} records", pl.col("records")))
            .when(pl.col("reason") == "blocklisted")
            .then(pl.lit("value is on the identity blocklist"))
            .otherwise(pl.lit("not a valid value of its type")),
        )
        .sort("reason", "id_type", "value")
    )
    return Resolution(clusters=clusters, violations=violations)


def cluster_records(
    identifiers: pl.DataFrame, records: pl.DataFrame, violations: pl.DataFrame, rules: IdentityRules = IdentityRules()
) -> pl.DataFrame:
    """The clusters of `resolve_identities`, from its already computed violations (one graph pass instead of all).

    Lets a pipeline store the violations and the record map as separate tables without judging the graph twice.
    """
    graph = _build_graph(identifiers, records, list(rules.strength))
    cut = graph.ids.join(violations.select("id_type", "value").unique(), on=["id_type", "value"], how="semi")
    is_cut = np.zeros(graph.ids.height, dtype=bool)
    is_cut[cut.get_column("i").to_numpy()] = True
    return graph.clusters(graph.labels(~is_cut[graph.e_id]))


# ------------------------------------------------------------------------------------------------ stable ids


def _md5_hex(values: pl.Series) -> pl.Series:
    """md5 as hex, computed by DuckDB (stable across versions, unlike polars' hash)."""
    with duckdb.connect() as con:
        con.register("hash_input", pl.DataFrame({"key": values}).to_arrow())
        return con.execute("select md5(key) as h from hash_input").pl().get_column("h")


def mint_customer_ids(keys: pl.Series, taken: pl.Series | None = None) -> pl.Series:
    """'C' + 10 base32 chars of md5(key): the same key always gets the same id.

    An id already in `taken` (or minted twice in one call) is re-hashed as md5(key '#' n) until it is free.
    """
    frame = pl.DataFrame({"key": keys.cast(pl.Utf8)}).with_row_index("pos")
    taken_ids = (taken if taken is not None else pl.Series([], dtype=pl.Utf8)).cast(pl.Utf8).unique()
    result = frame.with_columns(customer_id=pl.lit(None, pl.Utf8))
    salt = 0
    while (pending := result.filter(pl.col("customer_id").is_null())).height:
        salted = pending.get_column("key") if salt == 0 else pending.get_column("key") + f"#{salt}"
        digest = _md5_hex(salted)
        bits = digest.str.slice(0, 13).str.to_integer(base=16)
        chars = [(bits // 32**k) % 32 for k in range(9, -1, -1)]  # 50 of the 52 bits, 5 per character
        candidate = pl.select(
            pl.concat_str(
                [pl.lit("C")]
                + [c.replace_strict(list(range(32)), list(ID_ALPHABET), return_dtype=pl.Utf8) for c in chars]
            )
        ).to_series()
        proposal = pending.select("pos", "key").with_columns(candidate=candidate)
        used = pl.concat([taken_ids, result.get_column("customer_id").drop_nulls()])
        # Keep a candidate when it is free and the first (by key) to claim it in this round.
        accepted = (
            proposal.filter(~pl.col("candidate").is_in(used.implode()))
            .sort("key")
            .unique("candidate", keep="first", maintain_order=True)
        )
        result = (
            result.join(accepted.select("pos", "candidate"), on="pos", how="left")
            .with_columns(customer_id=pl.coalesce("customer_id", "candidate"))
            .drop("candidate")
        )
        salt += 1
    return result.sort("pos").get_column("customer_id")


def assign_stable_ids(
    clusters: pl.DataFrame, previous: pl.DataFrame | None = None, reserved_ids: pl.Series | None = None
) -> pl.DataFrame:
    """Give each cluster a customer id, keeping the ids of `previous` (source, record_id, customer_id).

    An old id stays with the cluster holding most of its records (ties: smallest cluster key), so a split leaves
    it on the largest part; a cluster that inherits several old ids is a merge and keeps the smallest one.
    Clusters without an inherited id get a minted id (never one in `previous` or `reserved_ids`).
    `previous=None` is a full rebuild. Returns source, record_id, customer_id, previous_customer_id.
    """
    if previous is None:
        previous = pl.DataFrame(schema={"source": pl.Utf8, "record_id": pl.Utf8, "customer_id": pl.Utf8})
    records = clusters.join(
        previous.select("source", "record_id", previous_customer_id="customer_id"),
        on=["source", "record_id"],
        how="left",
    )
    holdings = (
        records.filter(pl.col("previous_customer_id").is_not_null())
        .group_by("cluster_key", "previous_customer_id")
        .agg(n=pl.len())
    )
    heirs = holdings.sort(["previous_customer_id", "n", "cluster_key"], descending=[False, True, False]).unique(
        "previous_customer_id", keep="first"
    )
    kept = heirs.group_by("cluster_key").agg(customer_id=pl.col("previous_customer_id").min())
    cluster_ids = records.select("cluster_key").unique().join(kept, on="cluster_key", how="left")
    unnamed = cluster_ids.filter(pl.col("customer_id").is_null()).sort("cluster_key")
    taken = pl.concat(
        [
            previous.get_column("customer_id").cast(pl.Utf8),
            (reserved_ids if reserved_ids is not None else pl.Series([], dtype=pl.Utf8)).cast(pl.Utf8),
        ]
    )
    minted = unnamed.with_columns(customer_id=mint_customer_ids(unnamed.get_column("cluster_key"), taken))
    cluster_ids = pl.concat([cluster_ids.filter(pl.col("customer_id").is_not_null()), minted])
    return (
        records.join(cluster_ids, on="cluster_key")
        .select("source", "record_id", "customer_id", "previous_customer_id")
        .sort("source", "record_id")
    )


def describe_changes(assignments: pl.DataFrame, run_date: date) -> pl.DataFrame:
    """identity_changes rows from `assign_stable_ids` output: one row per (old id -> new id) move, plus new ids.

    merge: the new id took records of two or more old ids (survivor = the new id);
    split: part of an old id's records moved to an id that holds records of no other old id;
    new:   an id none of whose records had an id before.
    """
    moves = (
        assignments.filter(pl.col("previous_customer_id").is_not_null())
        .group_by("previous_customer_id", "customer_id")
        .agg(records=pl.len())
    )
    sources_per_id = moves.group_by("customer_id").agg(n_old=pl.col("previous_customer_id").n_unique())
    moved = (
        moves.filter(pl.col("previous_customer_id") != pl.col("customer_id"))
        .join(sources_per_id, on="customer_id")
        .select(
            change_type=pl.when(pl.col("n_old") > 1).then(pl.lit("merge")).otherwise(pl.lit("split")),
            old_customer_id="previous_customer_id",
            new_customer_id="customer_id",
            records=pl.col("records").cast(pl.Int64),
        )
    )
    new = (
        assignments.group_by("customer_id")
        .agg(records=pl.len(), had_id=pl.col("previous_customer_id").is_not_null().any())
        .filter(~pl.col("had_id"))
        .select(
            change_type=pl.lit("new"),
            old_customer_id=pl.lit(None, pl.Utf8),
            new_customer_id="customer_id",
            records=pl.col("records").cast(pl.Int64),
        )
    )
    return (
        pl.concat([moved, new])
        .with_columns(run_date=pl.lit(run_date, pl.Date))
        .select("run_date", "change_type", "old_customer_id", "new_customer_id", "records")
        .sort("change_type", "new_customer_id", "old_customer_id", nulls_last=True)
    )
