"""Explain and fix over LSP: the `ledex.explainAndFix` command and `codeAction/resolve` run
`ledex.fix.fix_tests` (the one fix workflow) with progress and cancellation, and turn its fix,
verified together, into a WorkspaceEdit for the documents as they are now.

One fix at a time per workspace (the others wait in `WorkspaceState.repair_lock`); the model and
pytest run on the session's thread pool, so the server keeps answering meanwhile. An edit is made
only for file texts that still read as the fix's starting texts (any line endings), against the
open buffer with its version where the file is open: a document changed in the meantime gets the
fix recomputed (after a save: the tests run again and the fix is re-verified, without asking the
model) or withheld (unsaved edits), never applied stale. The server never writes a file: the edit
goes to the client (`workspace/applyEdit`, or in a resolved code action).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from ledex import fix
from ledex.errors import LedexError
from ledex.fix_cache import FixCache
from ledex.project_repair import ProjectVerifier
from ledex.source_text import SourceFormat, newline_of, normalise
from lsp_server import diagnostics, prefetch, status
from lsp_server.fix_request import COMMAND, FixOutcome, FixRequest, one_line
from lsp_server.progress import FixEvents, Progress
from lsp_server.session import RepairRecord, WorkspaceState, describe_error
from lsp_server.text import diff_edits, read, uri_of, workspace_edit

if TYPE_CHECKING:
    from lsp_server.server import LedexLanguageServer

log = logging.getLogger("lsp_server")

_RECOMPUTE = 1  # how many times a fix made stale by a save is recomputed


class Cancelled(Exception):
    pass


# --- the job --------------------------------------------------------------------------------------


async def run_job(
    ls: LedexLanguageServer, request: FixRequest, cancel: threading.Event
) -> FixOutcome:
    """Fix the requested tests and return the edit for the documents as they are now (None with
    a message when there is no fix to offer). Never raises for the user's or the model's trouble."""
    state = ls.session.workspace_for(request.uri)
    if state is None:
        return FixOutcome(message=f"{request.uri} is not in a workspace folder")
    title = "ledex: explain and fix" + (" (unverified attempt)" if request.unverified else "")
    progress = await Progress.start(ls, title, ", ".join(request.node_ids), cancel)
    ending = "done"
    try:
        outcome = await _fix(ls, state, request, cancel, progress)
        ending = outcome.message or ("fix ready" if outcome.edit else "no fix")
        return outcome
    except Cancelled:
        ending = "cancelled"
        return FixOutcome(message="cancelled")
    except LedexError as error:
        ls.session.models.forget()
        ending = f"failed: {error}"
        status.error(ls, f"explain and fix failed: {error}")
        return FixOutcome(message=str(error))
    except Exception as error:  # a bug: say so, keep serving
        log.exception("explain and fix failed")
        ending = "failed"
        status.error(ls, f"explain and fix failed (internal error): {describe_error(error)}")
        return FixOutcome(message=describe_error(error))
    finally:
        progress.end(ending)
        if not ls.protocol._shutdown:
            prefetch.after_run(ls, state)  # a background repair stopped for this request resumes


async def _fix(
    ls: LedexLanguageServer,
    state: WorkspaceState,
    request: FixRequest,
    cancel: threading.Event,
    progress: Progress,
) -> FixOutcome:
    session = ls.session
    if request.unverified:
        if not session.settings.show_unverified:
            return FixOutcome(
                message="unverified attempts are offered only with the setting `ledex.showUnverified`"
            )
        return _unverified(ls, state, request)
    if request.version is not None and session.version_of(request.uri) not in (
        None,
        request.version,
    ):
        progress.report("the document changed since; running the tests again")
        await diagnostics.run_now(ls, state)
    elif state.run is None:
        progress.report("running the tests")
        await diagnostics.run_now(ls, state)
    _check(cancel)
    prefetch.yield_to(ls, state, request.node_ids)
    if state.repair_lock.locked():
        progress.report("waiting for the repair running in this workspace")
    async with state.repair_lock:
        _check(cancel)
        for attempt in range(_RECOMPUTE + 1):
            result, records, notes = await compute(ls, state, request.node_ids, cancel, progress)
            outcome = _outcome(ls, result, records, notes)
            if isinstance(outcome, FixOutcome):
                return outcome
            assert result is not None
            if attempt == _RECOMPUTE or not _saved(ls, result):
                changed = ", ".join(sorted(result.files))
                message = (f"{changed} changed while the fix was computed, so it was not applied; "
                           "save the file(s) and run Explain and fix again")  # fmt: skip
                status.warning(ls, message)
                return FixOutcome(message=message, records=records)
            progress.report(
                "the files changed meanwhile; running the tests again to recompute the fix"
            )
            await diagnostics.run_now(ls, state)
            _check(cancel)
    raise AssertionError("unreachable")


def _check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise Cancelled


async def compute(
    ls: LedexLanguageServer,
    state: WorkspaceState,
    node_ids: tuple[str, ...],
    cancel: threading.Event,
    progress: Progress,
    *,
    background: bool = False,
) -> tuple[fix.FixResult | None, list[RepairRecord], list[str]]:
    """Run the fix workflow on the requested tests of the last run, with the repairs the session
    keeps as earlier results; keep the new ones. Raises Cancelled."""
    doing = "Repairing in the background" if background else "Explain and fix is running"
    session, settings = ls.session, ls.session.settings
    notes: list[str] = []
    failures = {}
    for node_id in node_ids:
        failure = state.failures.get(node_id)
        if failure is None or state.run is None:
            notes.append(f"{node_id} does not fail any more" if state.run and state.run.outcomes_for(node_id)
                         else f"{node_id} is not a failing test of the last run")  # fmt: skip
            continue
        failures[node_id] = failure
    if not failures or state.run is None:
        return None, [], notes
    root = state.root.resolve()
    earlier = [
        r.fixing
        for r in session.repairs.values()
        if r.task.project == root and r.node_id == r.fixing.test
    ]
    loop = asyncio.get_running_loop()

    def load_model():  # on the worker thread: the loop loads (or returns) the session's model
        return asyncio.run_coroutine_threadsafe(session.models.get(ls, settings), loop).result()

    def on_event(event: fix.Event) -> None:
        test = getattr(event, "test", None)
        if test not in failures:
            return
        key = (failures[test].test_uri, test)
        if isinstance(event, fix.TestDone):
            session.in_progress.pop(key, None)
            session.drafts.pop(key, None)
            return
        session.in_progress[key] = f"{doing}: {event.describe()}"
        if isinstance(event, fix.CandidateWritten) and event.explanation:
            session.drafts[key] = event.explanation
        elif isinstance(event, fix.CandidateVerified):
            session.drafts.pop(key, None)  # its verdict is known; the next reply brings its own

    keys = [(f.test_uri, node) for node, f in failures.items()]
    for key in keys:
        session.in_progress[key] = f"{doing}: starting"
    try:
        cache = FixCache.default(settings.model) if settings.cache else None
        result = await session.in_thread(
            functools.partial(
                fix.fix_tests,
                root,
                state.run,
                [f.outcome for f in failures.values()],
                load_model,
                settings.fix_config(),
                on_event=FixEvents(progress, on_event),
                cancel=cancel,
                earlier=earlier,
                cache=cache,
            )  # fmt: skip
        )
    finally:
        for key in keys:
            session.in_progress.pop(key, None)
            session.drafts.pop(key, None)
    if result.cancelled:
        raise Cancelled
    records = []
    by_test = {t.test: t for t in result.tests}
    for fixing in result.tests:
        if fixing.skipped:
            notes.append(fixing.skipped)
            status.warning(ls, f"cannot repair {fixing.test}: {fixing.skipped}")
        source = (
            by_test.get(fixing.fixed_by, fixing)
            if fixing.fixed_by and fixing.result is None
            else fixing
        )
        if source.result is None or source.task is None:
            continue
        record = RepairRecord(fixing.test, failures[fixing.test].test_uri, source)
        session.repairs[(record.test_uri, record.node_id)] = record
        records.append(record)
    return result, records, notes


# --- from a result to an edit ---------------------------------------------------------------------


def _outcome(
    ls: LedexLanguageServer,
    result: fix.FixResult | None,
    records: list[RepairRecord],
    notes: list[str],
) -> FixOutcome | str:
    """The edit for the result's combined fix, or "stale" if a file changed since it started."""
    if result is None or not result.files:
        return _no_fix(ls, result, records, notes)
    changes = edit_changes(ls, result.project, result.files)
    if changes is None:
        return "stale"
    included = [t for t in result.tests if t.test in result.included]
    # a test fixed by another test's fix counts only if that fix made it into the combination
    fixed = [t.test for t in result.tests if t.test in result.included or t.fixed_by in result.included]
    partial = [t for t in included if t.status == "partial"]
    first = included[0].fix
    explanation = one_line((first.explanation if first else "") or "") or "fix"
    if partial:
        still = sorted({node for t in partial for node in t.still_failing})
        label = f"ledex (partial fix: {len(still)} failing test(s) of the same code still fail): {explanation}"
        what = f"partial fix (nothing fixed them all; still failing: {', '.join(still)})"
    else:
        label = (
            f"ledex: {explanation}" if len(fixed) == 1 else f"ledex: fix {len(fixed)} failing tests"
        )
        what = "verified fix"
    left = [t.test for t in result.tests if t.test not in fixed]
    others = notes + result.notes + [f"no verified fix for {node}" for node in left]
    message = "; ".join([f"{what} for {', '.join(fixed)}", *others])
    return FixOutcome(workspace_edit(changes, ls.session.features.document_changes), label, message,
                      True, records, partial=bool(partial))  # fmt: skip


