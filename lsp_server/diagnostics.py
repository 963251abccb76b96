"""Tests -> diagnostics: run the workspace's pytest tests in the user's interpreter on open and save
(debounced; a newer request makes an older run stale: its test process is killed and its result
dropped) and on the command
`ledex.runTests`; publish one Error per failing test at its failing line, with related locations
for the frames in the code under test, an Information at the function under repair, and an Error
per collection error. A file whose problems are gone gets an empty list (cleared)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from ledex.project_repair import is_test_file, locate_site
from ledex.sandbox import isolation
from ledex.sandbox.pytest_runner import (
    CollectionError,
    PytestRun,
    TestOutcome,
    node_file,
    run_pytest,
)
from lsp_server import prefetch, status
from lsp_server.progress import Progress
from lsp_server.session import Failure, Span, WorkspaceState
from lsp_server.settings import Settings
from lsp_server.text import line_range, lines_range, path_of, read, uri_of

if TYPE_CHECKING:
    from lsp_server.server import LedexLanguageServer

log = logging.getLogger("lsp_server")

SOURCE = "ledex"
_MAX_SITES = 50  # failing tests whose function under repair is located after a run
_CONFIG_FILES = frozenset({"pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini"})


# --- computing (on a worker thread) --------------------------------------------------------------


@dataclass
class RunReport:
    run: PytestRun
    failures: dict[str, Failure] = field(default_factory=dict)
    collection_errors: dict[str, str] = field(default_factory=dict)
    diagnostics: dict[str, list[types.Diagnostic]] = field(default_factory=dict)
    spans: dict[str, list[Span]] = field(default_factory=dict)

    def add(self, uri: str, diagnostic: types.Diagnostic, span: Span) -> None:
        self.diagnostics.setdefault(uri, []).append(diagnostic)
        self.spans.setdefault(uri, []).append(span)


def compute(
    root: Path, settings: Settings, encoding: str, cancel: threading.Event | None = None
) -> RunReport:
    run = run_pytest(
        root,
        python=settings.python,
        timeout=settings.timeout,
        pytest_args=settings.pytest_args,
        cancel=cancel,
    )
    return report(root, run, encoding)


def report(root: Path, run: PytestRun, encoding: str) -> RunReport:
    result = RunReport(run)
    texts: dict[str, str | None] = {}

    def text(path: str | Path) -> str | None:
        key = os.path.abspath(path)
        if key not in texts:
            texts[key] = read(key)
        return texts[key]

    for index, outcome in enumerate(run.failed):
        _failure(root, outcome, result, text, encoding, locate=index < _MAX_SITES)
    for error in run.collection_errors:
        _collection_error(root, error, result, text, encoding)
    return result


def summary(outcome: TestOutcome) -> str:
    """The failure in one line: `AssertionError: assert 14 == 6`."""
    message = next((line.strip() for line in outcome.message.splitlines() if line.strip()), "")
    message = message[:300] + ("..." if len(message) > 300 else "")
    if outcome.outcome == "error":
        return f"error in {outcome.when}: {message or 'the test could not run'}"
    if outcome.outcome in ("timeout", "crashed"):
        return f"{outcome.outcome}: {message}" if message else outcome.outcome
    return message or f"{outcome.node_id} {outcome.outcome}"


def _failure(
    root: Path, outcome: TestOutcome, result: RunReport, text, encoding: str, *, locate: bool
) -> None:
    test_path = (
        outcome.location.path if outcome.location else str(root / node_file(outcome.node_id))
    )
    in_test = [
        f.line for f in outcome.frames if os.path.abspath(f.path) == os.path.abspath(test_path)
    ]
    line = in_test[-1] if in_test else (outcome.location.line if outcome.location else 1)
    test_uri = uri_of(test_path)
    message = summary(outcome)
    related = [
        types.DiagnosticRelatedInformation(
            location=types.Location(
                uri=uri_of(frame.path), range=line_range(text(frame.path), frame.line, encoding)
            ),
            message=f"in {frame.function}" if frame.function else "called from here",
        )
        for frame in outcome.frames_within(root)
        if not is_test_file(frame.path)
    ]
    site = None
    if locate:
        with contextlib.suppress(Exception):  # locating is a best guess; never fail the run for it
            site = locate_site(root, outcome)
    site_uri = site_line = None
    if site is not None:
        site_path = root / site.relpath
        site_uri = uri_of(site_path)
        symbol = site.symbol
        inside = [
            f.line
            for f in outcome.frames
            if os.path.abspath(f.path) == str(site_path)
            and symbol.start_line <= f.line <= symbol.end_line
        ]
        site_line = (
            inside[-1] if inside else _def_line(text(site_path), symbol.start_line, symbol.end_line)
        )
        if not inside:
            related.append(
                types.DiagnosticRelatedInformation(
                    location=types.Location(
                        uri=site_uri, range=line_range(text(site_path), site_line, encoding)
                    ),
                    message=f"function under repair: {symbol.qualname}",
                )
            )
    data = {"nodeId": outcome.node_id, "kind": "failure"}
    result.add(
        test_uri,
        types.Diagnostic(
            range=line_range(text(test_path), line, encoding),
            message=message,
            severity=types.DiagnosticSeverity.Error,
            source=SOURCE,
            code=outcome.node_id,
            related_information=related or None,
            data=data,
        ),
        Span(line_range(text(test_path), line, encoding), outcome.node_id, "failure"),
    )
    if site is not None and site_uri is not None and site_line is not None:
        site_range = line_range(text(root / site.relpath), site_line, encoding)
        result.diagnostics.setdefault(site_uri, []).append(
            types.Diagnostic(
                range=site_range,
                message=f"{outcome.node_id} fails: {message} "
                f"({site.reason}: {site.symbol.qualname})",
                severity=types.DiagnosticSeverity.Information,
                source=SOURCE,
                code=outcome.node_id,
                related_information=[
                    types.DiagnosticRelatedInformation(
                        location=types.Location(
                            uri=test_uri, range=line_range(text(test_path), line, encoding)
                        ),
                        message="the failing test",
                    )
                ],
                data={"nodeId": outcome.node_id, "kind": "site"},
            )
        )
        result.spans.setdefault(site_uri, []).append(
            Span(lines_range(site.symbol.start_line, site.symbol.end_line), outcome.node_id, "site")
        )
    result.failures[outcome.node_id] = Failure(
        outcome.node_id, outcome, test_uri, line, site, site_uri, site_line
    )


def _def_line(source: str | None, start: int, end: int) -> int:
    lines = (source or "").splitlines()
    for number in range(start, min(end, len(lines)) + 1):
        if lines[number - 1].lstrip().startswith(("def ", "async def ")):
            return number
    return start


def _collection_error(
    root: Path, error: CollectionError, result: RunReport, text, encoding: str
) -> None:
    location = error.location
    inside = [f for f in error.frames if Path(os.path.abspath(f.path)).is_relative_to(root)]
    frame = inside[-1] if inside else location
    if frame is not None and Path(os.path.abspath(frame.path)).is_relative_to(root):
        path, line = frame.path, frame.line
    else:
        path, line = str(root / node_file(error.node_id)), 1
    message = next(
        (line_.strip() for line_ in error.message.splitlines() if line_.strip()),
        "collection failed",
    )
    uri = uri_of(path)
    range_ = line_range(text(path), line, encoding)
    result.collection_errors[error.node_id] = message
    result.add(
        uri,
        types.Diagnostic(
            range=range_,
            message=f"pytest could not collect {error.node_id}: {message}",
            severity=types.DiagnosticSeverity.Error,
            source=SOURCE,
            code=error.node_id,
            data={"nodeId": error.node_id, "kind": "collection"},
        ),
        Span(range_, error.node_id, "collection"),
    )


# --- running and publishing (on the event loop) --------------------------------------------------


def wants_run(uri: str) -> bool:
    path = path_of(uri)
    return path is not None and (path.suffix == ".py" or path.name in _CONFIG_FILES)


def schedule(ls: LedexLanguageServer, state: WorkspaceState) -> None:
    """Run the tests after the debounce delay; a request in the meantime restarts the delay, and
    a run still going when the next one is requested is stale: it is killed, its result dropped."""
    _new_generation(state)
    state.pending = ls.session.spawn(_debounced(ls, state, state.generation))


def _new_generation(state: WorkspaceState) -> None:
    state.generation += 1
    if state.pending is not None and not state.pending.done():
        state.pending.cancel()  # a delay still waiting: the run never starts
    state.cancel_run.set()  # a run in flight: its sandbox is killed
    state.cancel_run = threading.Event()


async def _debounced(ls: LedexLanguageServer, state: WorkspaceState, generation: int) -> None:
    await asyncio.sleep(ls.session.settings.debounce)
    ls.session.spawn(_run(ls, state, generation))


async def run_now(ls: LedexLanguageServer, state: WorkspaceState) -> PytestRun | None:
    """Run the tests now (for a command or a repair), publish, and return the run; when a newer
    request makes it stale meanwhile, run again (a few times at most, then the last published)."""
    for _ in range(3):
        _new_generation(state)
        run = await _run(ls, state, state.generation)
        if run is not None:
            return run
    return state.run


async def _run(ls: LedexLanguageServer, state: WorkspaceState, generation: int) -> PytestRun | None:
    """Run, publish, and start the background repair of the failures; the run shows as a progress
    bar (`$/progress`) the user can cancel."""
    cancel = state.cancel_run
    progress = await Progress.start(ls, "ledex: running the tests", state.root.name, cancel)
    ending = "cancelled"
    try:
        run = await _run_and_publish(ls, state, generation, cancel)
        if run is not None:
            ending = _counts(run)
            prefetch.after_run(ls, state)
        return run
    finally:
        progress.end(ending)


def _counts(run: PytestRun) -> str:
    errors = f", {len(run.collection_errors)} collection error(s)" if run.collection_errors else ""
    return f"{len(run.passed)} passed, {len(run.failed)} failed{errors} in {run.duration:.1f}s"


async def _run_and_publish(
    ls: LedexLanguageServer, state: WorkspaceState, generation: int, cancel: threading.Event
) -> PytestRun | None:
    settings = ls.session.settings
    encoding = ls.session.features.position_encoding
    try:
        result = await ls.session.in_thread(compute, state.root, settings, encoding, cancel)
    except Exception as error:  # noqa: BLE001 - a broken run is a message, not a crash
        status.error(ls, f"running the tests of {state.root} failed: {error}")
        return None
    if result.run.status == "cancelled":
        status.log(
            ls, f"cancelled a stale test run of {state.root} after {result.run.duration:.1f}s"
        )
        return None
    if generation != state.generation:
        status.log(ls, f"dropped a stale test run of {state.root}")
        return None
    try:
        publish(ls, state, result)
    except Exception as error:  # noqa: BLE001 - a bug here must not stop the next runs
        log.exception("publishing the diagnostics failed")
        status.error(ls, f"publishing the test results failed: {error!r}")
        return None
    return result.run


def publish(ls: LedexLanguageServer, state: WorkspaceState, result: RunReport) -> None:
    run = result.run
    _report_run(ls, state, run)
    previous = state.diagnostics
    state.run, state.failures, state.collection_errors = (
        run,
        result.failures,
        result.collection_errors,
    )
    state.diagnostics, state.spans = result.diagnostics, result.spans
    for uri in sorted(set(previous) | set(result.diagnostics)):
        diagnostics = result.diagnostics.get(uri, [])
        if diagnostics or previous.get(uri):
            ls.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics)
            )
    failing = {(f.test_uri, node) for node, f in result.failures.items()}
    ls.session.forget_repairs(
        lambda record: (
            record.task.project != state.root.resolve()
            or (record.test_uri, record.node_id) in failing
        )
    )


def _report_run(ls: LedexLanguageServer, state: WorkspaceState, run: PytestRun) -> None:
    sandbox = isolation.status()
    if run.isolation == "rlimits" or sandbox.weakened:  # what "verified" rests on, said once
        status.once(ls, types.MessageType.Warning,
                    f"ledex: tests and candidate fixes run in {sandbox.summary()}")  # fmt: skip
    if run.status != "ok" and not run.outcomes:
        status.error(ls, f"the tests of {state.root} could not run: {run.message or run.status}")
        return
    if run.status == "timeout":
        status.warning(
            ls,
            f"the test run of {state.root} {run.message}; raise `ledex.timeout` if it needs longer",
        )
    failed, passed = len(run.failed), len(run.passed)
    errors = f", {len(run.collection_errors)} collection errors" if run.collection_errors else ""
    status.log(
        ls,
        f"{state.root}: {passed} passed, {failed} failed{errors} in {run.duration:.1f}s "
        f"({run.python})",
    )


# --- handlers -----------------------------------------------------------------------------------


async def did_open(ls: LedexLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    _on_event(ls, params.text_document.uri, "open")


async def did_save(ls: LedexLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
    _on_event(ls, params.text_document.uri, "save")


def _on_event(ls: LedexLanguageServer, uri: str, event: str) -> None:
    if event not in ls.session.settings.run_on or not wants_run(uri):
        return
    state = ls.session.workspace_for(uri)
    if state is not None:
        schedule(ls, state)


async def run_tests(ls: LedexLanguageServer, *args: Any) -> dict[str, Any]:
    """`ledex.runTests [{uri}]`: run the tests of the workspace holding `uri` (all workspaces
    if none) now, and publish. Returns counts per workspace."""
    uri = _uri_argument(args)
    if uri is not None:
        state = ls.session.workspace_for(uri)
        states = [state] if state is not None else []
    else:
        states = [ls.session.workspace(root) for root in ls.session.roots()]
    results: dict[str, Any] = {}
    for state in states:
        run = await run_now(ls, state)
        if run is not None:
            results[uri_of(state.root)] = {
                "status": run.status,
                "passed": len(run.passed),
                "failed": len(run.failed),
                "collectionErrors": len(run.collection_errors),
            }
    return results


def _uri_argument(args: tuple[Any, ...]) -> str | None:
    from pygls.exceptions import JsonRpcInvalidParams

    if not args or args[0] is None:
        return None
    first = args[0]
    if isinstance(first, dict) and isinstance(first.get("uri"), str):
        return first["uri"]
    if isinstance(first, str):
        return first
    raise JsonRpcInvalidParams("ledex.runTests takes no argument, a uri, or {uri}")
