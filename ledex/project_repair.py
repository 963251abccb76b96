"""Repairing a failing pytest test in a project: what to fix, what to ask, how to verify.

- The function under repair is the one the innermost traceback frame in the user's code (outside
  the test files) points into; when the assertion fails in the test itself, it is the project
  function the failing line calls (else the first one the test calls).
- The prompt gets that function (with its class for methods), the project functions it calls
  (bugs often sit one call away), the failing test's source and the failure, within a budget.
- A candidate is put back by symbol (`ledex.patching`) into any of those files, and verified by
  running the failing test and the tests that passed before in the same test files, on a shadow
  workspace (`ledex.sandbox.run_pytest`). The user's files are never written here.
"""

from __future__ import annotations

import ast
import math
import os
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from ledex import dialogue, feedback, patching, source_text
from ledex.models.base import Backend
from ledex.patching import Patch, PatchError, Symbol
from ledex.repair import (
    Candidate,
    RepairConfig,
    RepairResult,
    RoundRecord,
    Verdict,
    normalise_code,
    repair,
)
from ledex.sandbox.pytest_runner import Call, PytestRun, TestOutcome, node_file, run_pytest

_T = TypeVar("_T")

_SKIPPED_DIRS = frozenset({".git", ".venv", "venv", "env", ".tox", ".nox", "node_modules", "build",
                           "dist", "__pycache__", ".pytest_cache", "site-packages"})  # fmt: skip
_MAX_FILES = 2000
_MAX_RELATED = 3
CHARS_PER_TOKEN = 3  # conservative for code; used only to keep prompts within the context


@dataclass(frozen=True)
class Site:
    """A function to repair: its file (relative to the project) and symbol."""

    relpath: str
    symbol: Symbol
    reason: str


@dataclass
class ProjectTask:
    """Everything one repair needs, computed once from the failing run."""

    project: Path
    test: TestOutcome
    site: Site
    related: list[Site]
    sources: dict[str, str]  # relpath -> text, as read at the start (the fix applies to these)
    check_nodes: list[str]  # what verification runs (the failing test's file(s))
    previously_passing: list[str]
    python: str | None = None
    timeout: float = 60.0
    truncated: list[str] = field(default_factory=list)
    #: the user's extra pytest arguments (the language server's setting), in every verification
    #: run as in the run that found the failure, so the same tests are collected
    pytest_args: tuple[str, ...] = ()
    #: other failing tests that exercise the function under repair (other cases of a parametrized
    #: test, other tests of the function): a candidate is judged by how many of them it fixes too
    also_failing: list[str] = field(default_factory=list)
    #: the failing test's first calls into the project's code, from a traced run of it alone
    #: (`with_calls`): shown with the failure, so a bug in a helper is visible
    calls: list[Call] = field(default_factory=list)

    @property
    def node_id(self) -> str:
        return self.test.node_id


# --- what to repair ------------------------------------------------------------------------------


def is_test_file(path: str) -> bool:
    name = os.path.basename(path)
    return name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"


Index = dict[str, list[tuple[str, Symbol]]]


def locate_site(project: Path, outcome: TestOutcome, index: Index | None = None) -> Site | None:
    """The function under repair for a failing test, or None if none can be found.

    `index` is `definitions(project)` when the caller already has it (it parses every file)."""
    for frame in reversed(outcome.frames_within(project)):
        relpath = _relative(project, frame.path)
        if relpath is None or is_test_file(relpath) or _skipped(relpath):
            continue
        source = _read(project / relpath)
        symbol = source and _safe(patching.symbol_at, source, frame.line)
        if symbol:
            return Site(relpath, symbol, "the failure happens in this function")
    used = used_by_test(project, outcome, index)
    if not used:
        return None
    return Site(used[0].relpath, used[0].symbol, "the failing test calls this function")


