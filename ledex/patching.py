"""Putting a model's fixed function back into a file, by symbol, with the AST.

The model returns complete functions (or a class with the methods it changed). Each one replaces
the definition of the same name in the file: decorators included, indentation adapted (a method
may come back as a top-level `def`), line endings kept, and nothing outside the replaced
definitions touched. Imports the fix needs that the file lacks are added after the file's last
top-level import. A reply that matches no definition in the file is refused.
"""

from __future__ import annotations

import ast
import difflib
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)
_Def = ast.FunctionDef | ast.AsyncFunctionDef

# the message of a fix that changes nothing (benchmarks/echoes.py counts candidates by it)
UNCHANGED = "the fix is identical to the current code"


@dataclass(frozen=True)
class Symbol:
    """A function or method definition in a file. Lines are 1-based and inclusive."""

    qualname: str  # "func", "Class.method", "Outer.Inner.method"
    start_line: int  # the first decorator, or the `def` line
    end_line: int
    indent: str
    is_method: bool

    @property
    def name(self) -> str:
        return self.qualname.rsplit(".", 1)[-1]

    @property
    def class_name(self) -> str | None:
        return self.qualname.rsplit(".", 1)[0] if "." in self.qualname else None


@dataclass(frozen=True)
class TextEdit:
    """Replace lines start_line..end_line (1-based, inclusive, of the original file) with `text`.

    `end_line == start_line - 1` is an insertion before `start_line`.
    """

    start_line: int
    end_line: int
    text: str


@dataclass(frozen=True)
class Patch:
    source: str
    new_source: str
    replaced: tuple[str, ...]  # qualnames, in file order
    added_imports: tuple[str, ...] = ()
    edits: tuple[TextEdit, ...] = ()
    ignored: tuple[str, ...] = field(default=())  # definitions in the reply with no match

    def diff(self, path: str = "file.py") -> str:
        return unified_diff(self.source, self.new_source, path)


@dataclass(frozen=True)
class PatchError:
    message: str


# --- reading a file's definitions ----------------------------------------------------------------


def find_symbols(source: str) -> dict[str, Symbol]:
    """Module-level functions and methods of (nested) classes; not functions inside functions.

    Definitions sharing a name (a property's getter and setter, `typing.overload` variants) are
    one symbol spanning all of them: they are read and replaced together.
    """
    tree = ast.parse(source)
    lines = source.splitlines()
    symbols: dict[str, Symbol] = {}
    for symbol in _walk(tree.body, "", lines, in_class=False):
        if symbol.qualname in symbols:
            first = symbols[symbol.qualname]
            symbol = Symbol(symbol.qualname, min(first.start_line, symbol.start_line),
                            max(first.end_line, symbol.end_line), first.indent, first.is_method)  # fmt: skip
        symbols[symbol.qualname] = symbol
    return symbols


def _walk(body: list[ast.stmt], prefix: str, lines: list[str], *, in_class: bool) -> Iterator[Symbol]:
    for node in body:
        if isinstance(node, _DEFS):
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            line = lines[node.lineno - 1]
            indent = line[: len(line) - len(line.lstrip())]
            yield Symbol(f"{prefix}{node.name}", start, node.end_lineno or node.lineno, indent, in_class)
        elif isinstance(node, ast.ClassDef):
            yield from _walk(node.body, f"{prefix}{node.name}.", lines, in_class=True)


def symbol_at(source: str, line: int) -> Symbol | None:
    """The innermost function or method whose definition spans `line` (1-based)."""
    containing = [s for s in find_symbols(source).values() if s.start_line <= line <= s.end_line]
    return max(containing, key=lambda s: s.start_line, default=None)


def symbol_source(source: str, symbol: Symbol) -> str:
    lines = source.splitlines(keepends=True)
    return "".join(lines[symbol.start_line - 1 : symbol.end_line])


def _find_class(body: list[ast.stmt], path: list[str]) -> ast.ClassDef | None:
    for node in body:
        if isinstance(node, ast.ClassDef) and node.name == path[0]:
            return node if len(path) == 1 else _find_class(node.body, path[1:])
    return None


# --- applying a fix ------------------------------------------------------------------------------


