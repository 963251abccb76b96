"""One expression of a function moved into a helper of its own: the "extracted-helper" shape.

In the editor's projects the bug is often one call away from the failing test, in a helper the
test never calls (9 of the 26 hand-made cases), but MBPP's references are mostly one function: 14
of its train problems have a helper, so the training data had almost no bug of that kind. This
rewrite gives any reference one: an expression of the entry point becomes a function of the same
module that the entry point calls,

    mid = (lo + hi) // 2          ->    def _compute_mid(lo, hi):
                                            return (lo + hi) // 2
                                        ...
                                        mid = _compute_mid(lo, hi)

and `trainer.buggy_projects.generate(bugs="helpers")` then puts the bug in the helper.

Which expression: a whole expression of one of the entry point's own statements (an assignment's
value, a return value, an `if` or `while` condition, a `for` loop's iterable; not inside a nested
function), the one with the most operators, comparisons, subscripts and calls, since those are
where the mutation operators act. A function that is a single `return` gives its value only when
it has nothing else (the helper then does all the work, as delegating functions do).

Same behaviour: the expression runs at the same place, on the same values, because each local name
it reads is passed to the helper as an argument, evaluated where the expression was. So every such
name must certainly be bound there (a parameter, or assigned by a statement that certainly ran
before: `b * 2 if c else 0` does not move where `b` is assigned only under an `if`), or passing it
would raise where the expression never read it. Expressions whose meaning depends on where they
run are never moved: `await`, `yield`, `:=`, a lambda or a generator expression that outlives the
expression (closures: they would see the helper's values, not later ones), a recursive call (each
level would take two frames), `super()`, `locals()`, `vars()`, `eval`, `exec`, frame inspection;
nor from a function that declares a name `global` or `nonlocal`, or that the module defines twice.
What is not assumed is still checked: `generate` runs the source's tests before it mutates it.
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass

from trainer.pysource import bound_names, called_name

# statement type -> the field holding its whole expression
SLOTS: dict[type[ast.stmt], str] = {
    ast.Assign: "value",
    ast.AugAssign: "value",
    ast.AnnAssign: "value",
    ast.Return: "value",
    ast.If: "test",
    ast.While: "test",
    ast.For: "iter",
}
# where the mutation operators act (`trainer.mutants`)
_SITES = (ast.BinOp, ast.Compare, ast.BoolOp, ast.UnaryOp, ast.Subscript, ast.Slice, ast.Call)
_UNMOVABLE = (ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr, ast.Lambda)
_FRAME_NAMES = {"super", "locals", "vars", "eval", "exec", "globals", "dir", "__class__"}
_FRAME_ATTRIBUTES = {"_getframe", "currentframe", "stack", "f_back", "f_locals"}
# calls that consume a generator expression at once, before the statement goes on
_CONSUMERS = {"sum", "min", "max", "any", "all", "list", "tuple", "set", "frozenset", "sorted",
              "dict", "join"}  # fmt: skip
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


@dataclass(frozen=True)
class _Choice:
    statement: ast.stmt
    field: str
    expression: ast.expr
    parameters: list[str]


def extract_helper(tree: ast.Module, entry: str) -> tuple[ast.Module, str] | None:
    """A copy of `tree` in which one expression of the module-level function `entry` is a call to a
    new helper defined just above it, and the helper's name; None where no expression can move."""
    tree = copy.deepcopy(tree)
    defined = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry]
    if len(defined) != 1:
        return None  # none, or defined twice: the last one counts, the first is dead code
    (function,) = defined
    if any(isinstance(n, (ast.Global, ast.Nonlocal)) for n in ast.walk(function)):
        return None
    choice = _choose(function)
    if choice is None:
        return None
    name = _helper_name(choice.statement, entry, _names_in(tree))
    helper = ast.FunctionDef(
        name=name,
        args=ast.arguments([], [ast.arg(p) for p in choice.parameters], None, [], [], None, []),
        body=[ast.Return(choice.expression)],
        decorator_list=[],
        returns=None,
        type_comment=None,
    )
    call = ast.Call(ast.Name(name, ast.Load()), [ast.Name(p, ast.Load()) for p in choice.parameters], [])
    setattr(choice.statement, choice.field, call)
    tree.body.insert(tree.body.index(function), helper)
    return ast.fix_missing_locations(tree), name


def _choose(function: ast.FunctionDef) -> _Choice | None:
    local = bound_names(function)
    body = function.body[1:] if ast.get_docstring(function, clean=False) is not None else function.body
    whole = body[0] if len(body) == 1 and isinstance(body[0], ast.Return) else None
    best: tuple[tuple[bool, int, int], _Choice] | None = None
    for statement, bound in _certainly_bound(function):
        field = SLOTS.get(type(statement))
        expression = getattr(statement, field) if field else None
        if field is None or not isinstance(expression, ast.expr):
            continue
        if not _movable(expression, function.name):
            continue
        parameters = [name for name in _free_names(expression) if name in local]
        sites = sum(isinstance(n, _SITES) for n in ast.walk(expression))
        if not parameters or not sites or not set(parameters) <= bound:
            continue
        score = (statement is not whole, sites, len(list(ast.walk(expression))))
        if best is None or score > best[0]:
            best = (score, _Choice(statement, field, expression, parameters))
    return best[1] if best else None


