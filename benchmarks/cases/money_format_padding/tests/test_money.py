import pytest

from ledgerfmt.money import format_cents
from ledgerfmt.statement import balance, statement_lines


@pytest.mark.parametrize(
    ("cents", "text"),
    [(1234, "$12.34"), (505, "$5.05"), (-205, "-$2.05"), (100, "$1.00"), (99, "$0.99")],
)
def test_format_cents(cents, text):
    assert format_cents(cents) == text


def test_statement_lines():
    lines = statement_lines([("rent", 85025), ("refund", 1999)], width=16)
    assert lines == ["rent     $850.25", "refund    $19.99"]


def test_balance():
    assert balance([("a", 100), ("b", -30)]) == 70
