"""Single-point AST mutations that look like the bugs people write.

    for mutation in mutations(source):        # every mutation of every function, in file order
        buggy = mutation.apply(source)        # the source with that one change, nothing else touched

Each operator finds one kind of slip inside a function body: a comparison or boundary slip, a
wrong arithmetic operator, an off-by-one in `range` or an index, a wrong slice, an inverted
condition (`and`/`or`, a dropped `not`), a missing return, a wrong variable, attribute or dict key,
swapped arguments or operands, a wrong default, a mutable default, `min`/`max` and friends. A
mutation replaces the source text of one node (or deletes one statement), so the rest of the file
keeps its formatting and comments and the diff against the original is the bug alone.

Only code inside functions is mutated (module-level code runs on import: a bug there fails every
test, which nobody needs help to find). Whether a mutant is a bug at all (not equivalent) is for
the tests to say: `trainer.buggy_projects` keeps a mutant only when some test fails on it.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from trainer.pysource import parse

# Operator names, as recorded in the data and the benchmark (one tag each).
OPERATORS = (
    "comparison",
    "boundary",
    "arithmetic",
    "swapped-operands",
    "range-off-by-one",
    "index-off-by-one",
    "slice",
    "inverted-condition",
    "boolean-operator",
    "missing-return",
    "wrong-variable",
    "wrong-attribute",
    "wrong-key",
    "swapped-arguments",
    "wrong-default",
    "mutable-default",
    "wrong-builtin",
    "constant",
)

_COMPARISON_SWAPS: dict[type, type] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_ARITHMETIC_SWAPS: dict[type, type] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Add,
    ast.Div: ast.FloorDiv,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
}
_NON_COMMUTATIVE = (ast.Sub, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_BUILTIN_SWAPS = {"min": "max", "max": "min", "any": "all", "all": "any"}
_METHOD_SWAPS = {
    "append": "extend",
    "extend": "append",
    "lower": "upper",
    "upper": "lower",
    "startswith": "endswith",
    "endswith": "startswith",
    "keys": "values",
    "values": "keys",
    "remove": "discard",
    "discard": "remove",
    "rstrip": "lstrip",
    "lstrip": "rstrip",
}
_SYMBOLS: dict[type, str] = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.And: "and",
    ast.Or: "or",
}

_Function = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class Mutation:
    """One change to a source: replace the text between two (line, column) positions.

    Lines are 1-based, columns are character offsets (not UTF-8 bytes, as `ast` gives them)."""

    operator: str
    function: str  # qualified name of the function it is in: "func", "Class.method"
    start: tuple[int, int]
    end: tuple[int, int]
    replacement: str
    description: str  # what changed, for people: "`<` became `<=`"

    @property
    def line(self) -> int:
        return self.start[0]

    def apply(self, source: str) -> str:
        lines = source.splitlines(keepends=True)
        begin = _offset(lines, *self.start)
        end = _offset(lines, *self.end)
        return source[:begin] + self.replacement + source[end:]


def mutations(source: str) -> list[Mutation]:
    """Every single-point mutation of the functions in `source`, in file order; [] if it does
    not parse. Mutants whose text does not parse are left out."""
    tree = parse(source)
    if tree is None:
        return []
    lines = source.splitlines(keepends=True)
    found: list[Mutation] = []
    seen: set[str] = set()
    for qualname, function, owner in _functions(tree.body):
        context = _Context(qualname, function, owner, tree, lines)
        for operator in _OPERATORS:
            for mutation in operator(context):
                mutated = mutation.apply(source)
                if mutated == source or mutated in seen or parse(mutated) is None:
                    continue
                seen.add(mutated)
                found.append(mutation)
    found.sort(key=lambda m: (m.start, m.operator))
    return found


# --- walking the code ----------------------------------------------------------------------------


@dataclass
class _Context:
    qualname: str
    function: _Function
    owner: ast.ClassDef | None  # the class of a method
    module: ast.Module
    lines: list[str]

    def nodes(self) -> Iterator[ast.AST]:
        """The function's own nodes (its body, not nested functions' or classes')."""
        stack: list[ast.AST] = list(reversed(self.function.body))
        while stack:
            node = stack.pop()
            yield node
            children = [
                c
                for c in ast.iter_child_nodes(node)
                if not isinstance(
                    c, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
                )
            ]
            stack.extend(reversed(children))

    def position(self, node: ast.AST) -> tuple[tuple[int, int], tuple[int, int]]:
        start = (node.lineno, _char_column(self.lines, node.lineno, node.col_offset))  # type: ignore[attr-defined]
        end_line = node.end_lineno or node.lineno  # type: ignore[attr-defined]
        end = (end_line, _char_column(self.lines, end_line, node.end_col_offset or 0))  # type: ignore[attr-defined]
        return start, end

    def replace(
        self, operator: str, node: ast.AST, new: ast.AST | str, description: str
    ) -> Mutation:
        start, end = self.position(node)
        text = new if isinstance(new, str) else _unparse(new)
        return Mutation(operator, self.qualname, start, end, text, description)

    def text(self, node: ast.AST) -> str:
        start, end = self.position(node)
        begin, stop = _offset(self.lines, *start), _offset(self.lines, *end)
        return "".join(self.lines)[begin:stop]

    def local_names(self) -> list[str]:
        """Parameters and names the function assigns, in order of first appearance."""
        names: list[str] = [
            a.arg for a in _all_args(self.function.args) if a.arg not in ("self", "cls")
        ]
        for node in self.nodes():
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.append(node.id)
        return list(dict.fromkeys(names))


