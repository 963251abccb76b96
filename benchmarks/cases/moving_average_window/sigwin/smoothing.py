"""Sliding-window smoothing for sensor readings."""


def window_sums(values, size):
    """Sum of every run of `size` consecutive values, in order."""
    if size <= 0:
        raise ValueError("window size must be positive")
    sums = []
    for start in range(len(values) - size):
        sums.append(sum(values[start:start + size]))
    return sums


def moving_average(values, size):
    """Mean of every window of `size` consecutive values."""
    return [window_sum / size for window_sum in window_sums(values, size)]
