"""What a Python source defines, read without running it: the one parse that the data loaders,
the mutation operators and the project shapes share."""

from __future__ import annotations

import ast
import warnings

DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def parse(source: str) -> ast.Module | None:
    """The module's AST, or None if it does not parse (without warnings for invalid escapes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escapes in upstream code ("\d") still parse
        try:
            return ast.parse(source)
        except (SyntaxError, ValueError, RecursionError):
            return None


def defined_names(tree: ast.Module) -> list[str]:
    """The functions, coroutines and classes a module defines at its top level, in order."""
    return [node.name for node in tree.body if isinstance(node, DEFINITIONS)]
