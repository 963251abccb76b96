"""Load and check the buggy-project fixtures used by benchmarks/repair.py.

Each case is a directory holding a small Python project (a flat package importable from the case
root, a ``tests/`` folder, a ``pyproject.toml`` that sets ``pythonpath = ["."]``) and a
``case.json``::

    {"name": ..., "description": "one line",
     "failing": [node ids that fail before the fix],
     "passing": [node ids that pass before and after the fix],
     "bug": {"file": "pkg/mod.py", "function": "Class.method"},
     "fix": {"file": "pkg/mod.py", "replace": [[old, new], ...]},
     "kind": "assertion" | "exception", "tags": [...]}

A case is consistent when, in a scratch copy, exactly the ``failing`` tests fail (with an
assertion, or an exception other than AssertionError, as ``kind`` says) and the ``passing`` ones
pass; when the reference fix applies (every old snippet occurs exactly once), changes only lines of
``bug.function`` in ``bug.file`` and never a test; and when every test passes after it.

    python benchmarks/cases/check_cases.py [PATH ...]

PATH is a case directory or a directory of cases; without one, ``benchmarks/cases`` and
``examples`` are checked. Prints a table, exits 1 if any case is inconsistent. The case
directories are never written to: every pytest run happens in a temporary copy, with
``PYTHONDONTWRITEBYTECODE=1`` and ``-p no:cacheprovider``.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

CASES_ROOT = Path(__file__).resolve().parent
REPO_ROOT = CASES_ROOT.parent.parent
EXAMPLES_ROOT = REPO_ROOT / "examples"
KINDS = ("assertion", "exception")
PYTEST_TIMEOUT_S = 60
# Never copied into the scratch directory (left behind if someone ran pytest in a case by hand).
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "case.json")


class CaseError(ValueError):
    """A case.json that is missing, malformed, or whose reference fix does not apply."""


@dataclass(frozen=True)
class Case:
    name: str
    path: Path  # the case directory (the project root, where pytest runs)
    description: str
    failing: tuple[str, ...]
    passing: tuple[str, ...]
    bug_file: str
    bug_function: str
    fix_file: str
    replacements: tuple[tuple[str, str], ...]
    kind: str
    tags: tuple[str, ...] = ()

    @property
    def tests(self) -> tuple[str, ...]:
        return self.failing + self.passing

    @property
    def test_files(self) -> tuple[str, ...]:
        """The test files (relative paths) that hold the case's tests."""
        return tuple(sorted({node.split("::", 1)[0] for node in self.tests}))


def load_case(path: str | Path) -> Case:
    """Read and validate ``case.json`` in the case directory ``path``."""
    path = Path(path).resolve()
    spec_path = path / "case.json"
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CaseError(f"{spec_path}: {error}") from error

    def need(mapping: dict, key: str, kind: type, where: str = ""):
        value = mapping.get(key) if isinstance(mapping, dict) else None
        if not isinstance(value, kind):
            raise CaseError(f"{spec_path}: {where}{key!r} must be a {kind.__name__}")
        return value

    failing = need(spec, "failing", list)
    passing = need(spec, "passing", list)
    bug, fix = need(spec, "bug", dict), need(spec, "fix", dict)
    replace = need(fix, "replace", list, "fix.")
    if not failing:
        raise CaseError(f"{spec_path}: 'failing' is empty")
    if not all(isinstance(node, str) and "::" in node for node in failing + passing):
        raise CaseError(f"{spec_path}: test ids must be pytest node ids (path::name)")
    if len(set(failing + passing)) != len(failing) + len(passing):
        raise CaseError(f"{spec_path}: a test id is listed twice")
    if not replace or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, str) for s in pair)
        for pair in replace
    ):
        raise CaseError(f"{spec_path}: fix.replace must be a non-empty list of [old, new] pairs")
    kind = need(spec, "kind", str)
    if kind not in KINDS:
        raise CaseError(f"{spec_path}: kind must be one of {KINDS}, not {kind!r}")
    tags = spec.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise CaseError(f"{spec_path}: 'tags' must be a list of strings")
    return Case(
        name=need(spec, "name", str),
        path=path,
        description=need(spec, "description", str),
        failing=tuple(failing),
        passing=tuple(passing),
        bug_file=need(bug, "file", str, "bug."),
        bug_function=need(bug, "function", str, "bug."),
        fix_file=need(fix, "file", str, "fix."),
        replacements=tuple((old, new) for old, new in replace),
        kind=kind,
        tags=tuple(tags),
    )


def load_cases(root: str | Path = CASES_ROOT) -> list[Case]:
    """The cases under ``root`` (a case directory itself, or a directory of them), by name."""
    root = Path(root).resolve()
    if (root / "case.json").is_file():
        return [load_case(root)]
    if not root.is_dir():
        raise CaseError(f"{root}: no such directory")
    return [
        load_case(child)
        for child in sorted(root.iterdir())
        if child.is_dir() and (child / "case.json").is_file()
    ]


