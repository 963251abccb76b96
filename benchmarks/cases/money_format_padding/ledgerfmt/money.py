"""Formatting amounts of money kept as integer cents."""


def format_cents(cents, symbol="$"):
    """1234 -> '$12.34', 505 -> '$5.05', -205 -> '-$2.05'."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{symbol}{cents // 100}.{cents % 100}"
