from .batching import batches, run_batches

__all__ = ["batches", "run_batches"]
