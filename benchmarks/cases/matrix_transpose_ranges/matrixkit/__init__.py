from .ops import multiply, shape, transpose

__all__ = ["multiply", "shape", "transpose"]
