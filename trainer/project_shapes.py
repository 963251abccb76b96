"""Other shapes of an MBPP solution, like the code people keep in projects.

MBPP's references are module-level functions, and a model trained only on those meets the editor's
projects out of its depth: there the failing test calls a method of a class, awaits a coroutine, or
goes through a helper kept in another module (`benchmarks/cases/` has all three). `reshape` rewrites
a reference and its asserts into one of these shapes, with the same behaviour:

- "function": the reference as it is;
- "method": the module's functions become methods of one class, named after the entry point, and
  the asserts call them on an instance (`assert TextTools().f(1) == 2`);
- "async": the entry point becomes a coroutine; its own recursive calls are awaited, and the
  asserts run it with `asyncio.run`;
- "helper-module": the functions other than the entry point move to `helpers.py`, which the entry
  point's module imports (only for references with more than one function);
- "extracted-helper": one expression of the entry point becomes a helper function of the same
  module that the entry point calls (`trainer.extracted_helper`), so that any reference, not only
  the few with helpers, can have its bug one call away from the test.

A shape that does not fit a reference (a class already there, a function passed around as a value,
recursion inside a lambda...) gives None, and the caller tries another shape. The rewritten code is
`ast.unparse`'s (comments are lost; MBPP's references have few). Whether the result still behaves
the same is not assumed: `trainer.buggy_projects.generate` runs a source's tests before it mutates
it and skips a source whose tests fail.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from trainer.extracted_helper import extract_helper
from trainer.pysource import bound_names, defined_names, parse

SHAPES = ("function", "method", "async", "helper-module", "extracted-helper")
HELPERS_MODULE = "helpers"


@dataclass(frozen=True)
class Shaped:
    """A reference in a shape: its code files and what the test file needs."""

    files: dict[str, str]  # relative path -> code
    imports: list[str]  # import lines the test file adds (besides the reference's own)
    names: list[str]  # what the test file imports from the entry point's module
    asserts: list[str]
    setup: str


def check_shapes(shapes: Sequence[str]) -> None:
    bad = [shape for shape in shapes if shape not in SHAPES]
    if bad or not shapes:
        raise ValueError(f"shapes must be among {', '.join(SHAPES)}, got {bad or 'none'}")


def reshape(
    shape: str, module: str, code: str, asserts: Sequence[str], setup: str, entry_point: str
) -> Shaped | None:
    """The reference `code` (a parsed module defining `entry_point`) as `shape`, or None where the
    shape does not fit it."""
    check_shapes([shape])
    tree = parse(code)
    if tree is None:
        return None
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    defined = defined_names(tree)
    if shape == "function":
        return Shaped({f"{module}.py": code.strip() + "\n"}, [], defined, list(asserts), setup)
    if entry_point not in functions or len(functions) != len(defined):
        return None  # classes or coroutines already: the reference has a shape of its own
    parsed = [parse(text) for text in (*asserts, setup)]
    tests = [test for test in parsed if test is not None]
    if len(tests) < len(parsed):
        return None
    if shape == "method":
        return _method(module, tree, tests, functions, entry_point)
    if shape == "async":
        return _async(module, tree, tests, entry_point)
    if shape == "extracted-helper":
        return _extracted_helper(module, tree, tests, defined, entry_point)
    return _helper_module(module, tree, tests, functions, entry_point)


# --- method --------------------------------------------------------------------------------------


def _method(
    module: str, tree: ast.Module, tests: list[ast.Module], functions: list[str], entry: str
) -> Shaped | None:
    name = _class_name(entry)
    if name in _names(tree) or any(name in _names(t) for t in tests):
        return None
    body: list[ast.stmt] = []
    methods: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            if any(isinstance(d, ast.Name) and d.id.endswith("method") for d in node.decorator_list):
                return None  # staticmethod, classmethod: not a module-level function's meaning
            if _binds(node, {"self", *functions}):
                return None  # a parameter or local would shadow `self` or a method
            node = _ToAttribute(set(functions), lambda: ast.Name("self", ast.Load())).visit(node)
            args = node.args.posonlyargs or node.args.args
            args.insert(0, ast.arg("self"))
            methods.append(node)
        elif set(functions) & _names(node):
            return None  # module-level code uses a function that is now a method
        else:
            body.append(node)
    # the class stands where the last function stood, after every constant a default or decorator
    # may use (module-level code that uses a function was refused above)
    last = max(i for i, node in enumerate(tree.body) if isinstance(node, ast.FunctionDef))
    at = sum(1 for node in tree.body[:last] if not isinstance(node, ast.FunctionDef))
    body.insert(at, ast.ClassDef(name=name, bases=[], keywords=[], body=methods, decorator_list=[]))
    instance = lambda: ast.Call(ast.Name(name, ast.Load()), [], [])  # noqa: E731
    tests = [_ToAttribute(set(functions), instance).visit(t) for t in tests]
    return _shaped({f"{module}.py": _unparse(body)}, [], [name], tests)


class _ToAttribute(ast.NodeTransformer):
    """`f` -> `<owner>.f` for the names given, where they are read."""

    def __init__(self, names: set[str], owner: Callable[[], ast.expr]) -> None:
        self.names = names
        self.owner = owner

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id in self.names and isinstance(node.ctx, ast.Load):
            return ast.copy_location(ast.Attribute(self.owner(), node.id, ast.Load()), node)
        return node


def _class_name(entry: str) -> str:
    """`snake_to_camel` -> `SnakeToCamelTools`: a class named for what it holds."""
    words = [w for w in re.split(r"[^0-9A-Za-z]+", entry) if w]
    return "".join(w[:1].upper() + w[1:] for w in words) + "Tools"


# --- async ---------------------------------------------------------------------------------------


def _async(module: str, tree: ast.Module, tests: list[ast.Module], entry: str) -> Shaped | None:
    body: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == entry:
            if node.decorator_list or _is_generator(node) or not _awaitable(node, entry):
                return None  # a decorator would wrap a coroutine (lru_cache caches it once)
            if _binds(node, {entry}):
                return None
            body_ = _WrapCalls(entry, _await).visit(ast.Module(node.body, [])).body
            coroutine = ast.AsyncFunctionDef(
                name=node.name, args=node.args, body=body_, decorator_list=node.decorator_list,
                returns=node.returns, type_comment=node.type_comment,
            )  # fmt: skip
            body.append(ast.copy_location(coroutine, node))
        elif entry in _names(node):
            return None  # another function or module-level code uses it without awaiting it
        else:
            body.append(node)
    run = []
    for test in tests:
        if not _awaitable(test, entry, nested_ok=True):
            return None
        run.append(_WrapCalls(entry, _asyncio_run).visit(test))
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    return _shaped({f"{module}.py": _unparse(body)}, ["import asyncio"], functions, run)


def _awaitable(tree: ast.AST, entry: str, nested_ok: bool = False) -> bool:
    """Every use of `entry` in `tree` is a direct call, and (unless `nested_ok`) none sits where
    `await` cannot go or would change the meaning (a lambda, a nested function, a generator
    expression)."""
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    uses = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == entry]
    if any(id(n) not in calls for n in uses):
        return False
    if nested_ok:
        return True
    nested = (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.GeneratorExp, ast.ClassDef)
    return not any(
        scope is not tree
        and isinstance(scope, nested)
        and any(isinstance(n, ast.Name) and n.id == entry for n in ast.walk(scope))
        for scope in ast.walk(tree)
    )


def _is_generator(node: ast.FunctionDef) -> bool:
    """Whether it yields (a nested function's yield counts too: a rare case, refused either way)."""
    return any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(node))


