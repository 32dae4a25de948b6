"""The mart digests compare the CLV fit's columns by their sums: float noise passes, a real change does not."""

from tests.integration.mart_digest import differences


def _table(sums: dict) -> dict:
    return {"rows": 3, "digest": "d", "columns": {"customer_id": "c"}, "sums": sums}


def test_a_fit_column_within_the_tolerance_is_the_same_beyond_it_differs():
    recorded = {"customer_clv": _table({"clv": 1_234_567.0, "p_alive": 0.0})}
    assert differences(recorded, {"customer_clv": _table({"clv": 1_234_567.0 * (1 + 2e-8), "p_alive": 1e-12})}) == []
    assert differences(recorded, {"customer_clv": _table({"clv": 1_234_567.0 * (1 + 1e-4), "p_alive": 0.0})}) == [
        "customer_clv: clv sum 1234567 -> 1234690.46"
    ]
    assert differences(recorded, {"customer_clv": _table({"p_alive": 0.0})}) == ["customer_clv: clv removed"]
    assert differences(recorded, {"customer_clv": _table({"clv": None, "p_alive": 0.0})}) == [
        "customer_clv: clv sum 1234567.0 -> None"
    ]
