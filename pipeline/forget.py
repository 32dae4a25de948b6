"""Right to erasure from the command line (UU PDP art. 8 / GDPR art. 17): forget one person everywhere.

    python -m pipeline.forget --email X | --phone X | --customer-id X [--dry-run]

Finds the person (see pipeline/lib/erasure.py), deletes their rows from raw, quarantine, staging, intermediate and
marts and clears their referral codes from other people's orders in one transaction, records their identifiers as
hashes in privacy.suppression_list (so the next ingestion drops them), rewrites the warehouse into a fresh file (no
freed block keeps their values), then republishes the serving copy without any older Parquet version. Waits while a
pipeline run holds the warehouse.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.lib import erasure, serving
from pipeline.lib.warehouse import transaction
from pipeline.settings import load_settings


def forget(
    *, email: str | None = None, phone: str | None = None, customer_id: str | None = None, dry_run: bool = False
) -> erasure.ErasureResult:
    """Erase the person from the warehouse and the serving copy; `dry_run` only finds them."""
    settings = load_settings()
    rules = settings.identity_rules()
    # Fail before deleting anything when the serving copy could not be republished afterwards.
    options = serving.ServingOptions.from_config(settings.section("serving"))
    warehouse = settings.warehouse_path
    with settings.connect_warehouse() as con:
        person = erasure.find_person(con, email=email, phone=phone, customer_id=customer_id, rules=rules)
        result = erasure.ErasureResult(person=person)
        if dry_run:
            return result
        with transaction(con):
            result.deleted = erasure.erase_person(con, person, rules)
            result.referrals_cleared = erasure.clear_referral_codes(con, person)
            result.suppressed_entries = erasure.record_suppression(con, person)
        # Deleted rows stay readable in freed blocks: rewrite the file with live data only.
        erasure.compact(con, warehouse)
    serving.publish(
        warehouse,
        serving.serving_dir(settings.data_dir),
        options,
        keep_previous_parquet=False,
        memory_limit=settings.duckdb.memory_limit,
        temp_directory=settings.duckdb_temp_directory(warehouse),
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.forget", description=__doc__.split("\n\n")[0])
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--email")
    who.add_argument("--phone")
    who.add_argument("--customer-id", dest="customer_id", help="CDP customer id (C…) or webshop account id")
    parser.add_argument("--dry-run", action="store_true", help="show what would be erased, change nothing")
    args = parser.parse_args(argv)
    try:
        result = forget(email=args.email, phone=args.phone, customer_id=args.customer_id, dry_run=args.dry_run)
    except (ValueError, serving.ServingConfigError) as exc:
        print(f"forget: {exc}", file=sys.stderr)
        return 2
    person = result.person
    print(
        f"person: customer ids {person.customer_ids or '-'}, {person.records.height} source records, "
        f"{person.identifiers.height} identifiers"
    )
    if args.dry_run:
        print("dry run: nothing changed")
        return 0
    for table, rows in sorted(result.deleted.items()):
        print(f"  deleted {rows:>6} rows from {table}")
    for table, rows in sorted(result.referrals_cleared.items()):
        print(f"  cleared their referral code in {rows:>6} rows of {table}")
    print(
        f"deleted {result.rows_deleted} rows; {result.suppressed_entries} new suppression entries (hashed); "
        "warehouse rewritten without freed blocks; serving copy republished"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