def _functions(
    body: list[ast.stmt], prefix: str = "", owner: ast.ClassDef | None = None
) -> Iterator[tuple[str, _Function, ast.ClassDef | None]]:
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            qualname = f"{prefix}{node.name}"
            yield qualname, node, owner
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node.body, f"{prefix}{node.name}.", node)


def _all_args(args: ast.arguments) -> list[ast.arg]:
    found = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    found += [a for a in (args.vararg, args.kwarg) if a is not None]
    return found


# --- the operators -------------------------------------------------------------------------------


def _comparison(ctx: _Context) -> Iterator[Mutation]:
    for node in ctx.nodes():
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                swap = _COMPARISON_SWAPS.get(type(op))
                if swap is None:
                    continue
                new = copy.deepcopy(node)
                new.ops[i] = swap()
                yield ctx.replace(
                    "comparison", node, new, f"`{_SYMBOLS[type(op)]}` became `{_SYMBOLS[swap]}`"
                )


def _boundary(ctx: _Context) -> Iterator[Mutation]:
    """An integer bound in a comparison moved by one: `n > 0` -> `n > 1`."""
    for node in ctx.nodes():
        if isinstance(node, ast.Compare) and not isinstance(
            node.ops[0], (ast.Is, ast.IsNot, ast.In, ast.NotIn)
        ):
            for operand in [node.left, *node.comparators]:
                if _is_int(operand):
                    value = operand.value  # type: ignore[attr-defined]
                    for new_value in (value + 1, value - 1) if value != 0 else (1,):
                        yield ctx.replace(
                            "boundary",
                            operand,
                            repr(new_value),
                            f"the bound {value} became {new_value}",
                        )


def _arithmetic(ctx: _Context) -> Iterator[Mutation]:
    for node in ctx.nodes():
        if isinstance(node, (ast.BinOp, ast.AugAssign)):
            swap = _ARITHMETIC_SWAPS.get(type(node.op))
            if swap is None or _is_string_concat(node):
                continue
            new = copy.deepcopy(node)
            new.op = swap()
            yield ctx.replace(
                "arithmetic", node, new, f"`{_SYMBOLS[type(node.op)]}` became `{_SYMBOLS[swap]}`"
            )


