"""Summary statistics for lists of numbers."""


def total(values):
    result = 0
    for value in values:
        result += value
    return result


def mean(values):
    """Arithmetic mean; raises ValueError for an empty sequence."""
    if not values:
        raise ValueError("mean of an empty sequence")
    return total(values) // len(values)


def spread(values):
    """Difference between the largest and the smallest value."""
    return max(values) - min(values)
