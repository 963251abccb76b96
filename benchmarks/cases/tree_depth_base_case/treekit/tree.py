"""A general tree and a few recursive helpers."""

from dataclasses import dataclass, field


@dataclass
class Node:
    value: int
    children: list["Node"] = field(default_factory=list)


def count(node):
    """Number of nodes in the tree rooted at `node` (None is the empty tree)."""
    if node is None:
        return 0
    return 1 + sum(count(child) for child in node.children)


def depth(node):
    """Number of levels: the empty tree has depth 0, a single node depth 1."""
    if node is None:
        return 0
    if not node.children:
        return 0
    return 1 + max(depth(child) for child in node.children)


def preorder(node):
    """Values in pre-order (a generator)."""
    if node is None:
        return
    yield node.value
    for child in node.children:
        yield from preorder(child)
