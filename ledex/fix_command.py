"""`ledex fix`: run a project's tests, explain and fix each failing one, verified by re-running.

A front end of `ledex.fix.fix_tests` (which finds, verifies and combines the fixes): this module
reads the arguments, renders the progress events and the result (text or `--json`), and with
`--apply` writes the combined fix, all files or none (`ledex.source_text.write_all`).
Exit codes: 0 every failing test fixed (or none failing), 1 some left unfixed, 2 usage or setup
error, 3 `--apply` refused to write (a file changed since the run, or cannot be written).
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from ledex import fix, project_repair, source_text
from ledex.errors import LedexError
from ledex.fix_cache import FixCache
from ledex.models import DEFAULT_SPEC, load_backend
from ledex.models.base import Backend
from ledex.repair import RepairConfig
from ledex.sandbox import isolation
from ledex.sandbox.pytest_runner import PytestRun, node_file, run_pytest

EXIT_REFUSED = 3


class UsageError(LedexError):
    """Exit code 2: the command cannot run as asked (bad arguments, tests that cannot run, no model)."""

    exit_code = 2


def add_command(commands: argparse._SubParsersAction) -> None:
    defaults = fix.FixConfig()
    repair = defaults.repair
    fix_ = commands.add_parser("fix", help="explain and fix the failing tests of a project")
    fix_.add_argument(
        "path", nargs="?", default=".", help="the project (default: the current folder)"
    )
    fix_.add_argument("--test", action="append", default=[], metavar="NODEID",
                      help="only this failing test (repeatable), e.g. tests/test_x.py::test_y")  # fmt: skip
    fix_.add_argument("--model", default=DEFAULT_SPEC, help="model spec (default: %(default)s)")
    fix_.add_argument(
        "-n", type=int, default=repair.n, help="candidates per round (default: %(default)s)"
    )
    fix_.add_argument(
        "--rounds", type=int, default=repair.rounds, help="repair rounds (default: %(default)s)"
    )
    fix_.add_argument("--style", choices=["explain+refine", "refine"], default=repair.style)
    fix_.add_argument("--temperature", type=float, default=repair.temperature,
                      help=f"of the first round; each later round samples {repair.temperature_step:g} hotter, "
                           f"up to {repair.max_temperature:g} (default: %(default)s)")  # fmt: skip
    fix_.add_argument("--seed", type=int, default=repair.seed)
    fix_.add_argument(
        "--python",
        help="the interpreter that runs the tests (default: the project's .venv, else python3)",
    )
    fix_.add_argument("--timeout", type=float, default=defaults.timeout,
                      help="seconds per test run (default: %(default)s)")  # fmt: skip
    fix_.add_argument("--no-cache", dest="cache", action="store_false",
                      help="ask the model even for a failure fixed before (cached fixes are verified again "
                           "before they are offered)")  # fmt: skip
    fix_.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    fix_.add_argument("--apply", action="store_true",
                      help="write the verified fixes into the files (all or none; exit 3 if refused)")  # fmt: skip
    fix_.set_defaults(handler=run)


def config_of(args: argparse.Namespace) -> fix.FixConfig:
    repair = RepairConfig(
        n=args.n, rounds=args.rounds, style=args.style, temperature=args.temperature, seed=args.seed
    )
    return fix.FixConfig(repair=repair, python=args.python, timeout=args.timeout)


def run(args: argparse.Namespace) -> int:
    project = Path(args.path).resolve()
    if not project.is_dir():
        raise UsageError(f"{args.path} is not a folder")
    started = time.perf_counter()
    console = _console(args)
    config = config_of(args)
    # With --test, its whole files run: the tests that pass there must keep passing after a fix.
    files = sorted({node_file(node) for node in args.test})
    with _status(console, f"running the tests of {project}"):
        first = run_pytest(project, files, python=config.python, timeout=config.timeout)
    _check_run(first, args.test)
    failing = first.failed
    if args.test:
        wanted = {o.node_id for node in args.test for o in first.outcomes_for(node)}
        failing = [o for o in failing if o.node_id in wanted]
    if not failing:
        return _report_clean(args, first)
    loaded: list[Backend] = []

    def load() -> Backend:
        try:
            with _status(console, f"loading the model ({args.model})"):
                loaded.append(load_backend(args.model))
        except LedexError as error:
            raise UsageError(str(error)) from error
        return loaded[-1]

    try:
        with _Progress(console) as progress:
            cache = FixCache.default(args.model) if args.cache else None
            result = fix.fix_tests(
                project, first, failing, load, config, on_event=progress.update, cache=cache
            )
    finally:
        for backend in loaded:
            backend.close()
    applied, refused = _apply(result) if args.apply else ([], "")
    _report(args, console, result, applied, refused, time.perf_counter() - started)
    if refused:
        return EXIT_REFUSED
    return 0 if result.all_fixed else 1


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


def _apply(result: fix.FixResult) -> tuple[list[str], str]:
    """Write the combined fix, every file or none; (files written, why refused)."""
    if not result.files:
        return [], ""
    try:
        written = source_text.write_all(
            result.project, {rel: (f.original, f.new) for rel, f in result.files.items()}
        )
    except source_text.WriteRefused as refused:
        return [], str(refused)
    return written, ""


# --- output --------------------------------------------------------------------------------------


def as_json(
    result: fix.FixResult, applied: list[str], seconds: float, refused: str = ""
) -> dict[str, Any]:
    entries: dict[str, dict[str, Any]] = {}
    for fixing in result.tests:
        entry: dict[str, Any] = {"test": fixing.test, "status": fixing.status, "verified": False, "explanation": "",
                                 "diff": "", "files": [], "rounds": 0, "candidates": 0, "seconds": 0.0}  # fmt: skip
        if fixing.result is not None:
            data = fixing.result.to_dict()
            data.pop("history", None)
            entry |= data | {"test": fixing.test}
            entry["files"] = project_repair.files_of([fixing.result])
        if fixing.partial is not None:
            entry["explanation"] = fixing.partial.explanation or ""
            entry["diff"] = fixing.partial.diff
            entry["still_failing"] = list(fixing.still_failing)
        if fixing.task is not None:
            entry["located"] = f"{fixing.task.site.relpath}::{fixing.task.site.symbol.qualname}"
            entry["functions"] = _changed_functions(fixing)
            if fixing.task.also_failing:
                entry["also_failing"] = list(fixing.task.also_failing)
        if fixing.skipped:
            entry["error"] = fixing.skipped
        if fixing.fixed_by:
            entry["fixed_by"] = fixing.fixed_by
            source = entries.get(fixing.fixed_by, {})
            entry |= {key: source[key] for key in ("explanation", "diff", "files") if key in source}
            entry["verified"] = True
        entry["included"] = fixing.test in result.included or fixing.fixed_by in result.included
        entry["cached"] = fixing.cached
        entries[fixing.test] = entry
    data = {
        "failures": [{"test": t.test, "message": t.message} for t in result.tests],
        "results": list(entries.values()),
        "diff": result.diff(),
        "notes": result.notes,
        "applied": applied,
        "seconds": round(seconds, 3),
        "sandbox": isolation.status().to_dict(),  # what "verified" was checked in
    }
    if refused:
        data["refused"] = refused
    return data


def _changed_functions(fixing: fix.TestFix) -> list[str]:
    """The definitions the offered (else best) attempt replaces, as `file::qualname`."""
    candidate = fixing.fix or (fixing.result.best if fixing.result else None)
    if candidate is None or candidate.code is None or fixing.task is None:
        return []
    patches = project_repair.ProjectVerifier(fixing.task).patches(candidate.code)
    if not isinstance(patches, dict):
        return []
    return [
        f"{relpath}::{name}"
        for relpath, patch in sorted(patches.items())
        for name in patch.replaced
    ]


def _report_clean(args: argparse.Namespace, run: PytestRun) -> int:
    if args.json:
        print(json.dumps({"failures": [], "results": [], "diff": "", "notes": [], "applied": [],
                          "seconds": round(run.duration, 3),
                          "sandbox": isolation.status().to_dict()}))  # fmt: skip
    else:
        print(f"all {len(run.outcomes)} tests pass; nothing to fix")
    return 0


def _report(
    args, console, result: fix.FixResult, applied: list[str], refused: str, seconds: float
) -> None:
    if args.json:
        print(json.dumps(as_json(result, applied, seconds, refused), indent=2))
        return
    for fixing in result.tests:
        console.rule(fixing.test)
        console.print(f"[bold]failure:[/bold] {fixing.message}", markup=True, highlight=False)
        if fixing.skipped:
            console.print(f"[yellow]not repaired:[/yellow] {fixing.skipped}")
            continue
        if fixing.fixed_by:
            if fixing.fixed_by in result.included:
                console.print(f"[green]fixed by the fix for {fixing.fixed_by}[/green]")
            else:
                console.print(f"[yellow]the fix for {fixing.fixed_by} fixes it, but was left out[/yellow]")
            continue
        repair = fixing.result
        if repair is None:
            continue
        tried = f"{len(repair.rounds)} round(s), {len(repair.candidates)} candidate(s), {repair.seconds:.1f}s"
        status = fixing.status
        if fixing.cached:
            tried = "found before (cached), verified again now"
        if status == "verified":
            console.print(f"[green]verified fix[/green]: {tried}")
        elif status == "partial":
            console.print(f"[yellow]partial fix[/yellow] (verified, but {len(fixing.still_failing)} other failing "
                          f"test(s) of the same code still fail: {', '.join(fixing.still_failing)}; nothing "
                          f"fixed them all): {tried}")  # fmt: skip
        else:
            console.print(f"[red]no verified fix[/red] (best attempt, unverified): {tried}")
        shown = fixing.fix or repair.best
        if shown is None:
            continue
        if shown.explanation:
            console.print(f"[bold]explanation:[/bold] {shown.explanation}", highlight=False)
        if shown.diff:
            _print_diff(console, shown.diff)
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    for relpath in applied:
        console.print(f"wrote {relpath}", highlight=False, soft_wrap=True)
    if refused:
        console.print(f"[red]refused:[/red] {refused}", highlight=False, soft_wrap=True)
    console.rule(f"{len(result.fixed_tests)} of {len(result.tests)} failing tests fixed and verified in {seconds:.1f}s"
                 + ("" if args.apply or not result.files else " (run with --apply to write them)"))  # fmt: skip


def _print_diff(console, diff: str) -> None:
    """A diff line by line, never wrapped or cropped at the console's width (a copied diff must
    apply), coloured on a terminal only."""
    from rich.text import Text

    styles = {"+": "green", "-": "red", "@": "cyan"}
    for line in diff.splitlines():
        style = "bold" if line.startswith(("+++", "---")) else styles.get(line[:1], "")
        console.print(
            Text(line, style=style if console.is_terminal else ""), soft_wrap=True, crop=False
        )


def _console(args: argparse.Namespace):
    from rich.console import Console

    # --json keeps stdout clean for the JSON; progress goes to stderr either way.
    return Console(stderr=args.json, highlight=False)


def _status(console, text: str):
    if not console.is_terminal:
        return nullcontext()
    return console.status(text)


class _Progress:
    """A live line on a TTY, from the fix's events."""

    def __init__(self, console) -> None:
        self.console = console
        self.status: Any = None

    def __enter__(self) -> _Progress:
        if self.console.is_terminal:
            self.status = self.console.status("fixing")
            self.status.__enter__()
        return self

    def update(self, event: fix.Event) -> None:
        if self.status is not None:
            self.status.update(event.describe())

    def __exit__(self, *exc) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)