def copy_case(case: Case, dest_dir: str | Path) -> Path:
    """Copy the case's project (not case.json, no caches) to ``dest_dir``, which must not exist."""
    dest_dir = Path(dest_dir)
    shutil.copytree(case.path, dest_dir, ignore=_IGNORE)
    return dest_dir


def fixed_source(case: Case, source: str) -> str:
    """``source`` (the text of ``case.fix_file``) with the reference fix's replacements applied."""
    for old, new in case.replacements:
        count = source.count(old)
        if count != 1:
            raise CaseError(
                f"{case.name}: fix snippet {old!r} occurs {count} times in {case.fix_file}, "
                "not once"
            )
        source = source.replace(old, new)
    return source


def reference_fix_code(case: Case) -> str:
    """The case's function after the reference fix, dedented: the reply of a model that found the
    bug. Tests and benchmarks script their models with it."""
    import textwrap

    from ledex import patching

    source = fixed_source(case, (case.path / case.fix_file).read_text(encoding="utf-8"))
    symbol = patching.find_symbols(source)[case.bug_function]
    return textwrap.dedent(patching.symbol_source(source, symbol))


def apply_reference_fix(case: Case, dest_dir: str | Path) -> Path:
    """Apply the reference fix to the copy of the case in ``dest_dir``; returns the fixed file."""
    target = Path(dest_dir) / case.fix_file
    source = target.read_text(encoding="utf-8")
    target.write_text(fixed_source(case, source), encoding="utf-8")
    return target