def used_by_test(project: Path, outcome: TestOutcome, index: Index | None = None) -> list[Site]:
    """Project functions the failing test uses, those on its failing line first."""
    location = outcome.location
    if location is None:
        return []
    tree = _safe(lambda: ast.parse(_read(Path(location.path)) or ""))
    function = _function_at(tree, location.line) if tree is not None else None
    if tree is None or function is None:
        return []
    failing = [f.line for f in outcome.frames if f.path == location.path]
    function = (_function_at(tree, failing[-1]) if failing else None) or function
    index = definitions(project) if index is None else index
    sites = [Site(*index[name][0], reason="used by the failing test")
             for name in _calls(function, failing[-1] if failing else None) if len(index.get(name, [])) == 1]  # fmt: skip
    # `Paginator(items).page_count == 3`: the constructor merely builds what the line checks.
    # `test_remove_decreases_count`: tests are named after what they test, the subject first;
    # the failing line often only reads the result back (`count`).
    words = _words(function.name)
    sites.sort(key=lambda site: (site.symbol.name == "__init__", _named_at(words, site.symbol.name)))
    return sites


def _words(name: str) -> list[str]:
    return [word for word in name.lower().split("_") if word]


def _named_at(words: list[str], name: str) -> float:
    """Where the function's name occurs in the test's name, as a run of words (inf if it does not)."""
    wanted = _words(name)
    if not wanted or wanted == ["test"]:
        return math.inf
    for start in range(1, len(words) - len(wanted) + 1):  # words[0] is "test"
        if words[start : start + len(wanted)] == wanted:
            return start
    return math.inf


def _function_at(tree: ast.AST, line: int) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    best = None
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        start = min([d.lineno for d in node.decorator_list] + [node.lineno])  # parametrize lines count
        if start <= line <= (node.end_lineno or 0) and (best is None or node.lineno > best.lineno):
            best = node
    return best


def _calls(function: ast.AST, failing_line: int | None) -> list[str]:
    """Names the code uses that may be project functions: calls, attributes (properties, methods
    passed as values) and plain names (`key=parse_version`); the failing line's first."""
    found: list[tuple[bool, int, int, str]] = []
    for node in ast.walk(function):
        name = None
        if isinstance(node, ast.Call):
            target = node.func
            name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
        elif isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            name = node.id
        if name and isinstance(node, ast.expr):
            found.append((node.lineno != failing_line, node.lineno, node.col_offset, name))
    return list(dict.fromkeys(name for *_, name in sorted(found)))


def definitions(project: Path) -> Index:
    """Every function and method of the project's non-test code, by plain name."""
    index: Index = {}
    for relpath in _source_files(project):
        source = _read(project / relpath)
        symbols = _safe(patching.find_symbols, source or "") or {}
        for symbol in symbols.values():
            index.setdefault(symbol.name, []).append((relpath, symbol))
            if symbol.name == "__init__" and symbol.class_name:  # `Registry()` runs Registry.__init__
                index.setdefault(symbol.class_name.rsplit(".", 1)[-1], []).append((relpath, symbol))
    return index


def related_sites(project: Path, site: Site, sources: dict[str, str], index: Index | None = None) -> list[Site]:
    """Project functions that the function under repair calls (one level), same file first."""
    source = sources.get(site.relpath) or _read(project / site.relpath) or ""
    tree = _safe(lambda: ast.parse(source))
    node = tree and _function_at(tree, site.symbol.start_line + _decorator_offset(source, site.symbol))
    if node is None:
        return []
    index = definitions(project) if index is None else index
    found: list[Site] = []
    for name in _calls(node, None):
        for relpath, symbol in index.get(name, []):
            if symbol.qualname == site.symbol.qualname and relpath == site.relpath:
                continue
            if len(index[name]) == 1 or relpath == site.relpath:
                found.append(Site(relpath, symbol, f"called by {site.symbol.qualname}"))
    found.sort(key=lambda s: s.relpath != site.relpath)
    return found[:_MAX_RELATED]


