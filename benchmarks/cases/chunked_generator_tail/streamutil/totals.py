"""Aggregates over streams of numbers."""

from .chunks import chunked


def batch_totals(numbers, size):
    """The sum of each consecutive batch of `size` numbers."""
    return [sum(chunk) for chunk in chunked(numbers, size)]


def running_max(numbers):
    """Yield the largest number seen so far, for each number."""
    best = None
    for number in numbers:
        if best is None or number > best:
            best = number
        yield best
