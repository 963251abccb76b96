from .smoothing import moving_average, window_sums

__all__ = ["moving_average", "window_sums"]