def _decorator_offset(source: str, symbol: Symbol) -> int:
    lines = source.splitlines()[symbol.start_line - 1 : symbol.end_line]
    for offset, line in enumerate(lines):
        if line.lstrip().startswith(("def ", "async def ")):
            return offset
    return 0


def _source_files(project: Path) -> list[str]:
    found: list[str] = []
    for root, dirs, files in os.walk(project):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(".py") and not is_test_file(name):
                found.append(os.path.relpath(os.path.join(root, name), project))
                if len(found) >= _MAX_FILES:
                    return found
    return found


# --- building the task ---------------------------------------------------------------------------


def prepare(
    project: Path,
    run: PytestRun,
    outcome: TestOutcome,
    *,
    python: str | None = None,
    timeout: float = 60.0,
    pytest_args: Sequence[str] = (),
) -> ProjectTask | str:
    """A ProjectTask for a failing test, or a message saying why it cannot be repaired."""
    project = project.resolve()
    index = definitions(project)  # parses every project file: once per task
    site = locate_site(project, outcome, index)
    if site is None:
        return f"cannot tell which function {outcome.node_id} exercises in {project}"
    sources = {site.relpath: _read(project / site.relpath) or ""}
    related = related_sites(project, site, sources, index)
    shown = {(s.relpath, s.symbol.qualname) for s in [site, *related]}
    for other in used_by_test(project, outcome, index):
        if len(related) >= _MAX_RELATED + 1:
            break
        if (other.relpath, other.symbol.qualname) not in shown:
            related.append(other)
            shown.add((other.relpath, other.symbol.qualname))
    for other in related:
        sources.setdefault(other.relpath, _read(project / other.relpath) or "")
    test_file = node_file(outcome.node_id)
    same_file = [o.node_id for o in run.outcomes.values() if node_file(o.node_id) == test_file]
    passing = [node for node in same_file if run.outcomes[node].passed]
    return ProjectTask(project, outcome, site, related, sources, [test_file], passing, python, timeout,
                       pytest_args=tuple(pytest_args))  # fmt: skip


def with_calls(task: ProjectTask) -> ProjectTask:
    """The task with `calls`: its failing test run once more, alone and traced (one more pytest
    run, so only when the model is about to be asked). No calls where the test passed there (a
    flaky test): calls that led to no failure would explain nothing."""
    run = run_pytest(task.project, [task.node_id], python=task.python, timeout=task.timeout,
                     pytest_args=task.pytest_args, trace_calls=True)  # fmt: skip
    traced = run.outcomes.get(task.node_id)
    return replace(task, calls=traced.calls if traced is not None and traced.failed else [])


