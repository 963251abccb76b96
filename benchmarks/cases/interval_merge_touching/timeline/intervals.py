"""Merging time intervals."""


def merge(intervals):
    """Merge overlapping or touching (start, end) intervals; the result is sorted by start."""
    merged = []
    for start, end in sorted(intervals):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [tuple(pair) for pair in merged]


def total_covered(intervals):
    """Total length covered by the intervals, counting overlaps once."""
    return sum(end - start for start, end in merge(intervals))
