from .tree import Node, count, depth, preorder

__all__ = ["Node", "count", "depth", "preorder"]
