"""Refusing candidate code that reaches for the verifier, before it runs.

A candidate fix runs in the same process as whatever judges it (pytest and ledex's reporting plugin,
or the benchmark harness of the warm worker). Code in that process can in principle rewrite the
judge: walk the frames to the harness's locals, find the plugin in `sys.modules` and wrap its
writer, walk every object with `gc`, poke memory with `ctypes`, exit with status 0 before the
failures are counted. The run's verdict is cross-checked against independent signals too (see
pytest_runner and worker), but a fix for an ordinary bug never needs any of these, so a candidate
that uses them is refused before it runs, with the reason shown.

Two rule sets:
- "pytest" (run_pytest's overlay files): everything below. Only what a candidate *adds* counts: a
  file whose original already imports `pytest` or `gc` (a test file, a conftest, a debugging
  helper) may keep doing so. Beside the doors to the verifier, it refuses one way to fool the
  tests themselves: an `__eq__` that always answers true, which no fix needs.
- "program" (run_program/run_many, a whole generated program): what the worker's harness cannot
  defend at run time (frames, globals, object graphs, memory, interpreter internals). Patching
  builtins, `os._exit`, `os.write`, printing fake markers and the like are defended by the harness
  itself (tests/ledex/sandbox/test_hostile_programs.py) and stay allowed, as benchmark solutions
  use `sys.exit` and `os` freely.

This is a screen, not a proof: Python is dynamic enough that a determined program can hide what it
does. It closes the obvious doors (and the computed-name tricks that hide them: `__import__` of a
computed name, `getattr` with a computed attribute, `eval`/`exec` in pytest runs); the independent
cross-checks and the sandbox around the process are what stay when it is evaded.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

Profile = Literal["program", "pytest"]


@dataclass(frozen=True)
class Reach:
    """One construct that reaches for the verifier."""

    what: str  # as written: `sys._getframe`, `import gc`
    why: str
    line: int

    def __str__(self) -> str:
        return f"line {self.line}: {self.what} ({self.why})"


_FRAMES = "reads the frames of the code that runs the tests"
_MODULES: dict[str, tuple[str, frozenset[Profile]]] = {
    "gc": ("walks every live object, the test harness's included", frozenset({"program", "pytest"})),
    "ctypes": ("reads and writes the interpreter's memory", frozenset({"program", "pytest"})),
    "_ctypes": ("reads and writes the interpreter's memory", frozenset({"program", "pytest"})),
    "cffi": ("reads and writes the interpreter's memory", frozenset({"program", "pytest"})),
    "inspect": (_FRAMES, frozenset({"program", "pytest"})),
    "importlib": ("imports modules by computed names", frozenset({"program", "pytest"})),
    # the same, by other doors: `pkgutil.resolve_name("_pytest.reports:TestReport")`, pydoc.locate
    **dict.fromkeys(("pkgutil", "pydoc", "runpy", "zipimport", "imp"),
                    ("imports modules by computed names", frozenset({"program", "pytest"}))),  # fmt: skip
    "unittest.mock": ("patches any module by its name, pytest's included", frozenset({"pytest"})),
    "mock": ("patches any module by its name, pytest's included", frozenset({"pytest"})),
    "atexit": ("runs code after the tests were counted", frozenset({"pytest"})),
    "builtins": ("changes the builtins pytest itself uses", frozenset({"pytest"})),
    "pytest": ("reaches into pytest, which reports the verdict", frozenset({"pytest"})),
    "_pytest": ("reaches into pytest, which reports the verdict", frozenset({"pytest"})),
    "pluggy": ("reaches into pytest's plugin manager, which reports the verdict", frozenset({"pytest"})),
    "ledex_pytest_plugin": ("reaches into ledex's result reporting", frozenset({"pytest"})),
    "ledex": ("reaches into ledex's result reporting", frozenset({"pytest"})),
    "faulthandler": ("reads the frames of the code that runs the tests", frozenset({"pytest"})),
}
# Attributes that lead to frames, other functions' globals or every class, on whatever object.
_ATTRIBUTES: dict[str, str] = {
    **dict.fromkeys(("f_back", "f_locals", "f_globals", "f_builtins", "f_trace", "f_lineno",
                     "tb_frame", "gi_frame", "cr_frame", "ag_frame", "_getframe",
                     "_current_frames", "_current_exceptions"), _FRAMES),  # fmt: skip
    "__globals__": "reads another function's globals",
    "__closure__": "reads another function's variables",
    "__builtins__": "reaches the builtins the tests run with",
    "__subclasses__": "finds every class, the test harness's included",
    "_exit": "ends the process before the failures are counted",
}
# Attributes of `sys` and `os` (through the module's name, an alias or `from ... import`).
_SYS: dict[str, tuple[str, frozenset[Profile]]] = {
    "modules": ("reaches into loaded modules (the code that reports the verdict)", frozenset({"program", "pytest"})),
    "settrace": ("rewrites how the tests execute", frozenset({"pytest"})),
    "setprofile": ("rewrites how the tests execute", frozenset({"pytest"})),
    "monitoring": ("rewrites how the tests execute", frozenset({"pytest"})),
    "meta_path": ("changes how modules are imported", frozenset({"pytest"})),
    "path_hooks": ("changes how modules are imported", frozenset({"pytest"})),
    "addaudithook": ("watches the interpreter's actions", frozenset({"program", "pytest"})),
    "excepthook": ("changes how errors are reported", frozenset({"pytest"})),
    "last_traceback": (_FRAMES, frozenset({"program", "pytest"})),
}
_OS = {  # pytest runs only: the worker's harness defends these itself
    **dict.fromkeys(("kill", "killpg", "abort", "fork", "forkpty"), "signals or forks the test process"),
    **dict.fromkeys(("write", "dup", "dup2", "fdopen", "open", "pipe", "writev", "pwrite"),
                    "writes to file descriptors (where results travel)"),  # fmt: skip
}
_CALLS: dict[str, tuple[str, frozenset[Profile]]] = {
    "globals": ("reaches the namespace the tests run in", frozenset({"program", "pytest"})),
    "vars": ("reaches a module's or object's namespace", frozenset({"program", "pytest"})),
    "breakpoint": ("starts a debugger", frozenset({"program", "pytest"})),
    "eval": ("runs code built at run time", frozenset({"pytest"})),
    "exec": ("runs code built at run time", frozenset({"pytest"})),
    "compile": ("runs code built at run time", frozenset({"pytest"})),
}
_COMPUTED = "hides what it reaches for behind a computed name"
# An `__eq__` that answers a true constant whatever it compares makes every `assert result ==
# expected` pass: no fix needs one, and a model rewarded for passing tests can learn it. (Only
# `__eq__`: it is what tests' asserts call; the screen is not a proof, the warm worker's own check
# of every `==` is the benchmark programs' defence.)
_ALWAYS = "compares equal to anything, so the tests' == checks say nothing"
_ALWAYS_EQUAL = "__eq__ always true"
# A string naming pytest's or ledex's modules is how mock.patch, pkgutil and their kin find them.
_JUDGE_NAME = re.compile(r"^(?:_?pytest|pluggy|ledex\w*)(?:[.:]|$)")
_PROC_PATHS = ("/proc/", "/dev/fd")


def _triggers(profile: Profile) -> re.Pattern[str]:
    """A word every rule of `profile` needs in the source: most code has none, and is not parsed
    (the screen runs on every program of data collection and RL)."""
    words = {name for name, (_, profiles) in _MODULES.items() if profile in profiles}
    words |= set(_ATTRIBUTES) | {"__import__", "getattr", "setattr", "delattr", "__builtins__",
                                 "__dict__"}
    words |= {name for name, (_, profiles) in {**_SYS, **_CALLS}.items() if profile in profiles}
    if profile == "pytest":
        words |= set(_OS) | {"closefd", "__eq__"}
    pattern = "|".join(sorted(map(re.escape, words), key=len, reverse=True))
    return re.compile(rf"\b(?:{pattern})\b|" + "|".join(map(re.escape, _PROC_PATHS)))


_TRIGGERS = {profile: _triggers(profile) for profile in ("program", "pytest")}


def reaches(source: str, profile: Profile) -> list[Reach]:
    """What `source` reaches for under `profile`; [] for code that does not parse (the run itself
    reports the syntax error)."""
    if not _TRIGGERS[profile].search(source):
        return []
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    return _Walker(profile).walk(tree)


def refusal(candidate: str, profile: Profile, original: str | None = None) -> str:
    """Why `candidate` is refused ("" if it is not). With `original`, only what the candidate adds
    to it counts (a test file may keep its `import pytest`)."""
    found = reaches(candidate, profile)
    if original is not None and found:
        allowed = Counter(r.what for r in reaches(original, profile))
        kept = []
        for reach in found:
            if allowed[reach.what] > 0:
                allowed[reach.what] -= 1
            else:
                kept.append(reach)
        found = kept
    if not found:
        return ""
    shown = "; ".join(str(r) for r in found[:3]) + ("; ..." if len(found) > 3 else "")
    if all(r.why == _ALWAYS for r in found):
        return f"it would fool the tests rather than fix the code: {shown}"
    return f"it reaches for the test verifier: {shown}"


class _Walker(ast.NodeVisitor):
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.found: list[Reach] = []
        self.aliases: dict[str, str] = {}  # local name -> "sys" / "os" (import sys as s)

    def walk(self, tree: ast.AST) -> list[Reach]:
        for node in ast.walk(tree):  # the aliases first: a use may come before its import's line
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in ("sys", "os", "posix"):
                        self.aliases[alias.asname or alias.name] = "os" if alias.name == "posix" else alias.name
            elif isinstance(node, ast.ImportFrom) and node.module in ("os", "posix") and node.level == 0:
                for alias in node.names:
                    if alias.name == "sys":  # `from os import sys`
                        self.aliases[alias.asname or alias.name] = "sys"
        self.visit(tree)
        return sorted(self.found, key=lambda r: r.line)

    def add(self, node: ast.AST, what: str, why: str) -> None:
        self.found.append(Reach(what, why, getattr(node, "lineno", 0)))

    def module(self, node: ast.AST, name: str) -> None:
        rule = _MODULES.get(name.split(".")[0]) or _MODULES.get(".".join(name.split(".")[:2]))
        if rule is not None and self.profile in rule[1]:
            self.add(node, f"import {name}", rule[0])

    def owner(self, node: ast.expr) -> str | None:
        """"sys" or "os" where `node` is that module: a name it was imported as, `os.sys`, or
        `__import__("sys")`."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute) and node.attr == "sys" and self.owner(node.value) == "os":
            return "sys"
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__"
                and node.args and isinstance(node.args[0], ast.Constant)
                and node.args[0].value in ("sys", "os", "posix")):  # fmt: skip
            return "os" if node.args[0].value == "posix" else str(node.args[0].value)
        return None

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.module(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        name = node.module or ""
        if node.level == 0:
            self.module(node, name)
            for alias in node.names:
                if name.split(".")[0] not in _MODULES and f"{name}.{alias.name}" in _MODULES:
                    self.module(node, f"{name}.{alias.name}")  # `from unittest import mock`
                self.member(node, name, alias.name)

    def member(self, node: ast.AST, owner: str, name: str) -> None:
        """`sys.<name>` / `os.<name>` / `from sys import <name>`."""
        if name in _ATTRIBUTES:
            self.add(node, f"{owner}.{name}", _ATTRIBUTES[name])
        elif name == "__dict__":
            self.add(node, f"{owner}.__dict__", _COMPUTED)
        elif owner == "sys" and name in _SYS and self.profile in _SYS[name][1]:
            self.add(node, f"sys.{name}", _SYS[name][0])
        elif owner in ("os", "posix") and name in _OS and self.profile == "pytest":
            self.add(node, f"os.{name}", _OS[name])

    def visit_Attribute(self, node: ast.Attribute) -> None:
        owner = self.owner(node.value)
        if owner is not None:
            self.member(node, owner, node.attr)
        elif node.attr in _ATTRIBUTES:
            self.add(node, f".{node.attr}", _ATTRIBUTES[node.attr])
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in ("__builtins__",):
            self.add(node, node.id, _ATTRIBUTES[node.id])

    def visit_Call(self, node: ast.Call) -> None:
        function = node.func
        name = function.id if isinstance(function, ast.Name) else None
        first = node.args[0] if node.args else None
        literal = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
        if name == "__import__":
            if literal is not None:
                self.module(node, literal)
            else:
                self.add(node, "__import__(...)", _COMPUTED)
        elif name in _CALLS and self.profile in _CALLS[name][1]:
            self.add(node, f"{name}()", _CALLS[name][0])
        elif name in ("getattr", "setattr", "delattr") and len(node.args) >= 2:
            attribute = node.args[1]
            if not (isinstance(attribute, ast.Constant) and isinstance(attribute.value, str)):
                self.add(node, f"{name}(..., <computed>)", _COMPUTED)
            elif attribute.value in _ATTRIBUTES:
                self.add(node, f"{name}(..., {attribute.value!r})", _ATTRIBUTES[attribute.value])
            elif (owner := self.owner(node.args[0])) is not None:
                self.member(node, owner, attribute.value)
            elif (self.profile == "pytest" and name == "setattr" and attribute.value == "__eq__"
                    and len(node.args) == 3 and _true_lambda(node.args[2])):  # fmt: skip
                self.add(node, _ALWAYS_EQUAL, _ALWAYS)
        if self.profile == "pytest" and any(k.arg == "closefd" for k in node.keywords):
            self.add(node, "open(<fd>, closefd=...)", "writes to file descriptors (where results travel)")
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if self.profile == "pytest" and node.name == "__eq__" and _answers_true(node):
            self.add(node, _ALWAYS_EQUAL, _ALWAYS)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Assign(self, node: ast.Assign | ast.AnnAssign) -> None:
        """`__eq__ = lambda self, other: True` in a class, `Cls.__eq__ = ...`, also wrapped in a
        call (`staticmethod(lambda *a: True)`)."""
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else ""
                 for t in targets]  # fmt: skip
        if self.profile == "pytest" and "__eq__" in names and _true_lambda(node.value):
            self.add(node, _ALWAYS_EQUAL, _ALWAYS)
        self.generic_visit(node)

    visit_AnnAssign = visit_Assign

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and any(p in node.value for p in _PROC_PATHS):
            self.add(node, repr(node.value[:40]), "reads the process's own file descriptors or memory")
        elif self.profile == "pytest" and isinstance(node.value, str) and _JUDGE_NAME.match(node.value):
            self.add(node, repr(node.value[:40]), "names a module of pytest or ledex, which report the verdict")


def _truthy_constant(node: ast.expr | None) -> bool:
    """`True`, `1`, `"x"`, `not False`: a value known to be true before the code runs."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return isinstance(node.operand, ast.Constant) and not node.operand.value
    return isinstance(node, ast.Constant) and bool(node.value)


def _answers_true(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Does every way out of `function` return a true constant? Its own returns only (not those
    of functions or classes inside it), it raises nothing, and it cannot fall off its end (an
    `__eq__` returning True or, implicitly, None is an ordinary one)."""
    returns: list[ast.Return] = []
    pending: list[ast.AST] = list(function.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Raise):
            return False
        if isinstance(node, ast.Return):
            returns.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            pending.extend(ast.iter_child_nodes(node))
    last = function.body[-1]
    return isinstance(last, ast.Return) and all(_truthy_constant(r.value) for r in returns)


def _true_lambda(node: ast.expr | None) -> bool:
    """A lambda answering a true constant, or one call's argument that is (`staticmethod(...)`)."""
    if isinstance(node, ast.Call) and len(node.args) == 1:
        node = node.args[0]
    return isinstance(node, ast.Lambda) and _truthy_constant(node.body)
