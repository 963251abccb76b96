from .summary import mean, spread, total

__all__ = ["mean", "spread", "total"]