def _certainly_bound(function: ast.FunctionDef) -> list[tuple[ast.stmt, frozenset[str]]]:
    """Each statement of `function`'s own scope (nested functions and classes are other scopes),
    in order, with the local names certainly bound when its expression runs: the parameters, and
    what the statements that certainly ran before it bound. Inside a block that is the block's
    own earlier statements and those before the block; what a block binds does not count after
    it (an `if` may not run, a loop may not turn, a `try` may stop anywhere), which is stricter
    than Python but never wrong. A `del` anywhere in a statement unbinds its names after it."""
    arguments = function.args
    parameters = {a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)}
    parameters |= {a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None}
    found: list[tuple[ast.stmt, frozenset[str]]] = []

    def block(statements: list[ast.stmt], bound: frozenset[str]) -> None:
        for statement in statements:
            found.append((statement, bound))
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound |= {statement.name}
                continue
            if isinstance(statement, ast.For):
                block(statement.body, bound | _stored(statement.target))
            elif isinstance(statement, ast.With):
                items = [i.optional_vars for i in statement.items if i.optional_vars is not None]
                block(statement.body, bound.union(*(_stored(v) for v in items)))
            elif isinstance(statement, ast.Try):
                block(statement.body, bound)
                for handler in statement.handlers:
                    block(handler.body, bound | ({handler.name} if handler.name else set()))
            elif isinstance(statement, ast.Match):
                for case in statement.cases:
                    block(case.body, bound)
            else:
                block(getattr(statement, "body", []), bound)
            for later in ("orelse", "finalbody"):
                block(getattr(statement, later, []), bound)
            if not hasattr(statement, "body"):  # a simple statement ran whole: what it bound holds
                bound |= _simple_binds(statement)
            bound -= {n.id for n in ast.walk(statement) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Del)}

    block(function.body, frozenset(parameters))
    return found


def _stored(target: ast.AST) -> frozenset[str]:
    return frozenset(n.id for n in ast.walk(target) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))


def _simple_binds(statement: ast.stmt) -> frozenset[str]:
    if isinstance(statement, ast.Assign):
        return frozenset().union(*(_stored(t) for t in statement.targets))
    if isinstance(statement, (ast.AugAssign, ast.AnnAssign)) and (
        not isinstance(statement, ast.AnnAssign) or statement.value is not None
    ):
        return _stored(statement.target)
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return frozenset((a.asname or a.name).split(".")[0] for a in statement.names)
    return frozenset()


def _movable(expression: ast.expr, entry: str) -> bool:
    if isinstance(expression, (ast.Name, ast.Constant)):
        return False
    consumed = {
        id(argument)
        for call in ast.walk(expression)
        if isinstance(call, ast.Call) and called_name(call) in _CONSUMERS
        for argument in call.args
    }
    for node in ast.walk(expression):
        if isinstance(node, _UNMOVABLE):
            return False
        if isinstance(node, ast.GeneratorExp) and id(node) not in consumed:
            return False  # it may run after the statement, when its names hold other values
        if isinstance(node, ast.Name) and node.id in _FRAME_NAMES:
            return False
        if isinstance(node, ast.Attribute) and node.attr in _FRAME_ATTRIBUTES:
            return False
        if isinstance(node, ast.Call) and called_name(node) == entry:
            return False  # recursion through the helper: two frames a level, a lower depth limit
    return True


def _free_names(node: ast.AST, hidden: frozenset[str] = frozenset()) -> list[str]:
    """The names `node` reads from the scope it runs in, in order of first reading: not those a
    comprehension inside it binds for itself."""
    if isinstance(node, _COMPREHENSIONS):
        names: list[str] = []
        inner = set(hidden)
        for index, generator in enumerate(node.generators):
            # the first iterable runs in the enclosing scope, the rest inside the comprehension
            names += _free_names(generator.iter, hidden if index == 0 else frozenset(inner))
            inner |= {n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name)}
            for condition in generator.ifs:
                names += _free_names(condition, frozenset(inner))
        parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        for part in parts:
            names += _free_names(part, frozenset(inner))
        return list(dict.fromkeys(names))
    if isinstance(node, ast.Name):
        return [node.id] if isinstance(node.ctx, ast.Load) and node.id not in hidden else []
    names = [name for child in ast.iter_child_nodes(node) for name in _free_names(child, hidden)]
    return list(dict.fromkeys(names))


def _helper_name(statement: ast.stmt, entry: str, taken: set[str]) -> str:
    """A name that says what the helper computes, from where its value goes."""
    target = None
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        target = statement.targets[0]
    elif isinstance(statement, (ast.AugAssign, ast.AnnAssign, ast.For)):
        target = statement.target
    variable = target.id if isinstance(target, ast.Name) else None
    if isinstance(statement, ast.For) and variable:
        base = f"_{variable}_values"
    elif isinstance(statement, ast.AugAssign) and variable:
        base = f"_{variable}_step"
    elif variable:
        base = f"_compute_{variable}"
    elif isinstance(statement, ast.Return):
        base = f"_{entry}_result"
    elif isinstance(statement, (ast.If, ast.While)):
        base = f"_{entry}_condition"
    else:
        base = f"_{entry}_part"
    base = "_" + re.sub(r"_+", "_", base.strip("_"))
    name, number = base, 2
    while name in taken:
        name, number = f"{base}_{number}", number + 1
    return name


def _names_in(tree: ast.Module) -> set[str]:
    return bound_names(tree) | {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