class _WrapCalls(ast.NodeTransformer):
    """`f(...)` -> `wrap(f(...))` for the calls of one name: `await f(...)` in the coroutine,
    `asyncio.run(f(...))` in the tests."""

    def __init__(self, entry: str, wrap: Callable[[ast.Call], ast.expr]) -> None:
        self.entry = entry
        self.wrap = wrap

    def visit_Call(self, node: ast.Call) -> ast.expr:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == self.entry:
            return ast.copy_location(self.wrap(node), node)
        return node


def _await(call: ast.Call) -> ast.expr:
    return ast.Await(call)


def _asyncio_run(call: ast.Call) -> ast.expr:
    return ast.Call(ast.Attribute(ast.Name("asyncio", ast.Load()), "run", ast.Load()), [call], [])


# --- helper-module -------------------------------------------------------------------------------


def _helper_module(
    module: str, tree: ast.Module, tests: list[ast.Module], functions: list[str], entry: str
) -> Shaped | None:
    helpers = [f for f in functions if f != entry]
    if not helpers or module == HELPERS_MODULE:
        return None
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    moved = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in helpers]
    kept = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name in helpers)]
    others = [n for n in kept if not isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef))]
    if others or any(entry in _names(n) for n in moved):
        return None  # module-level state to share, or a helper calling back: not a clean split
    link = ast.ImportFrom(HELPERS_MODULE, [ast.alias(h) for h in helpers], 0)
    at = len([n for n in kept if isinstance(n, (ast.Import, ast.ImportFrom))])
    kept = [*kept[:at], link, *kept[at:]]
    files = {f"{module}.py": _unparse(kept), f"{HELPERS_MODULE}.py": _unparse([*imports, *moved])}
    return _shaped(files, [], [entry, *helpers], tests)


# --- extracted-helper ----------------------------------------------------------------------------


def _extracted_helper(
    module: str, tree: ast.Module, tests: list[ast.Module], defined: list[str], entry: str
) -> Shaped | None:
    extracted = extract_helper(tree, entry)
    if extracted is None:
        return None
    rewritten, _ = extracted
    # the tests import what they imported before: the helper is the entry point's business
    return _shaped({f"{module}.py": _unparse(rewritten.body)}, [], defined, tests)


# --- small helpers -------------------------------------------------------------------------------


def _shaped(
    files: dict[str, str], imports: list[str], names: list[str], tests: list[ast.Module]
) -> Shaped:
    *asserts, setup = tests
    return Shaped(files, imports, names, [_unparse(t.body) for t in asserts], _unparse(setup.body))


def _names(tree: ast.AST) -> set[str]:
    kinds = (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.name for n in ast.walk(tree) if isinstance(n, kinds)
    }


def _binds(node: ast.FunctionDef, names: set[str]) -> bool:
    """Whether any of `names` is bound anywhere inside the function (`bound_names`): such a name
    would not be the module-level function the rewrite assumes it is."""
    return bool(bound_names(node) & names)


def _unparse(body: list[ast.stmt]) -> str:
    text = ast.unparse(ast.fix_missing_locations(ast.Module(body, [])))
    text = re.sub(r"^(class .*:)\n\n", r"\1\n", text, flags=re.MULTILINE)  # unparse's blank line
    return text + "\n" if text else ""