def _no_fix(
    ls: LedexLanguageServer,
    result: fix.FixResult | None,
    records: list[RepairRecord],
    notes: list[str],
) -> FixOutcome:
    message = "; ".join(notes + (result.notes if result else [])) or "no fix"
    unverified = [r for r in records if not r.result.verified]
    if unverified:
        rounds = max(len(r.result.rounds) for r in unverified)
        tried = sum(len(r.result.candidates) for r in unverified)
        names = ", ".join(r.node_id for r in unverified)
        message = f"no verified fix for {names} after {rounds} round(s), {tried} candidate(s)"
        if ls.session.settings.show_unverified and any(
            r.result.best and r.result.best.code for r in unverified
        ):
            message += "; the best attempt is offered as an unverified code action"
        status.info(ls, message, show=True)
    elif notes:
        status.info(ls, message, show=True)
    return FixOutcome(message=message, records=records)


def edit_changes(
    ls: LedexLanguageServer, project: Path, files: dict[str, fix.FileFix]
) -> dict[str, tuple[int | None, list[types.TextEdit]]] | None:
    """{uri: (version, edits)} turning each file as the user sees it now into its fixed text, in
    its own line endings; None if one no longer reads as the text the fix was computed from (in
    the editor or on disk, where the fix was verified)."""
    session = ls.session
    encoding = session.features.position_encoding
    changes: dict[str, tuple[int | None, list[types.TextEdit]]] = {}
    for relpath, file_fix in sorted(files.items()):
        path = project / relpath
        now = session.snapshot(uri_of(path))
        if (
            now.text is None
            or normalise(now.text) != file_fix.original
            or read(path) != file_fix.original
        ):
            return None
        new = SourceFormat(newline=newline_of(now.text)).to_editor(file_fix.new)
        changes[now.uri] = (now.version, diff_edits(now.text, new, encoding))
    return changes


