"""`ledex fix`: run a project's tests, explain and fix each failing one, verified by re-running.

Nothing is written without `--apply`, and `--apply` refuses a file that changed since the run.
Exit codes: 0 every failing test fixed (or none failing), 1 some left unfixed, 2 usage or setup error.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledex import patching, project_repair
from ledex.errors import LedexError
from ledex.models import DEFAULT_SPEC, load_backend
from ledex.repair import RepairConfig, RepairResult
from ledex.sandbox.pytest_runner import PytestRun, run_pytest


class UsageError(LedexError):
    """Exit code 2: the command cannot run as asked (bad arguments, tests that cannot run, no model)."""

    exit_code = 2


def add_command(commands: argparse._SubParsersAction) -> None:
    fix = commands.add_parser("fix", help="explain and fix the failing tests of a project")
    fix.add_argument("path", nargs="?", default=".", help="the project (default: the current folder)")
    fix.add_argument("--test", action="append", default=[], metavar="NODEID",
                     help="only this failing test (repeatable), e.g. tests/test_x.py::test_y")  # fmt: skip
    fix.add_argument("--model", default=DEFAULT_SPEC, help="model spec (default: %(default)s)")
    fix.add_argument("-n", type=int, default=4, help="candidates per round (default: %(default)s)")
    fix.add_argument("--rounds", type=int, default=3, help="repair rounds (default: %(default)s)")
    fix.add_argument("--style", choices=["explain+refine", "refine"], default="explain+refine")
    fix.add_argument("--temperature", type=float, default=0.6,
                     help="of the first round; each later round samples 0.2 hotter, up to 1.0 (default: %(default)s)")  # fmt: skip
    fix.add_argument("--seed", type=int, default=0)
    fix.add_argument("--python", help="the interpreter that runs the tests (default: the project's .venv, else python3)")
    fix.add_argument("--timeout", type=float, default=60.0, help="seconds per test run (default: %(default)s)")
    fix.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    fix.add_argument("--apply", action="store_true", help="write verified fixes into the files")
    fix.set_defaults(handler=run)


@dataclass
class Outcome:
    test: str
    message: str
    result: RepairResult | None = None
    task: project_repair.ProjectTask | None = None
    skipped: str = ""  # why no repair was attempted
    reused_from: str = ""  # the test whose verified fix also fixes this one


def run(args: argparse.Namespace) -> int:
    project = Path(args.path).resolve()
    if not project.is_dir():
        raise UsageError(f"{args.path} is not a folder")
    started = time.perf_counter()
    console = _console(args)
    # With --test, its whole files run: the tests that pass there must keep passing after a fix.
    files = sorted({node.split("::", 1)[0] for node in args.test})
    with _status(console, f"running the tests of {project}"):
        first = run_pytest(project, files, python=args.python, timeout=args.timeout)
    _check_run(first, args.test)
    failing = first.failed
    if args.test:
        wanted = {o.node_id for node in args.test for o in first.outcomes_for(node)}
        failing = [o for o in failing if o.node_id in wanted]
    if not failing:
        return _report_clean(args, first)
    config = RepairConfig(n=args.n, rounds=args.rounds, style=args.style, temperature=args.temperature, seed=args.seed)
    try:
        with _status(console, f"loading the model ({args.model})"):
            backend = load_backend(args.model)
    except LedexError as error:
        raise UsageError(str(error)) from error
    outcomes: list[Outcome] = []
    with backend:
        for test in failing:
            outcomes.append(_repair_one(project, first, test, backend, config, args, outcomes, console))
    applied = _apply(outcomes) if args.apply else []
    _report(args, console, outcomes, applied, time.perf_counter() - started)
    return 0 if all(o.result is not None and o.result.verified for o in outcomes) else 1


def _check_run(run: PytestRun, selected: list[str]) -> None:
    if run.status not in ("ok",) and not run.outcomes:
        raise UsageError(f"the tests could not run: {run.message or run.status}")
    if run.collection_errors:
        shown = "; ".join(f"{e.node_id}: {e.message}" for e in run.collection_errors[:3])
        raise UsageError(f"pytest could not collect the tests ({shown}); fix that first")
    missing = [node for node in selected if not run.outcomes_for(node)] + run.missing
    if missing:
        raise UsageError(f"no such test: {', '.join(dict.fromkeys(missing))}")
    if not run.outcomes:
        raise UsageError("no tests were found")


def _repair_one(project: Path, first: PytestRun, test, backend, config, args, done: list[Outcome], console) -> Outcome:
    outcome = Outcome(test.node_id, test.message)
    task = project_repair.prepare(project, first, test, python=args.python, timeout=args.timeout)
    if isinstance(task, str):
        outcome.skipped = task
        return outcome
    outcome.task = task
    earlier = [o for o in done if o.task is not None and o.result is not None]
    reused = project_repair.reuse_earlier_fix(task, [(o.task, o.result) for o in earlier])
    if reused is not None:
        outcome.result, index = reused
        outcome.reused_from = earlier[index].test
        return outcome
    with _progress(console, test.node_id, config) as progress:
        outcome.result = project_repair.repair_test(task, backend, config, progress=progress)
    return outcome


# --- writing -------------------------------------------------------------------------------------


def _apply(outcomes: list[Outcome]) -> list[str]:
    """Write verified fixes; a file changed since the run is refused, never overwritten."""
    messages: list[str] = []
    expected: dict[Path, str] = {}
    for outcome in outcomes:
        if outcome.result is None or not outcome.result.verified or outcome.task is None or outcome.reused_from:
            continue
        task = outcome.task
        for relpath, original in task.sources.items():
            path = task.project / relpath
            current = path.read_text(encoding="utf-8") if path.exists() else None
            if current != expected.get(path, original):
                messages.append(f"refused: {relpath} changed since the tests ran; not writing it")
                continue
            patch = patching.apply_fix(current, outcome.result.fix.code or "",
                                       target=task.site.symbol.qualname if relpath == task.site.relpath else None)  # fmt: skip
            if isinstance(patch, patching.Patch) and patch.new_source != current:
                path.write_text(patch.new_source, encoding="utf-8")
                expected[path] = patch.new_source
                messages.append(f"wrote {relpath}")
    return messages


# --- output --------------------------------------------------------------------------------------


def as_json(outcomes: list[Outcome], applied: list[str], seconds: float) -> dict[str, Any]:
    results = []
    for outcome in outcomes:
        entry: dict[str, Any] = {"test": outcome.test, "verified": False, "explanation": "", "diff": "",
                                 "files": [], "rounds": 0, "candidates": 0, "seconds": 0.0}  # fmt: skip
        if outcome.result is not None:
            data = outcome.result.to_dict()
            data.pop("history", None)
            entry |= data | {"test": outcome.test}
            entry["files"] = project_repair.files_of([outcome.result])
        if outcome.task is not None:
            entry["located"] = f"{outcome.task.site.relpath}::{outcome.task.site.symbol.qualname}"
            entry["functions"] = _changed_functions(outcome)
        if outcome.skipped:
            entry["error"] = outcome.skipped
        if outcome.reused_from:
            entry["fixed_by"] = outcome.reused_from
        results.append(entry)
    return {
        "failures": [{"test": o.test, "message": o.message} for o in outcomes],
        "results": results,
        "applied": applied,
        "seconds": round(seconds, 3),
    }


def _changed_functions(outcome: Outcome) -> list[str]:
    """The definitions the best attempt replaces, as `file::qualname`."""
    best = outcome.result.best if outcome.result else None
    if best is None or best.code is None or outcome.task is None:
        return []
    patches = project_repair.ProjectVerifier(outcome.task).patches(best.code)
    if isinstance(patches, patching.PatchError):
        return []
    return [f"{relpath}::{name}" for relpath, patch in sorted(patches.items()) for name in patch.replaced]


def _report_clean(args: argparse.Namespace, run: PytestRun) -> int:
    if args.json:
        print(json.dumps({"failures": [], "results": [], "applied": [], "seconds": round(run.duration, 3)}))
    else:
        print(f"all {len(run.outcomes)} tests pass; nothing to fix")
    return 0


def _report(args, console, outcomes: list[Outcome], applied: list[str], seconds: float) -> None:
    if args.json:
        print(json.dumps(as_json(outcomes, applied, seconds), indent=2))
        return
    from rich.syntax import Syntax

    for outcome in outcomes:
        console.rule(outcome.test)
        console.print(f"[bold]failure:[/bold] {outcome.message}", markup=True, highlight=False)
        if outcome.skipped:
            console.print(f"[yellow]not repaired:[/yellow] {outcome.skipped}")
            continue
        result = outcome.result
        assert result is not None
        if outcome.reused_from:
            console.print(f"[green]fixed by the fix for {outcome.reused_from}[/green]")
            continue
        best = result.best
        label = "[green]verified fix[/green]" if result.verified else "[red]no verified fix[/red] (best attempt, unverified)"
        console.print(f"{label}: {len(result.rounds)} round(s), {len(result.candidates)} candidate(s), {result.seconds:.1f}s")
        if best is None:
            continue
        if best.explanation:
            console.print(f"[bold]explanation:[/bold] {best.explanation}", highlight=False)
        if best.diff:
            console.print(Syntax(best.diff, "diff", word_wrap=True))
    for line in applied:
        console.print(line)
    fixed = sum(1 for o in outcomes if o.result is not None and o.result.verified)
    console.rule(f"{fixed} of {len(outcomes)} failing tests fixed and verified in {seconds:.1f}s"
                 + ("" if args.apply or not fixed else " (run with --apply to write them)"))  # fmt: skip


def _console(args: argparse.Namespace):
    from rich.console import Console

    # --json keeps stdout clean for the JSON; progress goes to stderr either way.
    return Console(stderr=args.json, highlight=False)


def _status(console, text: str):
    if not console.is_terminal:
        return nullcontext()
    return console.status(text)


class _progress:
    """A live line per test on a TTY: round, candidates generated and verified."""

    def __init__(self, console, test: str, config: RepairConfig) -> None:
        self.console, self.test, self.config = console, test, config
        self.status = None

    def __enter__(self):
        if self.console.is_terminal:
            self.status = self.console.status(f"{self.test}: asking the model")
            self.status.__enter__()
        return self.update

    def update(self, event: str, details: dict) -> None:
        if self.status is None:
            return
        if event == "round":
            self.status.update(f"{self.test}: round {details['round']}/{details['rounds']}, asking the model")
        elif event == "generated":
            self.status.update(f"{self.test}: round {details['round']}, verifying candidate {details['candidate']}/{self.config.n}")
        elif event == "verified":
            verdict = details["verdict"]
            outcome = f"{verdict.passed}/{verdict.total} tests pass" if verdict else "no usable code"
            self.status.update(f"{self.test}: round {details['round']}, candidate {details['candidate']}/{self.config.n}: {outcome}")

    def __exit__(self, *exc) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)
