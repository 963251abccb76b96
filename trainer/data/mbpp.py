"""MBPP (Austin et al., 2021; CC BY 4.0): 974 basic Python problems with three asserts each.

    load("train", "/data/mbpp")                 # a folder holding mbpp.jsonl (or the file itself)
    load("test", "sanitized-mbpp.json")         # the hand-verified subset, same task-id splits
    load("test", "google-research-datasets/mbpp")   # the hub, where it is reachable

Without a path: `$LEDEX_MBPP_PATH`, else the checkout's `../shared/data/mbpp/` when it exists,
else the hub id. Splits go by task id, as in the paper, the upstream README and the hub:
prompt 1-10 (few-shot examples), test 11-510, validation 511-600, train 601-974 (LeDex collects
from train). `test_setup_code` becomes `Task.setup` (it must run *after* the solution: tasks 367
and 927 build trees with the `Node` class the solution defines).
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import os
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from trainer.data import Task
from trainer.data._common import DataError, is_local, read_hub, read_local
from trainer.pysource import DEFINITIONS, defined_names, parse

HUB_ID = "google-research-datasets/mbpp"
SPLITS: dict[str, range] = {
    "prompt": range(1, 11),
    "test": range(11, 511),
    "validation": range(511, 601),
    "train": range(601, 975),
}
ENV_VAR = "LEDEX_MBPP_PATH"
# The checkout's neighbour, where this project's machines keep the upstream files.
_SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mbpp"
_FILES = ("mbpp.jsonl", "sanitized-mbpp.json")


def load(split: str | None = None, path: str | None = None) -> list[Task]:
    """The tasks of one split (every task when `split` is None), by task id."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown MBPP split {split!r}: expected one of {', '.join(SPLITS)}")
    location = path or default_location()
    rows = _rows(location, split)
    wanted = SPLITS[split] if split is not None else range(1, 975)
    tasks = [_task(row, location) for row in rows if int(row["task_id"]) in wanted]
    return sorted(tasks, key=lambda task: int(task.id.split("/")[1]))


def default_location() -> str:
    """Where MBPP is read from when no path is given."""
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    if (_SHARED / _FILES[0]).exists():
        return str(_SHARED)
    return HUB_ID


def _rows(location: str, split: str | None) -> list[dict[str, Any]]:
    if not is_local(location):
        # The hub's "full" config has the same rows (and the same id ranges) as mbpp.jsonl.
        return read_hub(location, split, "full")
    path = Path(location).expanduser()
    if path.is_dir():
        found = next((path / name for name in _FILES if (path / name).exists()), None)
        if found is None:
            # A folder of parquet files or save_to_disk output: read every split, pick by task id.
            return read_local(path, None)
        path = found
    return read_local(path)


def _task(row: Mapping[str, Any], where: str) -> Task:
    try:
        task_id = int(row["task_id"])
        text = row["text"] if "text" in row else row["prompt"]  # full vs sanitized
        tests = tuple(str(test) for test in row["test_list"])
        code = str(row["code"])
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{where}: an MBPP row lacks {error} (task {row.get('task_id')})") from None
    code = code.replace("\r\n", "\n")
    # The sanitized subset's `test_imports` are imports the asserts need: run them as setup.
    setup_parts = [str(row.get("test_setup_code") or ""), "\n".join(row.get("test_imports") or ())]
    setup = "\n".join(part.replace("\r\n", "\n") for part in setup_parts if part.strip())
    return Task(
        id=f"mbpp/{task_id}",
        source="mbpp",
        description=str(text).strip(),
        tests=tests,
        entry_point=entry_point(tests, code),
        setup=setup,
        reference=code,
    )


def entry_point(tests: Iterable[str], reference: str = "") -> str | None:
    """The function the asserts call: the first called name the reference defines, else the first
    called name that is not a builtin (`assert set(similar_elements(a, b)) == ...`)."""
    called = [name for test in tests for name in _called_names(test)]
    tree = parse(reference)
    defined = set(defined_names(tree)) if tree is not None else set()
    for name in called:
        if name in defined:
            return name
    return next((name for name in called if not hasattr(builtins, name)), None)


def _called_names(source: str) -> list[str]:
    tree = parse(source)
    if tree is None:
        return []
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    calls.sort(key=lambda node: (node.lineno, node.col_offset))  # walk is breadth-first
    return [call.func.id for call in calls if isinstance(call.func, ast.Name)]


def as_signature(task: Task) -> Task | None:
    """`task` in HumanEval's shape, so data made from MBPP train meets HumanEval's prompt: the
    reference's signature, with the description and the first assert as a `>>>` example in its
    docstring, and the definitions the asserts name (task 601's `Pair` class) before it. The
    asserts still judge, hidden: `prompt_code` marks the task as HumanEval-like, so prompts show no
    test and feedback tells only how the code failed (`trainer.prompts.hides_tests`).

    None when the reference has no top-level function `entry_point` to take the signature from.
    """
    tree = parse(task.reference)
    if tree is None or not task.entry_point:
        return None
    function = next(
        (node for node in tree.body
         if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == task.entry_point),
        None,
    )  # fmt: skip
    if function is None:
        return None
    asserts = [test for test in task.tests if isinstance(test, str)]
    # the classes the asserts, or the setup that builds their inputs (927's trees), construct
    named = {name for test in [*asserts, task.setup] for name in _names(test)} - {task.entry_point}
    needed = [node for node in tree.body if isinstance(node, DEFINITIONS) and node.name in named]
    keyword = "async def" if isinstance(function, ast.AsyncFunctionDef) else "def"
    returns = f" -> {ast.unparse(function.returns)}" if function.returns else ""
    # The description goes into a docstring: its backslashes and triple quotes must stay text.
    text = task.description.replace("\\", "\\\\").replace('"""', "'''")
    known = {task.entry_point, *(node.name for node in needed)}
    example = _example(asserts[0], task.entry_point, known) if asserts else ""
    docstring = f'"""{text}\n{example}"""'  # the closing quotes on a line of their own, always
    signature = f"{keyword} {function.name}({ast.unparse(function.args)}){returns}:\n"
    shown = [ast.unparse(node) for node in needed]
    code = "\n\n".join([*shown, signature + textwrap.indent(docstring, "    ") + "\n"])
    if parse(code) is None:
        return None
    return dataclasses.replace(task, description=code, prompt_code=code)


def _example(test: str, entry_point: str, known: set[str]) -> str:
    """`assert f(x) == y` as a doctest (`>>> f(x)`, then `y`), where `f` is `entry_point` and the
    call names nothing but `known` and builtins (927's `root` is built by hidden setup); "" for any
    other assert."""
    tree = parse(test)
    if tree is None or len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return ""
    check = tree.body[0].test
    if not (
        isinstance(check, ast.Compare)
        and len(check.ops) == 1
        and isinstance(check.ops[0], ast.Eq)
        and isinstance(check.left, ast.Call)
        and isinstance(check.left.func, ast.Name)
        and check.left.func.id == entry_point
    ):
        return ""
    called = {node.id for node in ast.walk(check.left) if isinstance(node, ast.Name)}
    if any(not (name in known or hasattr(builtins, name)) for name in called):
        return ""
    return f"\n>>> {ast.unparse(check.left)}\n{ast.unparse(check.comparators[0])}\n"


def _names(source: str) -> set[str]:
    tree = parse(source)
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} if tree else set()