def _saved(ls: LedexLanguageServer, result: fix.FixResult) -> bool:
    """Are the involved documents saved (the editor shows what is on disk)? Then the tests can be
    run again on them and the fix recomputed."""
    return all(
        ls.session.text_of(result.project / rel) == read(result.project / rel)
        for rel in result.files
    )


def _unverified(ls: LedexLanguageServer, state: WorkspaceState, request: FixRequest) -> FixOutcome:
    """The best unverified attempt of a kept repair, as an edit (the setting `showUnverified`)."""
    session = ls.session
    for node_id in request.node_ids:
        failure = state.failures.get(node_id)
        record = session.repair_for(failure.test_uri, node_id) if failure else None
        best = record.result.best if record is not None else None
        if record is None or best is None or not best.code or not session.is_fresh(record):
            continue
        patches = ProjectVerifier(record.task).patches(best.code)
        if not isinstance(patches, dict):
            continue
        files = {
            rel: fix.FileFix(rel, patch.source, patch.new_source) for rel, patch in patches.items()
        }
        changes = edit_changes(ls, record.task.project, files)
        if changes is None:
            continue
        label = f"ledex (UNVERIFIED, tests still fail): {one_line(best.explanation or '') or 'fix'}"
        return FixOutcome(workspace_edit(changes, session.features.document_changes), label,
                          f"unverified attempt for {node_id}", False, [record])  # fmt: skip
    return FixOutcome(message=f"no earlier attempt for {', '.join(request.node_ids)} to apply")


# --- the command ---------------------------------------------------------------------------------


async def explain_and_fix(ls: LedexLanguageServer, *args: Any) -> dict[str, Any]:
    """`ledex.explainAndFix {uri, version, nodeId | nodeIds, unverified?}`: repair, then send the
    fix to the client with `workspace/applyEdit`. $/cancelRequest and the progress' cancel button
    stop it."""
    if len(args) != 1:
        raise JsonRpcInvalidParams(f"{COMMAND} takes one argument {{uri, version, nodeId}}")
    request = FixRequest.from_json(args[0])
    if not ls.session.features.apply_edit:
        status.error(ls, "this editor cannot apply edits sent by a server (workspace/applyEdit), so "
                         "Explain and fix cannot deliver a fix")  # fmt: skip
        return FixOutcome(message="the client cannot apply edits").to_json(False)
    outcome = await run_cancellable(ls, request)
    if outcome.edit is None:
        return outcome.to_json(False)
    result = await ls.workspace_apply_edit_async(
        types.ApplyWorkspaceEditParams(edit=outcome.edit, label=outcome.label)
    )
    if not result.applied:
        status.warning(
            ls, f"the editor did not apply the fix: {result.failure_reason or 'no reason given'}"
        )
    return outcome.to_json(result.applied)


async def run_cancellable(ls: LedexLanguageServer, request: FixRequest) -> FixOutcome:
    """Run the job as its own task: cancelling the request ($/cancelRequest) sets the cancel event,
    and the job stops at its next check, releasing the workspace's queue."""
    cancel = threading.Event()
    msg_id = ls.protocol.msg_id
    if msg_id is not None:
        ls.session.cancellations[msg_id] = cancel
    job = ls.session.spawn(run_job(ls, request, cancel))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        cancel.set()
        raise
    finally:
        if msg_id is not None:
            ls.session.cancellations.pop(msg_id, None)
