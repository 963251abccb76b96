from .retry import retry

__all__ = ["retry"]