def _swapped_operands(ctx: _Context) -> Iterator[Mutation]:
    for node in ctx.nodes():
        if isinstance(node, ast.BinOp) and isinstance(node.op, _NON_COMMUTATIVE):
            if ctx.text(node.left) == ctx.text(node.right):
                continue
            new = ast.BinOp(
                left=copy.deepcopy(node.right), op=node.op, right=copy.deepcopy(node.left)
            )
            yield ctx.replace(
                "swapped-operands",
                node,
                new,
                f"the operands of `{_SYMBOLS[type(node.op)]}` were swapped",
            )


def _range_off_by_one(ctx: _Context) -> Iterator[Mutation]:
    for node in ctx.nodes():
        if _is_call_to(node, "range") and 1 <= len(node.args) <= 3 and not node.keywords:  # type: ignore[attr-defined]
            stop_index = 0 if len(node.args) == 1 else 1  # type: ignore[attr-defined]
            stop = node.args[stop_index]  # type: ignore[attr-defined]
            for delta in (1, -1):
                yield ctx.replace(
                    "range-off-by-one",
                    stop,
                    _shifted(stop, delta),
                    f"range's stop `{ctx.text(stop)}` became `{_unparse(_shifted(stop, delta))}`",
                )
            if len(node.args) >= 2:  # type: ignore[attr-defined]
                start = node.args[0]  # type: ignore[attr-defined]
                yield ctx.replace(
                    "range-off-by-one",
                    start,
                    _shifted(start, 1),
                    f"range's start `{ctx.text(start)}` became `{_unparse(_shifted(start, 1))}`",
                )


def _index_off_by_one(ctx: _Context) -> Iterator[Mutation]:
    """`a[0]` -> `a[1]`, `a[i]` -> `a[i + 1]`, `a[-1]` -> `a[-2]`."""
    for node in ctx.nodes():
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and not isinstance(node.slice, ast.Slice)
        ):
            index = node.slice
            if _is_int(index) or _is_negative_int(index):
                value = ast.literal_eval(index)
                new_value = value - 1 if value < 0 else value + 1
                yield ctx.replace(
                    "index-off-by-one",
                    index,
                    repr(new_value),
                    f"the index {value} became {new_value}",
                )
            elif isinstance(index, (ast.Name, ast.BinOp)) and not _is_string_key_context(index):
                yield ctx.replace(
                    "index-off-by-one",
                    index,
                    _shifted(index, 1),
                    f"the index `{ctx.text(index)}` became `{_unparse(_shifted(index, 1))}`",
                )


def _slice(ctx: _Context) -> Iterator[Mutation]:
    for node in ctx.nodes():
        if not isinstance(node, ast.Slice):
            continue
        if (
            node.step is not None
            and _is_negative_int(node.step)
            and ast.literal_eval(node.step) == -1
        ):
            new = copy.deepcopy(node)
            new.step = None
            yield ctx.replace(
                "slice", node, _slice_text(new), "the reversing step `::-1` was dropped"
            )
        for bound in ("lower", "upper"):
            value = getattr(node, bound)
            if value is None:
                continue
            for delta in (1, -1):
                new = copy.deepcopy(node)
                setattr(new, bound, _shifted(value, delta))
                yield ctx.replace(
                    "slice",
                    node,
                    _slice_text(new),
                    f"the slice `{_slice_text(node)}` became `{_slice_text(new)}`",
                )


def _inverted_condition(ctx: _Context) -> Iterator[Mutation]:
    for node in ctx.nodes():
        if isinstance(node, (ast.If, ast.While, ast.IfExp)) or (
            isinstance(node, ast.comprehension) and node.ifs
        ):
            tests = node.ifs if isinstance(node, ast.comprehension) else [node.test]
            for test in tests:
                if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
                    yield ctx.replace(
                        "inverted-condition", test, test.operand, "a `not` was dropped"
                    )
                elif not (isinstance(node, ast.While) and _is_true(test)):
                    yield ctx.replace(
                        "inverted-condition",
                        test,
                        ast.UnaryOp(ast.Not(), copy.deepcopy(test)),
                        "the condition was inverted",
                    )


