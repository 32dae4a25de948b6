"""Phone parsing (pipeline/lib/phones.py): the worker pool and the kept lookup give exactly the serial answers."""

import duckdb
import polars as pl

from pipeline.lib import phones
from pipeline.lib.phones import PARALLEL_FROM, PARSER, known_phones, normalise_phones, parse_phones


def spellings(n: int) -> pl.Series:
    """n numbers in rotating spellings, with some junk mixed in."""
    return pl.Series(
        [
            [f"0812{i:08d}", f"+62 812 {i:08d}", f"62-812-{i:08d}", f"0812-{i:04d}", "bukan nomor"][i % 5]
            for i in range(n)
        ]
    )


def test_parallel_parse_equals_serial_parse():
    values = spellings(PARALLEL_FROM + 1000)
    serial = parse_phones(values, "ID", workers=1)
    parallel = parse_phones(values, "ID", workers=2)
    assert parallel.height == phones.compact(values).n_unique()  # one row per distinct compacted spelling
    assert parallel.equals(serial)
    assert serial.get_column("phone_e164").null_count() > 0  # the junk and the short numbers are invalid


def test_known_values_are_not_parsed_again(monkeypatch):
    values = pl.Series(["0812-3456-7890", "+62 812 1111 2222", "0812"])
    first = normalise_phones(values, "ID")
    known = pl.DataFrame({"raw_phone": phones.compact(values), "phone_e164": first})

    calls = []
    real = phones._to_e164
    monkeypatch.setattr(phones, "_to_e164", lambda vals, region: calls.append(list(vals)) or real(vals, region))
    again = normalise_phones(pl.Series(["081234567890", "0812 1111 2222", "+62 813 9999 0000"]), "ID", known)
    assert again.to_list() == ["+6281234567890", "+6281211112222", "+6281399990000"]
    # '081234567890' is known (as '0812-3456-7890' compacted); the other two spellings are new keys
    assert [v for call in calls for v in call] == ["+6281399990000", "081211112222"]


def test_known_phones_reads_only_the_same_region_and_parser(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    assert known_phones(con, "intermediate.int_phone_numbers", "ID") is None
    con.execute("create schema intermediate")
    con.execute(
        "create table intermediate.int_phone_numbers as select * from (values "
        "('081234567890', '+6281234567890', 'ID', ?), ('0212345678', '+62212345678', 'ID', 'phonenumbers 0.0'),"
        "('0212345678', '+61212345678', 'AU', ?)) t(raw_phone, phone_e164, region, parser)",
        [PARSER, PARSER],
    )
    got = known_phones(con, "intermediate.int_phone_numbers", "ID")
    assert got.rows() == [("081234567890", "+6281234567890")]
