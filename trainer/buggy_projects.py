"""Buggy pytest projects in the editor's shape, made from correct code by injecting one bug.

    sources = mbpp_projects("train")                        # correct projects with pytest tests
    for bug in generate(sources, per_project=2, seed=0):    # each a project with one injected bug
        bug.write(folder)                                   # files + case.json (benchmarks/cases' format)

A *source project* is correct Python code with pytest tests that all pass. An MBPP problem becomes
one: its reference solution is a module named after its function, its three asserts are three test
functions in `tests/test_<module>.py`, and a `pyproject.toml` puts the project root on pytest's
path. `generate` applies the mutation operators of `trainer.mutants` to the non-test code, runs each
mutant's tests in the sandbox (`ledex.sandbox.run_pytest`, the same runner as the editor), and keeps
a mutant only when some test fails (so it is not equivalent), none times out (a hang is not the
bug we teach) and the failing tests fail the same way (all by an assertion, or all by another
exception, as a case of `benchmarks/cases` says). Operators are tried in a seeded order that
spreads them, so one source yields bugs of different kinds and no operator dominates.

Held out by *source project*, not by mutant (`SPLITS`): the training data comes from MBPP's train
split; the generated benchmark suite from its validation and test splits, which training never
sees. The hand-made cases in `benchmarks/cases/` and `examples/` are never a source.
"""

from __future__ import annotations

import ast
import difflib
import json
import keyword
import random
import re
import sys
import tempfile
import textwrap
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledex.errors import LedexError
from ledex.sandbox.pytest_runner import PytestRun, run_pytest
from trainer.mutants import Mutation, mutations
from trainer.project_shapes import check_shapes, reshape
from trainer.pysource import called_name, defined_names, parse

GENERATOR_VERSION = 2  # bump when the generated projects change: cached suites are rebuilt
PYPROJECT = '[tool.pytest.ini_options]\npythonpath = ["."]\n'
MBPP_LICENCE = "CC BY 4.0 (MBPP, Austin et al. 2021)"
# Where each use of the generator draws its source projects from (MBPP splits by task id).
SPLITS: dict[str, tuple[str, ...]] = {"train": ("train",), "heldout": ("validation", "test")}
# Where a generated bug may be: anywhere in the code, or only in a function the tests do not call.
BUG_PLACES = ("anywhere", "helpers")


@dataclass(frozen=True)
class SourceProject:
    """Correct code and its pytest tests: relative path -> text."""

    name: str  # unique, used in file and case names: "mbpp601_max_chain_length"
    files: dict[str, str]
    origin: str  # where the code comes from, for the data card: "mbpp/601"
    licence: str

    @property
    def code_files(self) -> list[str]:
        return sorted(
            path for path in self.files if path.endswith(".py") and not _is_test_path(path)
        )

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for relpath, text in self.files.items():
            path = folder / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return folder


@dataclass(frozen=True)
class BuggyProject:
    """A source project with one injected bug, and what its tests showed."""

    source: SourceProject
    file: str  # the file the bug is in
    mutation: Mutation
    buggy_text: str  # that file, with the bug
    failing: tuple[str, ...]  # node ids
    passing: tuple[str, ...]
    kind: str  # "assertion" or "exception": how the first failing test fails
    run: PytestRun | None = field(default=None, compare=False, repr=False)  # the run that found it

    @property
    def name(self) -> str:
        return f"{self.source.name}_{self.mutation.operator}_{self.mutation.line}"

    @property
    def files(self) -> dict[str, str]:
        return {**self.source.files, self.file: self.buggy_text}

    def write(self, folder: Path) -> Path:
        """The buggy project in `folder`, with a case.json in `benchmarks/cases/`'s format."""
        SourceProject(self.name, self.files, self.source.origin, self.source.licence).write(folder)
        (folder / "case.json").write_text(
            json.dumps(self.case(), indent=2) + "\n", encoding="utf-8"
        )
        return folder

    def changed_lines(self) -> tuple[list[str], list[str]]:
        """The lines of the buggy file that the bug changed, and what they are in the correct one."""
        return changed_lines(self.buggy_text, self.source.files[self.file])

    def case(self) -> dict:
        old, new = _unique_replacement(self.buggy_text, self.source.files[self.file])
        return {
            "name": self.name,
            "description": f"{self.mutation.function}: {self.mutation.description} (generated, {self.source.origin})",
            "failing": list(self.failing),
            "passing": list(self.passing),
            "bug": {"file": self.file, "function": self.mutation.function},
            "fix": {"file": self.file, "replace": [[old, new]]},
            "kind": self.kind,
            "tags": [self.mutation.operator, "generated", self.source.origin.split("/")[0]],
            "origin": self.source.origin,
            "licence": self.source.licence,
        }


