"""CodeContests (Li et al., 2022): competitive programming, hub id `deepmind/code_contests`.

    load("valid", None)                          # the hub (splits "train", "valid", "test")
    load("train", "code_contests-train.parquet")  # a local copy: .parquet/.arrow/.jsonl or a folder

Every problem is stdin/stdout: its `public_tests`, `private_tests` and `generated_tests` (each
`{"input": [...], "output": [...]}`) become `IOTest`s, in that order, duplicates dropped. The
reference is the first Python 3 solution, if any. Problems without tests are left out. Ids are
`codecontests/{name}`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from ledex.sandbox.programs import IOTest
from trainer.data import Task
from trainer.data._common import DataError, as_text, is_local, read_hub, read_local

HUB_ID = "deepmind/code_contests"
SPLITS = ("train", "valid", "test")
TEST_GROUPS = ("public_tests", "private_tests", "generated_tests")
# The dataset's `solutions.language` enum: UNKNOWN_LANGUAGE=0, PYTHON=1 (2.x), CPP=2, PYTHON3=3, JAVA=4.
PYTHON3 = 3


def load(split: str | None = None, path: str | None = None) -> list[Task]:
    location = path or HUB_ID
    if path is None and split is not None and split not in SPLITS:
        raise ValueError(
            f"unknown CodeContests split {split!r}: expected one of {', '.join(SPLITS)}"
        )
    rows = read_local(location, split) if is_local(location) else read_hub(location, split)
    tasks = [to_task(row, where=f"{location} (row {i})") for i, row in enumerate(rows)]
    kept = [task for task in tasks if task is not None]
    if len(kept) < len(tasks):
        warnings.warn(
            f"{location}: left out {len(tasks) - len(kept)} CodeContests problems without tests",
            stacklevel=2,
        )
    return kept


def to_task(row: Mapping[str, Any], *, where: str = "CodeContests") -> Task | None:
    """One CodeContests row as a Task; None when it has no tests."""
    if "name" not in row or "description" not in row:
        raise DataError(f"{where}: not a CodeContests row (needs 'name' and 'description')")
    tests: list[IOTest] = []
    for group in TEST_GROUPS:
        cases = row.get(group) or {}
        inputs, outputs = cases.get("input") or [], cases.get("output") or []
        if len(inputs) != len(outputs):
            raise DataError(f"{where}: {group} has {len(inputs)} inputs, {len(outputs)} outputs")
        for given, expected in zip(inputs, outputs, strict=True):
            test = IOTest(as_text(given), as_text(expected))
            if test not in tests:
                tests.append(test)
    if not tests:
        return None
    return Task(
        id=f"codecontests/{row['name']}",
        source="codecontests",
        description=str(row["description"]).strip(),
        tests=tuple(tests),
        reference=_python3_solution(row.get("solutions")),
    )


def _python3_solution(solutions: Any) -> str:
    if not isinstance(solutions, Mapping):
        return ""
    languages = solutions.get("language") or []
    for language, code in zip(languages, solutions.get("solution") or [], strict=False):
        if language in (PYTHON3, "PYTHON3"):
            return str(code)
    return ""