def _boolean_operator(ctx: _Context) -> Iterator[Mutation]:
    for node in ctx.nodes():
        if isinstance(node, ast.BoolOp):
            swap = ast.Or if isinstance(node.op, ast.And) else ast.And
            new = copy.deepcopy(node)
            new.op = swap()
            yield ctx.replace(
                "boolean-operator",
                node,
                new,
                f"`{_SYMBOLS[type(node.op)]}` became `{_SYMBOLS[swap]}`",
            )


def _missing_return(ctx: _Context) -> Iterator[Mutation]:
    """The last statement, `return value`, forgotten (the function then returns None)."""
    body = ctx.function.body
    last = body[-1]
    if (
        len(body) < 2
        or not isinstance(last, ast.Return)
        or last.value is None
        or _is_none(last.value)
    ):
        return
    start = (last.lineno, 0)
    end = (last.end_lineno or last.lineno, len(ctx.lines[(last.end_lineno or last.lineno) - 1]))
    yield Mutation(
        "missing-return", ctx.qualname, start, end, "", f"`{ctx.text(last)}` was left out"
    )


def _wrong_variable(ctx: _Context) -> Iterator[Mutation]:
    """A variable read replaced by another local of the same function, of those it reads nearby."""
    names = ctx.local_names()
    if len(names) < 2:
        return
    for node in ctx.nodes():
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in names:
            index = names.index(node.id)
            other = names[index + 1] if index + 1 < len(names) else names[index - 1]
            yield ctx.replace("wrong-variable", node, other, f"`{node.id}` became `{other}`")


def _wrong_attribute(ctx: _Context) -> Iterator[Mutation]:
    if ctx.owner is None:
        return
    attributes = sorted(
        {
            node.attr
            for node in ast.walk(ctx.owner)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and isinstance(node.ctx, ast.Store)
        }
    )
    if len(attributes) < 2:
        return
    for node in ctx.nodes():
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Load)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and node.attr in attributes
        ):
            index = attributes.index(node.attr)
            other = attributes[(index + 1) % len(attributes)]
            yield ctx.replace(
                "wrong-attribute",
                node,
                f"self.{other}",
                f"`self.{node.attr}` became `self.{other}`",
            )


def _wrong_key(ctx: _Context) -> Iterator[Mutation]:
    keys = sorted(
        {
            node.slice.value
            for node in ast.walk(ctx.module)
            if isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        }
    )
    if len(keys) < 2:
        return
    for node in ctx.nodes():
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and node.slice.value in keys
        ):
            index = keys.index(node.slice.value)
            other = keys[(index + 1) % len(keys)]
            yield ctx.replace(
                "wrong-key",
                node.slice,
                repr(other),
                f"the key {node.slice.value!r} became {other!r}",
            )


def _swapped_arguments(ctx: _Context) -> Iterator[Mutation]:
    for node in ctx.nodes():
        if (
            isinstance(node, ast.Call)
            and len(node.args) >= 2
            and not any(isinstance(a, ast.Starred) for a in node.args[:2])
        ):
            first, second = node.args[0], node.args[1]
            if ctx.text(first) == ctx.text(second) or _is_call_to(
                node, "range", "print", "isinstance", "setattr", "getattr"
            ):
                continue
            new = copy.deepcopy(node)
            new.args[0], new.args[1] = new.args[1], new.args[0]
            yield ctx.replace(
                "swapped-arguments",
                node,
                new,
                f"the first two arguments of `{ctx.text(node.func)}` were swapped",
            )


def _defaults(ctx: _Context) -> Iterator[Mutation]:
    args = ctx.function.args
    for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
        if isinstance(default, ast.Constant) and isinstance(default.value, bool):
            yield ctx.replace(
                "wrong-default",
                default,
                repr(not default.value),
                f"the default {default.value} became {not default.value}",
            )
        elif isinstance(default, ast.Constant) and type(default.value) is int:
            new = default.value + 1
            yield ctx.replace(
                "wrong-default", default, repr(new), f"the default {default.value} became {new}"
            )
    yield from _mutable_default(ctx)


