"""APPS (Hendrycks et al., 2021): competitive-programming problems, hub id `codeparrot/apps`.

    load("test", None)                     # the hub (splits "train" and "test")
    load("train", "apps-train.jsonl")      # a local copy: .jsonl/.json/.parquet/.arrow or a folder

Each row's `input_output` (JSON text) holds `inputs` and `outputs`, and `fn_name` for call-based
problems:
- without `fn_name` every pair is a stdin/stdout test (`IOTest`): the whole program reads the input
  and must print the output (compared line by line, whitespace-normalised);
- with `fn_name` every pair is a call: `inputs[i]` is the argument list and `outputs[i]` the result,
  which APPS wraps in a one-element list. The test becomes a readable assert,
  `assert fn_name(*inputs[i]) == outputs[i][0]` (`Solution().fn_name(...)` when the starter code is
  a LeetCode-style `class Solution`), so the model sees exactly what is checked.
Problems without tests (some of APPS' train split) are left out. Ids are `apps/{split}/{problem_id}`
(problem ids repeat across APPS' splits).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from ledex.sandbox.programs import IOTest, Test
from trainer.data import Task
from trainer.data._common import DataError, as_text, is_local, json_field, read_hub, read_local

HUB_ID = "codeparrot/apps"
SPLITS = ("train", "test")


def load(split: str | None = None, path: str | None = None) -> list[Task]:
    location = path or HUB_ID
    if path is None and split is not None and split not in SPLITS:
        raise ValueError(f"unknown APPS split {split!r}: expected one of {', '.join(SPLITS)}")
    rows = read_local(location, split) if is_local(location) else read_hub(location, split)
    tasks: list[Task] = []
    skipped = 0
    for index, row in enumerate(rows):
        task = to_task(row, split=split, where=f"{location} (row {index})")
        if task is None:
            skipped += 1
        else:
            tasks.append(task)
    if skipped:
        warnings.warn(f"{location}: left out {skipped} APPS problems that have no tests", stacklevel=2)
    return tasks


def to_task(row: Mapping[str, Any], *, split: str | None = None, where: str = "APPS") -> Task | None:
    """One APPS row as a Task; None when it has no tests."""
    if "problem_id" not in row or "question" not in row:
        raise DataError(f"{where}: not an APPS row (needs 'problem_id' and 'question')")
    io = json_field(row, "input_output", where) or {}
    inputs, outputs = io.get("inputs") or [], io.get("outputs") or []
    if len(inputs) != len(outputs):
        raise DataError(f"{where}: {len(inputs)} inputs but {len(outputs)} outputs")
    if not inputs:
        return None
    starter = str(row.get("starter_code") or "")
    fn_name = io.get("fn_name")
    tests: tuple[Test, ...]
    if fn_name:
        call = f"Solution().{fn_name}" if "class Solution" in starter else str(fn_name)
        tests = tuple(_call_test(call, args, out) for args, out in zip(inputs, outputs, strict=True))
    else:
        tests = tuple(IOTest(as_text(i), as_text(o)) for i, o in zip(inputs, outputs, strict=True))
    solutions = json_field(row, "solutions", where) or []
    description = str(row["question"]).strip()
    if starter.strip():
        description += f"\n\nStart from this code:\n```python\n{starter.rstrip()}\n```"
    prefix = f"apps/{split}" if split else "apps"
    return Task(
        id=f"{prefix}/{row['problem_id']}",
        source="apps",
        description=description,
        tests=tests,
        entry_point=str(fn_name) if fn_name else None,
        reference=str(solutions[0]) if solutions else "",
        prompt_code=starter,
    )


def _call_test(call: str, args: Any, expected: Any) -> str:
    if not isinstance(args, list):
        args = [args]
    # APPS stores a call's result as a one-element list (its checker accepts either form).
    if isinstance(expected, list) and len(expected) == 1:
        expected = expected[0]
    shown = ", ".join(_literal(arg) for arg in args)
    return f"assert {call}({shown}) == {_literal(expected)}"


def _literal(value: Any) -> str:
    """A JSON value as a Python literal: json.loads gave Python values, so repr is the literal
    (true -> True, null -> None)."""
    return repr(value)
