"""Erasure that erases: after `make forget`, not one byte of the person is left in the data directory (warehouse,
serving copy, Parquet, reports) or in DAGSTER_HOME (event log, run storage, compute logs).

The person is a foreign customer (a Singapore phone) whose unusual email fails the profile's format warning, so a
data-quality failure example names them during the run, and another customer's order carries their referral code.
The pipeline runs as users run it (`python -m pipeline.cli run` on a real DAGSTER_HOME), on a small demo whose
source systems live outside the data directory (erasing from the shop's own systems is the shop's business)."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import duckdb

from tests.support.cli_runs import FOREIGN_EMAIL, FOREIGN_PHONE, run_ok

PHONE_SPELLINGS = (FOREIGN_PHONE, "+6582345671", "6582345671")  # as delivered, E.164, digits only


def _byte_hits(roots: list[Path], needles: list[bytes], patterns: list[bytes]) -> dict[str, list[str]]:
    """Files under `roots` containing a needle (ASCII case-insensitive) or matching a pattern, read as raw bytes."""
    hits = {}
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            content = path.read_bytes()
            lowered = content.lower()
            found = [n.decode() for n in needles if n.lower() in lowered]
            found += [p.decode() for p in patterns if re.search(p, content)]
            if found:
                hits[str(path)] = found
    return hits


def test_forget_leaves_no_byte_of_the_person_in_the_data_dir_or_dagster_home(readme_window_run, tmp_path):
    run = readme_window_run.copy(tmp_path)
    data, home, env, account = run.data, run.home, run.env, run.account

    # A Singapore number is a valid profile phone: the person got segments and a CLV, and was published.
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        (customer_id,) = con.execute(
            "select customer_id from marts.customer_profile where phone = '+6582345671'"
        ).fetchone()
        for mart in ("customer_segments", "customer_clv", "customer_value"):
            assert (
                con.execute(f"select count(*) from marts.{mart} where customer_id = ?", [customer_id]).fetchone()[0]
                == 1
            ), mart
    with duckdb.connect(str(data / "serving" / "cdp.duckdb"), read_only=True) as con:
        assert (
            con.execute("select count(*) from marts.customer_profile where customer_id = ?", [customer_id]).fetchone()[
                0
            ]
            == 1
        )

    # The format warning recorded its failure example, masked: the event log never held the address.
    instance = dg.DagsterInstance.from_config(str(home))
    check_key = dg.AssetCheckKey(dg.AssetKey(["marts", "customer_profile"]), "expectations")
    (evaluation,) = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=1)
    examples = str(evaluation.event.dagster_event.event_specific_data.metadata["failed_expectations"].value)
    assert "xxx.xxx!xxxx@xxxxxxx.xxx.xx" in examples
    needles = [FOREIGN_EMAIL.encode()] + [p.encode() for p in PHONE_SPELLINGS]
    referral = [re.escape(f"REF-{account}").encode() + rb"(?![0-9A-Za-z])"]
    assert _byte_hits([home], needles, []) == {}
    # The search sees them where they are (so zero hits below means gone, not unreadable).
    present = _byte_hits([data], needles, referral)
    assert any(path.endswith("warehouse.duckdb") for path in present), present

    forget = run_ok(["make", "--no-print-directory", "forget", f"EMAIL={FOREIGN_EMAIL.upper()}"], env, timeout=600)
    assert "cleared their referral code" in forget.stdout
    assert FOREIGN_EMAIL.lower() not in (forget.stdout + forget.stderr).lower()  # not even in the command's own output
    assert _byte_hits([data, home], needles, referral) == {}
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute(
            "select referral_code from marts.fct_orders where order_id = ?", [run.referring_order]
        ).fetchall() == [(None,)]  # the referring customer's order stays, without the code