def _mutable_default(ctx: _Context) -> Iterator[Mutation]:
    """`def f(x, seen=None): if seen is None: seen = []` -> `def f(x, seen=[])` without the guard:
    the list is shared by every call. The mutation spans the signature to the guard."""
    function, args = ctx.function, ctx.function.args
    positional = [*args.posonlyargs, *args.args]
    for arg, default in zip(
        positional[len(positional) - len(args.defaults) :], args.defaults, strict=True
    ):
        if not _is_none(default):
            continue
        guard = next((s for s in function.body if _is_none_guard(s, arg.arg)), None)
        if (
            guard is None
            or guard is not function.body[0]
            and not _only_docstring_before(function, guard)
        ):
            continue
        empty = _unparse(guard.body[0].value)  # type: ignore[attr-defined]
        start, default_end = ctx.position(default)
        guard_last = guard.end_lineno or guard.lineno
        end = (guard_last, len(ctx.lines[guard_last - 1].rstrip("\r\n")))
        source = "".join(ctx.lines)
        # Keep what lies between the default and the guard's line (the rest of the signature, a
        # docstring), without the line break that ends it: the guard's own line break stays.
        between = source[_offset(ctx.lines, *default_end) : _offset(ctx.lines, guard.lineno, 0)]
        yield Mutation(
            "mutable-default",
            ctx.qualname,
            start,
            end,
            empty + between.rstrip("\r\n"),
            f"`{arg.arg}=None` with a fresh `{empty}` per call became a shared `{arg.arg}={empty}`",
        )


def _wrong_builtin(ctx: _Context) -> Iterator[Mutation]:
    for node in ctx.nodes():
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _BUILTIN_SWAPS
        ):
            other = _BUILTIN_SWAPS[node.func.id]
            yield ctx.replace(
                "wrong-builtin", node.func, other, f"`{node.func.id}` became `{other}`"
            )
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _METHOD_SWAPS
        ):
            other = _METHOD_SWAPS[node.func.attr]
            new = copy.deepcopy(node.func)
            new.attr = other
            yield ctx.replace(
                "wrong-builtin", node.func, new, f"`.{node.func.attr}(...)` became `.{other}(...)`"
            )
        elif _is_call_to(node, "sorted") or (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "sort"
        ):
            reverse = next((k for k in node.keywords if k.arg == "reverse"), None)  # type: ignore[attr-defined]
            if reverse is not None and isinstance(reverse.value, ast.Constant):
                yield ctx.replace(
                    "wrong-builtin",
                    reverse.value,
                    repr(not reverse.value.value),
                    f"reverse={reverse.value.value!r} became reverse={not reverse.value.value}",
                )


def _constant(ctx: _Context) -> Iterator[Mutation]:
    """`True`/`False` swapped, an initial `0`/`1` of an accumulator swapped."""
    for node in ctx.nodes():
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            value = node.value.value
            if isinstance(value, bool):
                yield ctx.replace(
                    "constant",
                    node.value,
                    repr(not value),
                    f"the initial {value} became {not value}",
                )
            elif isinstance(value, int) and value in (0, 1):
                yield ctx.replace(
                    "constant",
                    node.value,
                    repr(1 - value),
                    f"the initial {value} became {1 - value}",
                )
        elif (
            isinstance(node, ast.Return)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, bool)
        ):
            value = node.value.value
            yield ctx.replace(
                "constant",
                node.value,
                repr(not value),
                f"`return {value}` became `return {not value}`",
            )


