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


def bound_names(node: ast.AST) -> set[str]:
    """Every name bound anywhere inside `node` (itself excluded), in any nested scope: a parameter
    (its own, a lambda's, a nested def's), an assignment or loop target, a nested def or class, an
    import, an `except ... as`, a match capture, a global or nonlocal declaration."""
    bound: set[str] = set()
    for n in ast.walk(node):
        if n is node:
            continue
        if isinstance(n, ast.arg):
            bound.add(n.arg)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            bound.add(n.id)
        elif isinstance(n, DEFINITIONS):
            bound.add(n.name)
        elif isinstance(n, ast.alias):
            bound.add((n.asname or n.name).split(".")[0])
        elif isinstance(n, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and n.name:
            bound.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            bound.add(n.rest)
        elif isinstance(n, (ast.Global, ast.Nonlocal)):
            bound.update(n.names)
    return bound


def called_name(call: ast.Call) -> str | None:
    """The name a call is made by: `f(...)` -> f, `obj.f(...)` -> f; None for anything else."""
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None