def conversation_parts(task: ProjectTask, budget_chars: int) -> tuple[str, str, str]:
    """(turn-1 task, turn-2 code, feedback), shrunk to the budget, biggest parts first.

    Turn 2 ("the current code") holds the function under repair and the project functions around
    it, each inside its class so a reply names methods unambiguously; turn 1 holds their outline
    (signatures and docstrings) and the failing test.
    """
    sites = [task.site, *task.related]
    test_source = _test_source(task.test)
    failure = pytest_feedback(task.test)
    if task.calls:
        failure += "\n\n" + feedback.calls_feedback(task.calls)
    truncated: list[str] = []

    def parts() -> tuple[str, str]:
        return render_code(task.sources, sites, outline=True), render_code(task.sources, sites)

    outline, code = parts()
    while len(sites) > 1 and len(outline) + len(code) + len(test_source) + len(failure) > budget_chars:
        sites.pop()
        truncated.append("related functions")
        outline, code = parts()
    if len(outline) + len(code) + len(test_source) + len(failure) > budget_chars:
        failure = _shrink(failure, max(400, budget_chars // 6))
        test_source = _shrink(test_source, max(400, budget_chars // 6))
        truncated.append("the test and its failure")
    task.truncated = truncated
    note = f"(Shortened to fit: {', '.join(dict.fromkeys(truncated))}.)" if truncated else None
    prompt = dialogue.function_task(outline, test_source, path=task.site.relpath, note=note)
    return prompt, code, failure


def render_code(sources: dict[str, str], sites: list[Site], *, outline: bool = False) -> str:
    """The sites' source grouped by file and class, in the order given (the site first)."""
    blocks: list[str] = []
    groups: dict[tuple[str, str | None], list[Site]] = {}
    for site in sites:
        groups.setdefault((site.relpath, site.symbol.class_name), []).append(site)
    for (relpath, class_name), members in groups.items():
        source = sources[relpath]
        bodies = [_outline(source, s.symbol) if outline else patching.symbol_source(source, s.symbol)
                  for s in members]  # fmt: skip
        text = "\n".join(body.rstrip("\n") + "\n" for body in bodies)
        if class_name is not None:
            text = _class_line(source, class_name) + "\n" + text
        blocks.append(f"# {relpath}\n" + textwrap.dedent(text).rstrip())
    return "\n\n\n".join(blocks)


def _class_line(source: str, class_name: str) -> str:
    tree = ast.parse(source)
    node = patching._find_class(tree.body, class_name.split("."))
    if node is None:
        return f"class {class_name.rsplit('.', 1)[-1]}:"
    lines = source.splitlines()
    header = lines[node.lineno - 1 : node.body[0].lineno - 1]
    # keep the class line(s) only, not a class docstring or attributes
    return "\n".join(header).rstrip() or lines[node.lineno - 1]


def _outline(source: str, symbol: Symbol) -> str:
    """Decorators, signature and docstring of a definition, its body elided."""
    text = patching.symbol_source(source, symbol)
    lines = text.splitlines(keepends=True)
    try:
        tree = ast.parse(textwrap.dedent(text))
    except SyntaxError:
        return text
    node = tree.body[0] if tree.body else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return text
    first = node.body[0]
    has_doc = (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
               and isinstance(first.value.value, str))  # fmt: skip
    keep = (first.end_lineno if has_doc else first.lineno - 1) or 1
    body_line = lines[min(first.lineno, len(lines)) - 1]
    indent = body_line[: len(body_line) - len(body_line.lstrip())]
    return "".join(lines[:keep]) + f"{indent}...\n"


def _test_source(outcome: TestOutcome) -> str:
    if outcome.location is None:
        return outcome.node_id
    source = _read(Path(outcome.location.path)) or ""
    tree = _safe(lambda: ast.parse(source))
    node = _function_at(tree, outcome.location.line) if tree is not None else None
    if node is None:
        return outcome.node_id
    start = min([d.lineno for d in node.decorator_list] + [node.lineno])
    return textwrap.dedent("".join(source.splitlines(keepends=True)[start - 1 : node.end_lineno])).rstrip()


def pytest_feedback(outcome: TestOutcome) -> str:
    return feedback.pytest_feedback(outcome.node_id, outcome.message, outcome.longrepr)


def _shrink(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - limit} characters left out ...]\n{text[-half:]}"


# --- verification --------------------------------------------------------------------------------


class ProjectVerifier:
    """Applies a candidate to the files of a task and runs the tests on a shadow workspace."""

    def __init__(self, task: ProjectTask) -> None:
        self.task = task
        self.runs: list[PytestRun] = []

    def patches(self, code: str) -> dict[str, Patch] | PatchError:
        """The candidate applied to every task file it redefines something in."""
        site = self.task.site
        patches: dict[str, Patch] = {}
        errors: list[str] = []
        for relpath, source in self.task.sources.items():
            target = site.symbol.qualname if relpath == site.relpath else None
            result = patching.apply_fix(source, code, target=target)
            if isinstance(result, Patch):
                patches[relpath] = result
            else:
                errors.append(result.message)
        if not patches:  # "identical" says more than another file's "matches no function"
            return PatchError(patching.UNCHANGED if patching.UNCHANGED in errors else
                              errors[0] if errors else "the fix changes nothing")  # fmt: skip
        return patches

    def _runnable(self, code: str) -> dict[str, Patch] | PatchError:
        """The patches `verify` runs, or why there is nothing to run: patching's error, or
        UNCHANGED when every file it patches is the same program as before (formatting and
        comments do not count: such a run would fail the same way)."""
        patches = self.patches(code)
        if isinstance(patches, PatchError):
            return patches
        if all(normalise_code(patch.new_source) == normalise_code(self.task.sources[relpath])
               for relpath, patch in patches.items()):  # fmt: skip
            return PatchError(patching.UNCHANGED)
        return patches

    def unchanged(self, code: str) -> bool:
        """Nothing to run because the candidate changes nothing (`_runnable`'s UNCHANGED)."""
        result = self._runnable(code)
        return isinstance(result, PatchError) and result.message == patching.UNCHANGED

    def verify(self, code: str) -> Verdict:
        patches = self._runnable(code)
        required = (self.task.node_id, *self.task.also_failing, *self.task.previously_passing)
        if isinstance(patches, PatchError):
            return Verdict(0, len(required), "rejected", f"The fix could not be applied: {patches.message}", required)
        overlay = {relpath: patch.new_source for relpath, patch in patches.items()}
        run = run_pytest(self.task.project, self.task.check_nodes, overlay=overlay, python=self.task.python,
                         timeout=self.task.timeout, pytest_args=self.task.pytest_args)  # fmt: skip
        self.runs.append(run)
        return verdict_for(self.task, run)

    def diff(self, code: str) -> str:
        patches = self.patches(code)
        if isinstance(patches, PatchError):
            return ""
        return "".join(patch.diff(relpath) for relpath, patch in sorted(patches.items()))


def verdict_for(task: ProjectTask, run: PytestRun) -> Verdict:
    required = [task.node_id, *task.also_failing, *task.previously_passing]
    total = len(required)
    if run.status != "ok" and not run.outcomes:
        return Verdict(0, total, "error", run.message or f"the test run ended with status {run.status}",
                       tuple(required))  # fmt: skip
    if run.collection_errors:
        error = run.collection_errors[0]
        text = f"The tests no longer load:\n{error.message}\n{_shrink(error.longrepr, 1500)}"
        return Verdict(0, total, "error", text, tuple(required))
    passed = [node for node in required if run.passes([node])]
    failing = tuple(node for node in required if node not in passed)
    target_outcomes = run.outcomes_for(task.node_id)
    if task.node_id not in passed:
        failed = next((o for o in target_outcomes if o.failed), None)
        text = _why_not_passed(task.node_id, target_outcomes)
        status = "timeout" if failed is not None and failed.outcome == "timeout" else "failed"
        return Verdict(len(passed), total, status, text, failing)
    broken = [node for node in task.previously_passing if node not in passed]
    if broken:
        detail = _why_not_passed(broken[0], run.outcomes_for(broken[0]))
        return Verdict(len(passed), total, "failed", f"The fix breaks a test that passed before.\n{detail}", failing)
    if failing:  # the test passes; others of the same function still fail
        detail = _why_not_passed(failing[0], run.outcomes_for(failing[0]))
        text = (f"With this fix {task.node_id} passes, but {len(failing)} other failing test(s) of the "
                f"same code still fail.\n{detail}")  # fmt: skip
        return Verdict(len(passed), total, "failed", text, failing)
    return Verdict(total, total, "passed", "")


def _why_not_passed(node_id: str, outcomes: Sequence[TestOutcome]) -> str:
    """Why a required test did not pass: pytest's report of its failure, or that it skipped or
    xfailed (the code under test called `pytest.skip()`, say), or that it did not run at all."""
    failed = next((o for o in outcomes if o.failed), None)
    if failed is not None:
        return pytest_feedback(failed)
    other = next((o for o in outcomes if not o.passed), None)
    if other is None:
        return f"The test {node_id} did not run."
    why = f": {other.message}" if other.message else ""
    return f"The test {node_id} {other.outcome} instead of passing{why}. A skipped test is not a fixed one."


# --- the whole job -------------------------------------------------------------------------------


def prompt_budget(backend: Backend, config: RepairConfig) -> int:
    """Characters the conversation may take in the backend's context, leaving room for the reply
    (the trainer's collection builds its prompts with the same budget as the editor)."""
    window = backend.info.context_window or 8192
    return max(2000, (window - config.max_tokens) * CHARS_PER_TOKEN - 1500)


def repair_test(
    task: ProjectTask,
    backend: Backend,
    config: RepairConfig = RepairConfig(),
    *,
    start: Candidate | None = None,
    **kwargs: Any,
) -> RepairResult:
    """Run the repair loop on one failing test of a project: from the project's code, or from
    `start`, a candidate this task's verification refused (its code, and its verdict's feedback
    as the failure), as the loop's later rounds start from their best candidate."""
    budget = prompt_budget(backend, config)
    prompt, code, failure = conversation_parts(task, budget)
    if start is not None and start.code and start.verdict is not None:
        code, failure = start.code, start.verdict.feedback
        # the start's verdict (several tests' reports) may be longer than the failure it replaces
        over = len(prompt) + len(code) + len(failure) - budget
        if over > 0:  # (less the line `_shrink` puts where it cut)
            failure = _shrink(failure, max(400, len(failure) - over - 60))
    return repair(prompt, code, failure, verifier=ProjectVerifier(task), backend=backend, config=config,
                  target=task.node_id, **kwargs)  # fmt: skip


def reuse_earlier_fix(
    task: ProjectTask, earlier: Iterable[tuple[ProjectTask, RepairResult]]
) -> tuple[RepairResult, int] | None:
    """A verified fix of an earlier repair in the same file that also verifies on `task` (often
    the same bug, failing several tests): checked before asking the model again.

    Returns this task's result (the earlier candidate with this task's verdict and diff) and the
    index in `earlier` of the repair it came from; None if no earlier fix verifies here.
    Runs the tests: call it off any event loop.
    """
    tried: set[str] = set()
    for index, (earlier_task, result) in enumerate(earlier):
        fix = result.fix
        if fix is None or not fix.code or fix.code in tried:
            continue
        if earlier_task.project != task.project or earlier_task.site.relpath != task.site.relpath:
            continue
        tried.add(fix.code)
        verifier = ProjectVerifier(task)
        verdict = verifier.verify(fix.code)  # against this task's group too
        if verdict.ok:
            candidate = replace(fix, round=1, index=0, verdict=verdict, diff=verifier.diff(fix.code),
                                duplicate_of=None)  # fmt: skip
            reused = RepairResult(target=task.node_id, rounds=[RoundRecord(1, "", [candidate])],
                                  fix=candidate)  # fmt: skip
            return reused, index
    return None


# --- small helpers -------------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    return source_text.read_text(path)  # as Python reads it: any encoding it declares, `\n` line ends


def _relative(project: Path, path: str) -> str | None:
    try:
        return os.path.relpath(Path(path).resolve(), project) if Path(path).resolve().is_relative_to(project) else None
    except (OSError, ValueError):
        return None


def _skipped(relpath: str) -> bool:
    return any(part in _SKIPPED_DIRS for part in Path(relpath).parts)


def _safe(compute: Callable[..., _T], *args: Any) -> _T | None:
    """`compute(*args)`, or None where the code does not parse."""
    try:
        return compute(*args)
    except (SyntaxError, ValueError, RecursionError):
        return None


def files_of(results: Iterable[RepairResult]) -> list[str]:
    return sorted({line[6:] for r in results for line in (r.best.diff if r.best else "").splitlines()
                   if line.startswith("+++ b/")})  # fmt: skip
