"""A fixed-width account statement."""

from .money import format_cents


def balance(entries):
    return sum(cents for _, cents in entries)


def statement_lines(entries, width=24):
    """One line per (label, cents) entry, amounts right-aligned to `width` characters."""
    lines = []
    for label, cents in entries:
        amount = format_cents(cents)
        lines.append(f"{label:<{width - len(amount)}}{amount}")
    return lines
