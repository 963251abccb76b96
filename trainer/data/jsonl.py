"""Your own problems: one JSON object per line (`ledex-train collect --source jsonl --path FILE`).

Schema (one object per line; blank lines are ignored):

    field        type                         required  meaning
    id           string                       yes       unique within the file, e.g. "mylib/parse_date"
    description  string                       yes       the task, as the model reads it
    tests        list, at least one item      yes       each item is either
                                                          - a string: Python statements with asserts,
                                                            run after the solution
                                                            ("assert add(1, 2) == 3"), or
                                                          - {"input": str, "output": str}: the whole
                                                            program gets `input` on stdin, its stdout
                                                            must equal `output` (line by line,
                                                            whitespace-normalised)
    entry_point  string                       no        the function the tests call
    setup        string                       no        runs after the solution, before the tests
    reference    string                       no        a known-correct solution
    prompt_code  string                       no        code the solution must start from
    split        string                       no        selects problems with `--split NAME`

Example:

    {"id": "add", "description": "Add two numbers.", "tests": ["assert add(1, 2) == 3"], "entry_point": "add"}
    {"id": "echo", "description": "Print the input reversed.", "tests": [{"input": "ab\\n", "output": "ba\\n"}]}

Any problem with the file is a `DataError` naming the file and line; nothing is silently skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ledex.sandbox.programs import IOTest, Test
from trainer.data import Task
from trainer.data._common import DataError

FIELDS = {
    "id": str,
    "description": str,
    "tests": list,
    "entry_point": str,
    "setup": str,
    "reference": str,
    "prompt_code": str,
    "split": str,
}
REQUIRED = ("id", "description", "tests")


def load(split: str | None = None, path: str | None = None) -> list[Task]:
    """The problems of a JSONL file (those whose `split` is `split`, when given)."""
    if path is None:
        raise DataError("the jsonl source needs a file: pass --path FILE (schema: trainer/data/jsonl.py)")
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"{file}: no such file")
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{file}:{number}"
            row = _parse(line, where)
            task = to_task(row, where)
            if task.id in seen:
                raise DataError(f"{where}: id {task.id!r} already used on line {seen[task.id]}")
            seen[task.id] = number
            if split is None or row.get("split") == split:
                tasks.append(task)
    return tasks


def _parse(line: str, where: str) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except ValueError as error:
        raise DataError(f"{where}: not valid JSON ({error})") from None
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    return row


def to_task(row: Mapping[str, Any], where: str) -> Task:
    for name in REQUIRED:
        if name not in row:
            raise DataError(f"{where}: missing required field {name!r}")
    for name, kind in FIELDS.items():
        if name in row and row[name] is not None and not isinstance(row[name], kind):
            raise DataError(
                f"{where}: field {name!r} must be a {_TYPE_NAMES[kind]}, "
                f"not {type(row[name]).__name__}"
            )
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise DataError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
    if not row["id"].strip():
        raise DataError(f"{where}: 'id' is empty")
    if not row["tests"]:
        raise DataError(f"{where}: 'tests' is empty (a problem without tests checks nothing)")
    tests = tuple(_test(test, f"{where}: tests[{i}]") for i, test in enumerate(row["tests"]))
    return Task(
        id=row["id"],
        source="jsonl",
        description=row["description"],
        tests=tests,
        entry_point=row.get("entry_point") or None,
        setup=row.get("setup") or "",
        reference=row.get("reference") or "",
        prompt_code=row.get("prompt_code") or "",
    )


_TYPE_NAMES = {str: "string", list: "list"}


def _test(value: Any, where: str) -> Test:
    if isinstance(value, str):
        if not value.strip():
            raise DataError(f"{where} is an empty string")
        try:
            compile(value, "<test>", "exec")
        except SyntaxError as error:
            raise DataError(f"{where} is not valid Python ({error.msg}, line {error.lineno})") from None
        return value
    if isinstance(value, dict):
        if set(value) != {"input", "output"}:
            raise DataError(f"{where} must have exactly the keys 'input' and 'output'")
        if not all(isinstance(value[k], str) for k in ("input", "output")):
            raise DataError(f"{where}: 'input' and 'output' must be strings")
        return IOTest(value["input"], value["output"])
    raise DataError(f"{where} must be an assert string or an {{input, output}} object")