# --- source projects -----------------------------------------------------------------------------


def mbpp_projects(
    use: str, path: str | None = None, shapes: Sequence[str] = ("function",)
) -> list[SourceProject]:
    """MBPP problems of a use's splits (`SPLITS`) as source projects, by task id. Each problem takes
    one of `shapes` (`trainer.project_shapes`): of those that fit it, the one used least so far
    (ties: the first in the list), so that a shape few problems fit is not crowded out."""
    from trainer.data import mbpp

    if use not in SPLITS:
        raise ValueError(f"unknown use {use!r}: expected one of {', '.join(SPLITS)}")
    check_shapes(shapes)
    projects: list[SourceProject] = []
    used = Counter({shape: 0 for shape in shapes})
    for split in SPLITS[use]:
        for task in mbpp.load(split, path):
            fits = {
                shape: project
                for shape in shapes
                if (project := mbpp_project(task.id, task.reference, task.tests, task.setup,
                                            task.entry_point, shape)) is not None
            }  # fmt: skip
            if fits:
                shape = min(fits, key=lambda s: (used[s], shapes.index(s)))
                used[shape] += 1
                projects.append(fits[shape])
    return projects


def mbpp_project(
    task_id: str,
    code: str,
    asserts: Sequence[object],
    setup: str = "",
    entry_point: str | None = None,
    shape: str = "function",
) -> SourceProject | None:
    """An MBPP problem as a project: `<entry>.py` (and `helpers.py` in the helper-module shape),
    `tests/test_<entry>.py`, `pyproject.toml`. None when the problem has no function to test, its
    code does not parse, or the shape does not fit it. A shape other than "function" is named in
    the project's name: `mbpp601_max_chain_length_method`."""
    tree = parse(code)
    if tree is None or not entry_point or not all(isinstance(a, str) for a in asserts):
        return None
    if entry_point not in defined_names(tree):
        return None
    module = _module_name(entry_point)
    shaped = reshape(shape, module, code, [str(a) for a in asserts], setup, entry_point)
    if shaped is None:
        return None
    imports = [
        ast.get_source_segment(code, node) or ""
        for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    names = ", ".join(dict.fromkeys(shaped.names))
    header = [*imports, *shaped.imports, f"from {module} import {names}"]
    tests = []
    for index, test in enumerate(shaped.asserts, start=1):
        body = textwrap.indent(test.strip().replace("\r\n", "\n"), "    ")
        tests.append(f"def test_{entry_point}_{index}():\n{body}\n")
    parts = ["\n".join(header) + "\n"]
    if shaped.setup.strip():
        parts.append(shaped.setup.strip() + "\n")
    test_file = "\n\n".join(parts + tests)
    number = task_id.split("/")[-1]
    files = {
        **shaped.files,
        f"tests/test_{module}.py": test_file,
        "pyproject.toml": PYPROJECT,
    }
    suffix = "" if shape == "function" else "_" + shape.replace("-", "_")
    return SourceProject(f"mbpp{number}_{entry_point}{suffix}", files, task_id, MBPP_LICENCE)


# --- generation ----------------------------------------------------------------------------------


def generate(
    sources: Iterable[SourceProject],
    *,
    per_project: int = 1,
    tries: int = 6,
    seed: int = 0,
    python: str | None = None,
    timeout: float = 30.0,
    workdir: Path | None = None,
    skip: set[str] | None = None,
    kept: Counter[str] | None = None,
    bugs: str = "anywhere",
) -> Iterator[BuggyProject]:
    """Up to `per_project` buggy projects per source, each with a bug some test catches.

    `bugs` says where the bug may be (`BUG_PLACES`): anywhere in the code, or only in a helper, a
    function the tests never call themselves (the failing test then calls a function that is
    right, and the bug is one call away: the editor's projects have many, MBPP's few).

    Each source's tests must pass first (a source whose own tests fail is skipped). Then at most
    `tries` mutants are run, in a seeded order that takes one mutation per operator before a
    second of any, the operators kept least so far first: `kept` counts the bugs kept by operator
    (updated here; pass the counts of a resumed run's bugs), so easy-to-catch operators (a missing
    return, a wrong variable) do not crowd out the others. `skip` names sources already done. The
    tests run with `python`, by default this interpreter (the projects have no environment of
    their own)."""
    check_bug_place(bugs)
    python = python or sys.executable
    kept = Counter() if kept is None else kept
    with tempfile.TemporaryDirectory(prefix="ledex-bugs-", dir=workdir) as scratch:
        for source in sources:
            if skip and source.name in skip:
                continue
            candidates = _candidates(source, bugs)
            if not candidates:
                continue  # nothing to mutate there: no need to run its tests
            folder = source.write(Path(scratch) / source.name)
            clean = run_pytest(folder, ["tests"], python=python, timeout=timeout)
            # An error without outcomes is the test runner broken, not the source.
            if clean.status == "error" and not clean.outcomes:
                raise LedexError(
                    f"pytest could not run the tests of {source.name}: {clean.message}"
                )
            if not clean.outcomes or not clean.passes() or clean.collection_errors:
                continue
            found_here = 0
            rng = random.Random(f"{seed}/{source.name}")
            for file, mutation in spread(candidates, rng, kept)[:tries]:
                buggy = mutation.apply(source.files[file])
                run = run_pytest(
                    folder, ["tests"], overlay={file: buggy}, python=python, timeout=timeout
                )
                found = _judge(source, file, mutation, buggy, run, clean)
                if found is not None:
                    kept[mutation.operator] += 1
                    yield found
                    found_here += 1
                    if found_here >= per_project:
                        break


def check_bug_place(bugs: str) -> None:
    if bugs not in BUG_PLACES:
        raise ValueError(f"bugs must be one of {', '.join(BUG_PLACES)}, got {bugs!r}")


def _candidates(source: SourceProject, bugs: str = "anywhere") -> list[tuple[str, Mutation]]:
    found = [(file, m) for file in source.code_files for m in mutations(source.files[file])]
    if bugs == "helpers":
        called = called_by_tests(source)
        found = [(file, m) for file, m in found if m.function.rsplit(".", 1)[-1] not in called]
    return found


def called_by_tests(source: SourceProject) -> set[str]:
    """The names of the functions and methods that the source's test files call by name: `f(...)`,
    `obj.f(...)`. What Python calls for them is not there (`__init__` through `Cls(...)`, `__lt__`
    through a sort): to the model such a method is one call away from the test, like a helper."""
    called: set[str] = set()
    for path, text in source.files.items():
        tree = parse(text) if path.endswith(".py") and _is_test_path(path) else None
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Call) and (name := called_name(node)) is not None:
                called.add(name)
    return called