_OPERATORS: tuple[Callable[[_Context], Iterator[Mutation]], ...] = (
    _comparison,
    _boundary,
    _arithmetic,
    _swapped_operands,
    _range_off_by_one,
    _index_off_by_one,
    _slice,
    _inverted_condition,
    _boolean_operator,
    _missing_return,
    _wrong_variable,
    _wrong_attribute,
    _wrong_key,
    _swapped_arguments,
    _defaults,
    _wrong_builtin,
    _constant,
)


# --- small helpers -------------------------------------------------------------------------------


def _unparse(node: ast.AST) -> str:
    return ast.unparse(ast.fix_missing_locations(node))


def _offset(lines: list[str], line: int, column: int) -> int:
    return sum(len(text) for text in lines[: line - 1]) + column


def _char_column(lines: list[str], line: int, byte_column: int) -> int:
    """`ast` columns are UTF-8 byte offsets; strings are indexed by character."""
    if line - 1 >= len(lines):
        return byte_column
    return len(lines[line - 1].encode("utf-8")[:byte_column].decode("utf-8", errors="replace"))


def _is_int(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def _is_negative_int(node: ast.AST) -> bool:
    return isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and _is_int(node.operand)


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _is_true(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _is_call_to(node: ast.AST, *names: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names


def _is_string_concat(node: ast.BinOp | ast.AugAssign) -> bool:
    value = node.value if isinstance(node, ast.AugAssign) else node.left
    right = node.value if isinstance(node, ast.AugAssign) else node.right
    return any(
        isinstance(n, (ast.JoinedStr, ast.List))
        or isinstance(n, ast.Constant)
        and isinstance(n.value, str)
        for n in (value, right)
    )


def _is_string_key_context(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _shifted(node: ast.expr, delta: int) -> ast.expr:
    """`node + delta`, folded for literals and for `x + k` / `x - k`."""
    if _is_int(node):
        return ast.Constant(node.value + delta)  # type: ignore[attr-defined]
    if (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, (ast.Add, ast.Sub))
        and _is_int(node.right)
    ):
        k = node.right.value if isinstance(node.op, ast.Add) else -node.right.value  # type: ignore[attr-defined]
        k += delta
        if k == 0:
            return copy.deepcopy(node.left)
        op: ast.operator = ast.Add() if k > 0 else ast.Sub()
        return ast.BinOp(copy.deepcopy(node.left), op, ast.Constant(abs(k)))
    op = ast.Add() if delta > 0 else ast.Sub()
    return ast.BinOp(copy.deepcopy(node), op, ast.Constant(abs(delta)))


def _slice_text(node: ast.Slice) -> str:
    lower = _unparse(node.lower) if node.lower is not None else ""
    upper = _unparse(node.upper) if node.upper is not None else ""
    step = f":{_unparse(node.step)}" if node.step is not None else ""
    return f"{lower}:{upper}{step}"


def _is_none_guard(statement: ast.stmt, name: str) -> bool:
    """`if name is None: name = <empty list/dict/set>` (one statement)."""
    if not (isinstance(statement, ast.If) and not statement.orelse and len(statement.body) == 1):
        return False
    test, body = statement.test, statement.body[0]
    is_check = (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == name
        and isinstance(test.ops[0], ast.Is)
        and _is_none(test.comparators[0])
    )
    empty = (
        isinstance(body, ast.Assign)
        and isinstance(body.value, (ast.List, ast.Dict, ast.Set))
        or (
            isinstance(body, ast.Assign)
            and isinstance(body.value, ast.Call)
            and isinstance(body.value.func, ast.Name)
            and body.value.func.id in ("list", "dict", "set")
            and not body.value.args
        )
    )
    targets = isinstance(body, ast.Assign) and [
        t.id for t in body.targets if isinstance(t, ast.Name)
    ] == [name]
    return is_check and empty and bool(targets)


def _only_docstring_before(function: _Function, statement: ast.stmt) -> bool:
    index = function.body.index(statement)
    before = function.body[:index]
    return (
        len(before) == 1
        and isinstance(before[0], ast.Expr)
        and isinstance(before[0].value, ast.Constant)
    )
