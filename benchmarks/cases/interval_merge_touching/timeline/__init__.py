from .intervals import merge, total_covered

__all__ = ["merge", "total_covered"]