def apply_fix(source: str, fixed_code: str, *, target: str | None = None) -> Patch | PatchError:
    """Replace every definition in `source` that `fixed_code` redefines.

    `target` (a qualname such as "Stack.pop") lets a top-level `def pop` in the reply replace the
    method it stands for. Never raises for bad input: a `PatchError` says what went wrong.
    """
    try:
        symbols = find_symbols(source)
    except SyntaxError as error:
        return PatchError(f"the file does not parse (line {error.lineno}: {error.msg})")
    try:
        reply_tree = ast.parse(fixed_code)
    except SyntaxError as error:
        return PatchError(f"the fixed code does not parse (line {error.lineno}: {error.msg})")
    reply_lines = fixed_code.splitlines(keepends=True)
    replacements: dict[str, str] = {}
    ignored: list[str] = []
    for qualname, node in definitions(reply_tree.body):
        if _is_stub(node):  # `def size(self): ...` echoed from the prompt's class outline
            continue
        match = _match(qualname, symbols, target)
        if match is None:
            ignored.append(qualname)
            continue
        text = _definition_text(reply_lines, node)
        previous = replacements.get(match.qualname)
        replacements[match.qualname] = text if previous is None else f"{previous.rstrip()}\n\n{text}"
    if not replacements:
        names = ", ".join(ignored) or "nothing"
        return PatchError(f"the fix defines {names}, which matches no function in the file")
    newline = "\r\n" if "\r\n" in source else "\n"
    lines = source.splitlines(keepends=True)
    edits = []
    for name in sorted(replacements, key=lambda n: symbols[n].start_line):
        edit = _edit(symbols[name], replacements[name], newline)
        if "".join(lines[edit.start_line - 1 : edit.end_line]).rstrip() == edit.text.rstrip():
            del replacements[name]  # echoed back unchanged: not part of the fix
        else:
            edits.append(edit)
    added = _missing_imports(source, reply_tree)
    if not replacements and not added:
        return PatchError(UNCHANGED)
    if added:  # an import alone is a fix: the function as it was, its NameError mended
        edits.append(_import_edit(source, added, newline))
    new_source = _apply_edits(source, edits)
    replaced = tuple(e for e in sorted(replacements, key=lambda n: symbols[n].start_line))
    return Patch(source, new_source, replaced, tuple(added), tuple(edits), tuple(ignored))


def definitions(body: list[ast.stmt], prefix: str = "") -> Iterator[tuple[str, _Def]]:
    """(qualname, node) of every function and method defined in `body`, classes searched through."""
    for node in body:
        if isinstance(node, _DEFS):
            yield f"{prefix}{node.name}", node
        elif isinstance(node, ast.ClassDef):
            yield from definitions(node.body, f"{prefix}{node.name}.")


def _is_stub(node: _Def) -> bool:
    body = list(node.body)
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        body = body[1:]  # the docstring
    return all(
        isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                                       and stmt.value.value is Ellipsis)
        for stmt in body
    )


def _match(qualname: str, symbols: dict[str, Symbol], target: str | None) -> Symbol | None:
    if qualname in symbols:
        return symbols[qualname]
    name = qualname.rsplit(".", 1)[-1]
    # A method returned as a plain function (or inside a re-declared class of another name).
    if target and target in symbols and symbols[target].name == name:
        return symbols[target]
    methods = [s for s in symbols.values() if s.name == name]
    return methods[0] if len(methods) == 1 else None


def _definition_text(lines: list[str], node: _Def) -> str:
    start = min([d.lineno for d in node.decorator_list] + [node.lineno])
    return textwrap.dedent("".join(lines[start - 1 : node.end_lineno]))


def _edit(symbol: Symbol, text: str, newline: str) -> TextEdit:
    body = textwrap.indent(text.replace("\r\n", "\n").rstrip("\n") + "\n", symbol.indent,
                           lambda line: bool(line.strip()))  # fmt: skip
    return TextEdit(symbol.start_line, symbol.end_line, body.replace("\n", newline))


def _apply_edits(source: str, edits: list[TextEdit]) -> str:
    lines = source.splitlines(keepends=True)
    for edit in sorted(edits, key=lambda e: e.start_line, reverse=True):
        text = edit.text
        if edit.end_line >= edit.start_line and not lines[edit.end_line - 1].endswith(("\n", "\r")):
            text = text.rstrip("\r\n")  # the definition ended the file without a newline
        lines[edit.start_line - 1 : max(edit.end_line, edit.start_line - 1)] = [text]
    return "".join(lines)


def _missing_imports(source: str, reply_tree: ast.Module) -> list[str]:
    """Top-level imports of the reply that the file does not have anywhere."""
    present = {ast.unparse(n) for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Import, ast.ImportFrom))}
    wanted = [ast.unparse(n) for n in reply_tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    return [line for line in dict.fromkeys(wanted) if line not in present]


def _import_edit(source: str, imports: list[str], newline: str) -> TextEdit:
    """Insert after the last top-level import (or the module docstring, or at the top)."""
    tree = ast.parse(source)
    existing = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    at = max(n.end_lineno or n.lineno for n in existing) if existing else _after_docstring(tree)
    return TextEdit(at + 1, at, "".join(line + newline for line in imports))


def _after_docstring(tree: ast.Module) -> int:
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first.end_lineno or 0
    return 0


def unified_diff(old: str, new: str, path: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}"
        )
    )
