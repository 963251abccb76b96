"""A small LIFO stack."""


class EmptyStackError(Exception):
    """Raised when popping or peeking an empty stack."""


class Stack:
    def __init__(self, items=None):
        self._items = list(items or [])

    def __len__(self):
        return len(self._items)

    def push(self, item):
        self._items.append(item)

    def peek(self):
        """The item on top, without removing it."""
        if not self._items:
            raise EmptyStackError("peek from an empty stack")
        return self._items[-1]

    def pop(self):
        """Remove and return the item on top (the one pushed last)."""
        if not self._items:
            raise EmptyStackError("pop from an empty stack")
        return self._items.pop(0)