def spread(
    candidates: list[tuple[str, Mutation]], rng: random.Random, kept: Counter[str]
) -> list[tuple[str, Mutation]]:
    """Shuffled, then interleaved by operator: the operators kept least so far first, ties in a
    shuffled order."""
    by_operator: dict[str, list[tuple[str, Mutation]]] = {}
    for candidate in candidates:
        by_operator.setdefault(candidate[1].operator, []).append(candidate)
    operators = sorted(by_operator)
    rng.shuffle(operators)
    operators.sort(key=lambda op: kept[op])  # stable: the shuffle breaks ties
    for group in by_operator.values():
        rng.shuffle(group)
    spread = []
    for depth in range(max((len(g) for g in by_operator.values()), default=0)):
        spread += [by_operator[op][depth] for op in operators if depth < len(by_operator[op])]
    return spread


def _judge(
    source: SourceProject,
    file: str,
    mutation: Mutation,
    buggy: str,
    run: PytestRun,
    clean: PytestRun,
) -> BuggyProject | None:
    if run.status not in ("ok",) or run.collection_errors:
        return None  # a hang, a crash, or a module that no longer imports: not a bug to teach
    failing = tuple(o.node_id for o in run.outcomes.values() if o.failed)
    if not failing or any(run.outcomes[node].outcome == "timeout" for node in failing):
        return None
    passing = tuple(node for node in clean.outcomes if node not in failing)
    kinds = {_kind(run.outcomes[node].message) for node in failing}
    if len(kinds) > 1:
        return None  # a case has one kind of failure (benchmarks/cases' format)
    return BuggyProject(source, file, mutation, buggy, failing, passing, kinds.pop(), run)


def _kind(message: str | None) -> str:
    """How a test fails, as case.json says it: a failed assert (or pytest.fail, DID NOT RAISE) is an
    "assertion", anything else an "exception" (`benchmarks/cases/check_cases.py` checks the same)."""
    text = (message or "").lstrip()
    return "assertion" if text.startswith(("assert", "AssertionError", "Failed:")) else "exception"


# --- the held-out suite --------------------------------------------------------------------------


