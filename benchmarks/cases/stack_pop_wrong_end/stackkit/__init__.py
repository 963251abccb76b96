from .stack import EmptyStackError, Stack

__all__ = ["EmptyStackError", "Stack"]