def function_spans(source: str, qualname: str) -> list[tuple[int, int]]:
    """1-based (first, last) line spans, decorators included, of every definition of ``qualname``
    (a property's getter and setter share one)."""
    spans: list[tuple[int, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if name == qualname and not isinstance(child, ast.ClassDef):
                    first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    spans.append((first, child.end_lineno or child.lineno))
                if isinstance(child, ast.ClassDef):
                    visit(child, f"{name}.")

    visit(ast.parse(source), "")
    return spans


def changed_lines(before: str, after: str) -> list[int]:
    """1-based line numbers of ``before`` that the change from ``before`` to ``after`` touches
    (for a pure insertion, the line it is inserted after)."""
    matcher = difflib.SequenceMatcher(None, before.splitlines(), after.splitlines(), autojunk=False)
    lines: list[int] = []
    for tag, i1, i2, _, _ in matcher.get_opcodes():
        if tag == "equal":
            continue
        lines.extend(range(i1 + 1, i2 + 1) if i2 > i1 else [max(i1, 1)])
    return lines


def _pytest_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "PYTHONPATH"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["COLUMNS"] = "400"  # pytest cuts the summary's failure messages at the terminal width
    # The cases need no plugins; skipping the installed ones (pytest-asyncio, pytest-lsp, ...)
    # makes a run about 5x faster.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return env


@dataclass
class PytestRun:
    outcomes: dict[str, str]  # node id -> passed | failed | error | skipped | ...
    messages: dict[str, str]  # node id -> the short summary message of a failure
    returncode: int
    output: str


def run_pytest(
    project: Path, nodes: tuple[str, ...] = (), timeout: float = PYTEST_TIMEOUT_S
) -> PytestRun:
    """Run the test suite of ``project`` (or just ``nodes``) and return every test's outcome."""
    command = [
        sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
        "--color=no", "-o", "addopts=", "-o", "console_output_style=classic", *nodes,
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            command, cwd=project, env=_pytest_env(), capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        out = error.stdout or ""
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
        return PytestRun({}, {}, -1, f"{out}\npytest timed out after {timeout} s")
    outcomes: dict[str, str] = {}
    messages: dict[str, str] = {}
    in_summary = False
    for line in proc.stdout.splitlines():
        if "short test summary info" in line:
            in_summary = True
            continue
        if not in_summary:
            continue
        word, _, rest = line.partition(" ")
        if word not in ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS"):
            continue
        node, _, message = rest.partition(" - ")
        if word == "SKIPPED" or not node.strip():
            continue
        outcomes[node.strip()] = word.lower()
        if message:
            messages[node.strip()] = message.strip()
    return PytestRun(outcomes, messages, proc.returncode, proc.stdout + proc.stderr)


def failure_kind(message: str) -> str:
    """'assertion' for a failed assert (or pytest.fail / DID NOT RAISE), else 'exception'."""
    if message.startswith(("assert ", "AssertionError", "Failed:")) or message == "assert":
        return "assertion"
    return "exception"


@dataclass
class CaseReport:
    case: Case
    problems: list[str] = field(default_factory=list)
    before: dict[str, str] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def _compare(expected: dict[str, str], run: PytestRun, when: str) -> list[str]:
    problems = []
    if not run.outcomes:
        tail = "\n".join(run.output.strip().splitlines()[-15:])
        return [f"{when}: pytest reported no tests (exit {run.returncode}):\n{tail}"]
    for node, want in expected.items():
        got = run.outcomes.get(node)
        if got is None:
            problems.append(f"{when}: {node} was not run")
        elif got != want:
            detail = f" ({run.messages[node]})" if node in run.messages else ""
            problems.append(f"{when}: {node} {got}, expected {want}{detail}")
    for node in sorted(set(run.outcomes) - set(expected)):
        problems.append(f"{when}: {node} ran ({run.outcomes[node]}) but is not listed in case.json")
    return problems


def _check_fix_shape(case: Case) -> tuple[list[str], bool]:
    """Problems with bug/fix metadata, and whether the reference fix applies at all."""
    problems = []
    if case.fix_file != case.bug_file:
        problems.append(f"fix.file {case.fix_file} is not bug.file {case.bug_file}")
    if case.fix_file.startswith("tests/") or "/tests/" in case.fix_file:
        problems.append(f"the fix edits a test file: {case.fix_file}")
    bug_path = case.path / case.bug_file
    if not bug_path.is_file():
        return [*problems, f"bug.file {case.bug_file} does not exist"], False
    source = bug_path.read_text(encoding="utf-8")
    try:
        after = fixed_source(case, source)
    except CaseError as error:
        return [*problems, str(error)], False
    spans = function_spans(source, case.bug_function)
    if not spans:
        return [*problems, f"{case.bug_function} is not defined in {case.bug_file}"], True
    outside = [
        line for line in changed_lines(source, after)
        if not any(first <= line <= last for first, last in spans)
    ]  # fmt: skip
    if outside:
        problems.append(f"the fix changes lines {outside} outside {case.bug_function}")
    if after == source:
        problems.append("the fix changes nothing")
    return problems, True


def check_case(case: Case) -> CaseReport:
    """Check one case in a scratch copy; the report lists every inconsistency found."""
    report = CaseReport(case)
    started = time.perf_counter()
    fix_problems, fix_applies = _check_fix_shape(case)
    report.problems.extend(fix_problems)
    for test_file in case.test_files:
        if not (case.path / test_file).is_file():
            report.problems.append(f"test file {test_file} does not exist")
    with tempfile.TemporaryDirectory(prefix=f"ledex-case-{case.name}-") as scratch:
        project = copy_case(case, Path(scratch) / case.path.name)
        expected = {node: "failed" for node in case.failing}
        expected.update({node: "passed" for node in case.passing})
        before = run_pytest(project)
        report.before = before.outcomes
        report.problems.extend(_compare(expected, before, "before the fix"))
        for node in case.failing:
            message = before.messages.get(node)
            if before.outcomes.get(node) == "failed" and message is not None:
                kind = failure_kind(message)
                if kind != case.kind:
                    report.problems.append(
                        f"before the fix: {node} fails with {kind} ({message}), kind is {case.kind}"
                    )
        if fix_applies:
            apply_reference_fix(case, project)
            after = run_pytest(project)
            report.after = after.outcomes
            report.problems.extend(
                _compare({node: "passed" for node in case.tests}, after, "after the fix")
            )
    report.seconds = time.perf_counter() - started
    return report


def check_cases(cases: list[Case], workers: int | None = None) -> list[CaseReport]:
    """Check the cases in parallel (pytest runs in subprocesses); reports in the cases' order."""
    workers = workers or max(2, os.cpu_count() or 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(check_case, cases))


def default_roots() -> list[Path]:
    return [CASES_ROOT, EXAMPLES_ROOT]


def _table(reports: list[CaseReport]) -> str:
    rows = [("case", "kind", "fail", "pass", "seconds", "status")]
    for report in reports:
        case = report.case
        rows.append((
            case.name, case.kind, str(len(case.failing)), str(len(case.passing)),
            f"{report.seconds:.1f}", "ok" if report.ok else "INCONSISTENT",
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in args):
        print(__doc__)
        return 0
    roots = [Path(arg) for arg in args] or [root for root in default_roots() if root.is_dir()]
    try:
        cases = [case for root in roots for case in load_cases(root)]
    except CaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not cases:
        print(f"error: no case.json under {', '.join(map(str, roots))}", file=sys.stderr)
        return 1
    names = [case.name for case in cases]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    started = time.perf_counter()
    reports = check_cases(cases)
    elapsed = time.perf_counter() - started
    print(_table(reports))
    bad = [report for report in reports if not report.ok]
    for report in bad:
        print(f"\n{report.case.name} ({report.case.path}):")
        for problem in report.problems:
            print(f"  - {problem}")
    if duplicates:
        print(f"\nduplicate case names: {', '.join(duplicates)}")
    print(
        f"\n{len(reports) - len(bad)}/{len(reports)} cases consistent, "
        f"{sum(len(r.case.failing) for r in reports)} failing tests, {elapsed:.1f} s"
    )
    return 1 if bad or duplicates else 0


if __name__ == "__main__":
    sys.exit(main())