def heldout_suite(
    folder: Path,
    *,
    size: int = 240,
    seed: int = 0,
    path: str | None = None,
    python: str | None = None,
    progress: bool = False,
    shapes: Sequence[str] = ("function",),
    bugs: str = "anywhere",
) -> list[Path]:
    """Write (or reuse) the generated held-out benchmark suite: `size` buggy projects, one per
    source project, from MBPP's validation and test splits in a seeded order, each problem in one
    of `shapes` (`mbpp_projects`), each bug where `bugs` says (`generate`; fewer than `size` where
    fewer sources have such a place). Returns the case folders. A folder written by this generator
    version with these settings is reused as is."""
    check_bug_place(bugs)
    stamp: dict[str, Any] = {
        "generator": GENERATOR_VERSION,
        "size": size,
        "seed": seed,
        "sources": list(SPLITS["heldout"]),
    }
    if tuple(shapes) != ("function",):  # the suites written before shapes existed stay valid
        stamp["shapes"] = list(shapes)
    if bugs != "anywhere":  # as for shapes: the suites written before stay valid
        stamp["bugs"] = bugs
    marker = folder / "suite.json"
    if marker.exists():
        theirs = json.loads(marker.read_text(encoding="utf-8"))
        if theirs.get("settings") != stamp:
            raise LedexError(f"{folder} holds a suite made with other settings ({theirs.get('settings')}); "
                             "choose another folder")  # fmt: skip
        if theirs.get("complete"):
            return sorted(p.parent for p in folder.glob("*/case.json"))
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"settings": stamp, "complete": False}) + "\n", encoding="utf-8")
    sources = mbpp_projects("heldout", path, shapes)
    random.Random(seed).shuffle(sources)
    written = sorted(p.parent for p in folder.glob("*/case.json"))
    kept = Counter(_operator(case) for case in written)  # a resumed suite balances as before
    done = {case.name for case in written}
    bar = _bar(size, progress, len(written))
    for bug in generate(sources, per_project=1, seed=seed, python=python,
                        skip=_done_sources(done, sources), kept=kept, bugs=bugs):  # fmt: skip
        if len(written) >= size:
            break
        written.append(bug.write(folder / bug.name))
        bar.update(1)
    bar.close()
    counts = dict(Counter(_operator(case) for case in written).most_common())
    summary = {"settings": stamp, "complete": True, "cases": len(written), "operators": counts}
    marker.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return sorted(written)


def _operator(case: Path) -> str:
    """A written case's operator: the first of its tags."""
    return str(json.loads((case / "case.json").read_text(encoding="utf-8"))["tags"][0])


def _done_sources(done: set[str], sources: Sequence[SourceProject]) -> set[str]:
    return {s.name for s in sources if any(name.startswith(s.name + "_") for name in done)}


def _bar(total: int, enabled: bool, initial: int = 0) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="project",
        desc="generating",
        disable=not enabled,
        file=sys.stderr,
    )


# --- small helpers -------------------------------------------------------------------------------


def _is_test_path(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return (
        path.startswith("tests/")
        or name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
    )


def _module_name(entry_point: str) -> str:
    name = re.sub(r"\W", "_", entry_point)
    if keyword.iskeyword(name) or name in sys.stdlib_module_names or name.startswith("test"):
        name = f"{name}_solution"
    return name


def changed_lines(buggy: str, fixed: str) -> tuple[list[str], list[str]]:
    """The lines of `buggy` that differ from `fixed`, and what they are in `fixed` (one change:
    from the first differing line to the last)."""
    old, new = buggy.splitlines(), fixed.splitlines()
    a1, a2, b1, b2 = changed_span(old, new)
    return old[a1:a2], new[b1:b2]


def changed_span(old_lines: list[str], new_lines: list[str]) -> tuple[int, int, int, int]:
    """(a1, a2, b1, b2): old_lines[a1:a2] became new_lines[b1:b2], from the first differing line
    to the last (one mutation is one change)."""
    opcodes = [
        op
        for op in difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_opcodes()
        if op[0] != "equal"
    ]
    if not opcodes:
        raise ValueError("the two versions of the file are the same")
    return opcodes[0][1], opcodes[-1][2], opcodes[0][3], opcodes[-1][4]


def _unique_replacement(buggy: str, fixed: str) -> tuple[str, str]:
    """The smallest run of whole lines around the change whose buggy text occurs once in the file,
    and what it becomes in the fixed file."""
    old_lines, new_lines = buggy.splitlines(keepends=True), fixed.splitlines(keepends=True)
    a1, a2, b1, b2 = changed_span(old_lines, new_lines)
    while True:
        old = "".join(old_lines[a1:a2])
        if old and buggy.count(old) == 1:
            return old, "".join(new_lines[b1:b2])
        if a1 == 0 and a2 == len(old_lines):
            return old, "".join(new_lines[b1:b2])
        if a1 > 0:
            a1, b1 = a1 - 1, b1 - 1
        if a2 < len(old_lines):
            a2, b2 = a2 + 1, b2 + 1
