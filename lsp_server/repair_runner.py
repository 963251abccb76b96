"""Explain and fix: run `ledex.project_repair.repair_test` for failing tests, with progress and
cancellation, and turn the verified fix into a WorkspaceEdit for the documents as they are now.

One repair at a time per workspace (the others wait in `WorkspaceState.repair_lock`); the model
and pytest run on the session's thread pool, so the server keeps answering meanwhile. A fix is
offered for the file texts it was computed and verified against: if a document changed in the
meantime the fix is recomputed (after a save) or withheld (unsaved edits), never applied stale.
The server never writes a file: the edit goes to the client (`workspace/applyEdit`, or in a
resolved code action).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from ledex import patching, project_repair
from ledex.errors import LedexError
from ledex.repair import Candidate, RepairResult
from ledex.sandbox.pytest_runner import run_pytest
from lsp_server import diagnostics, status
from lsp_server.session import RepairRecord, WorkspaceState, describe_error
from lsp_server.text import diff_edits, read, text_edits, uri_of, workspace_edit

if TYPE_CHECKING:
    from lsp_server.server import LedexLanguageServer

log = logging.getLogger("lsp_server")

COMMAND = "ledex.explainAndFix"
_RECOMPUTE = 1  # how many times a fix made stale by a save is recomputed


class Cancelled(Exception):
    pass


@dataclass(frozen=True)
class FixRequest:
    """What a code action or command asks for: fix these tests, seen in `uri` at `version`."""

    uri: str
    version: int | None
    node_ids: tuple[str, ...]
    unverified: bool = False  # apply the best attempt although not verified (showUnverified)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"uri": self.uri, "version": self.version}
        if len(self.node_ids) == 1:
            data["nodeId"] = self.node_ids[0]
        else:
            data["nodeIds"] = list(self.node_ids)
        if self.unverified:
            data["unverified"] = True
        return data

    @classmethod
    def from_json(cls, raw: object) -> FixRequest:
        """Raises JsonRpcInvalidParams for anything malformed."""
        if not isinstance(raw, dict):
            raise JsonRpcInvalidParams(f"expected {{uri, version, nodeId}}, got {raw!r}"[:300])
        uri, version = raw.get("uri"), raw.get("version")
        nodes = raw.get("nodeIds", [raw["nodeId"]] if "nodeId" in raw else None)
        if not isinstance(uri, str) or not uri:
            raise JsonRpcInvalidParams("`uri` must be a document URI")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise JsonRpcInvalidParams("`version` must be an integer or null")
        if (
            not isinstance(nodes, list)
            or not nodes
            or not all(isinstance(n, str) and n for n in nodes)
        ):
            raise JsonRpcInvalidParams(
                "`nodeId` (a test node id) or `nodeIds` (a list of them) is required"
            )
        return cls(uri, version, tuple(dict.fromkeys(nodes)), bool(raw.get("unverified", False)))


@dataclass
class FixOutcome:
    edit: types.WorkspaceEdit | None = None
    label: str = ""
    message: str = ""
    verified: bool = False
    records: list[RepairRecord] = field(default_factory=list)

    def to_json(self, applied: bool) -> dict[str, Any]:
        return {
            "applied": applied,
            "verified": self.verified,
            "message": self.message,
            "tests": [r.node_id for r in self.records],
        }


# --- progress -----------------------------------------------------------------------------------


class Progress:
    """`window/workDoneProgress` for one job (a no-op where the client has no progress UI); its
    cancel button sets the job's cancel event."""

    def __init__(self, ls: LedexLanguageServer, token: str | None, cancel: threading.Event) -> None:
        self.ls, self.token, self.cancel = ls, token, cancel
        self.loop = asyncio.get_running_loop()
        self.done = 0.0  # fraction of the whole job finished

    @classmethod
    async def start(
        cls, ls: LedexLanguageServer, title: str, message: str, cancel: threading.Event
    ) -> Progress:
        window = ls.client_capabilities.window
        token = None
        if window is not None and window.work_done_progress:
            token = f"ledex-{uuid.uuid4().hex}"
            try:
                await ls.work_done_progress.create_async(token)
            except Exception:  # noqa: BLE001 - the client refused a progress bar: go on without
                token = None
        progress = cls(ls, token, cancel)
        if token is not None:
            ls.work_done_progress.begin(
                token,
                types.WorkDoneProgressBegin(
                    title=title, message=message, cancellable=True, percentage=0
                ),
            )
            future = ls.work_done_progress.tokens.get(token)
            if future is not None:
                future.add_done_callback(lambda f: cancel.set() if f.cancelled() else None)
        return progress

    def report(self, message: str, fraction: float | None = None) -> None:
        if fraction is not None:
            self.done = max(self.done, min(1.0, fraction))
        if self.token is not None:
            self.ls.work_done_progress.report(
                self.token,
                types.WorkDoneProgressReport(
                    message=message, percentage=int(self.done * 100), cancellable=True
                ),
            )

    def end(self, message: str) -> None:
        if self.token is not None:
            self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
            self.ls.work_done_progress.tokens.pop(self.token, None)
            self.token = None

    def for_repair(
        self, key: tuple[str, str], node_id: str, index: int, count: int, rounds: int, n: int
    ) -> Callable[[str, dict[str, Any]], None]:
        """A `repair_test` progress callback: called on a worker thread, reports on the loop."""
        session = self.ls.session

        def on_loop(event: str, details: dict[str, Any]) -> None:
            round_ = details.get("round", 1)
            where = f"{node_id}: round {round_}/{rounds}"
            if event == "round":
                text = f"{where}, asking the model for {n} candidate(s)"
                step = 0.0
            elif event == "generated":
                candidate = details.get("candidate", 1)
                text = f"{where}, verifying candidate {candidate}/{n}"
                step = (candidate - 0.5) / max(1, n)
            elif event == "verified":
                verdict = details.get("verdict")
                outcome = (
                    f"{verdict.passed}/{verdict.total} tests pass"
                    if verdict is not None
                    else "could not be used"
                )
                text = f"{where}, candidate {details.get('candidate')}/{n}: {outcome}"
                step = details.get("candidate", 0) / max(1, n)
            else:
                return
            if key in session.in_progress:
                session.in_progress[key] = text
            self.report(text, (index + (round_ - 1 + step) / rounds) / count)

        return lambda event, details: self.loop.call_soon_threadsafe(on_loop, event, details)


# --- the job --------------------------------------------------------------------------------------


async def fix(ls: LedexLanguageServer, request: FixRequest, cancel: threading.Event) -> FixOutcome:
    """Repair the requested tests and return the edit for the documents as they are now (None with
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


async def _fix(
    ls: LedexLanguageServer,
    state: WorkspaceState,
    request: FixRequest,
    cancel: threading.Event,
    progress: Progress,
) -> FixOutcome:
    session = ls.session
    if request.unverified and not session.settings.show_unverified:
        return FixOutcome(
            message="unverified attempts are offered only with the setting `ledex.showUnverified`"
        )
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
    if state.repair_lock.locked():
        progress.report("waiting for the repair running in this workspace")
    async with state.repair_lock:
        _check(cancel)
        for attempt in range(_RECOMPUTE + 1):
            records, notes = await _repair_all(ls, state, request, cancel, progress)
            outcome = await _edit_for(ls, state, request, records, notes)
            if outcome != "stale":
                return outcome
            if attempt == _RECOMPUTE or not _saved(ls, records):
                changed = ", ".join(sorted({rel for r in records for rel in r.task.sources}))
                message = (
                    f"{changed} changed while the fix was computed, so it was not applied; "
                    "save the file(s) and run Explain and fix again"
                )
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


def _saved(ls: LedexLanguageServer, records: list[RepairRecord]) -> bool:
    """Are the involved documents saved (the editor shows what is on disk)? Then the tests can be
    run again on them and the fix recomputed."""
    for record in records:
        for relpath in record.task.sources:
            path = record.task.project / relpath
            if ls.session.text_of(path) != read(path):
                return False
    return True


async def _repair_all(
    ls: LedexLanguageServer,
    state: WorkspaceState,
    request: FixRequest,
    cancel: threading.Event,
    progress: Progress,
) -> tuple[list[RepairRecord], list[str]]:
    """A record per requested test that still fails: a fresh earlier repair, an earlier fix that
    still verifies, or a new repair."""
    session, settings = ls.session, ls.session.settings
    records: list[RepairRecord] = []
    notes: list[str] = []
    for index, node_id in enumerate(request.node_ids):
        _check(cancel)
        failure = state.failures.get(node_id)
        if failure is None or state.run is None:
            notes.append(
                f"{node_id} does not fail any more"
                if state.run and state.run.outcomes_for(node_id)
                else f"{node_id} is not a failing test of the last run"
            )
            continue
        key = (failure.test_uri, node_id)
        known = session.repair_for(*key)
        if (
            known is not None
            and session.is_fresh(known)
            and (known.result.verified or request.unverified)
        ):
            records.append(known)
            continue
        task = await session.in_thread(
            functools.partial(
                project_repair.prepare,
                state.root,
                state.run,
                failure.outcome,
                python=settings.python,
                timeout=settings.timeout,
            )
        )
        if isinstance(task, str):
            notes.append(task)
            status.warning(ls, f"cannot repair {node_id}: {task}")
            continue
        snapshots = {rel: session.snapshot(uri_of(task.project / rel)) for rel in task.sources}
        session.in_progress[key] = "checking earlier fixes"
        try:
            others = [r for r in session.repairs.values() if r.task.project == task.project]
            reused = await _reuse(ls, task, [known, *records, *others], progress, node_id)
            if reused is not None:
                result = reused
            else:
                if request.unverified:
                    notes.append(f"no earlier attempt for {node_id} to apply")
                    continue
                backend = await session.models.get(ls, settings)
                _check(cancel)
                session.in_progress[key] = "asking the model"
                config = settings.repair_config()
                callback = progress.for_repair(
                    key, node_id, index, len(request.node_ids), config.rounds, config.n
                )
                result = await session.in_thread(
                    functools.partial(
                        project_repair.repair_test,
                        task,
                        backend,
                        config,
                        progress=callback,
                        cancel=cancel,
                    )
                )
        finally:
            session.in_progress.pop(key, None)
        if result.cancelled:
            raise Cancelled
        record = RepairRecord(node_id, failure.test_uri, task, result, snapshots)
        session.repairs[key] = record
        records.append(record)
    return records, notes


async def _reuse(
    ls: LedexLanguageServer,
    task: project_repair.ProjectTask,
    earlier: list[RepairRecord | None],
    progress: Progress,
    node_id: str,
) -> RepairResult | None:
    """An earlier verified fix (of this test before the files changed, or of another test whose
    function under repair is in the same file) that verifies on this task too: no need to ask the
    model again."""
    known = [(r.task, r.result) for r in earlier if r is not None and r.result.verified]
    if not known:
        return None
    progress.report(f"{node_id}: checking whether an earlier fix also fixes it")
    reused = await ls.session.in_thread(project_repair.reuse_earlier_fix, task, known)
    return reused[0] if reused is not None else None


# --- from records to an edit ----------------------------------------------------------------------


async def _edit_for(
    ls: LedexLanguageServer,
    state: WorkspaceState,
    request: FixRequest,
    records: list[RepairRecord],
    notes: list[str],
) -> FixOutcome | str:
    """The edit for the records' fixes, or "stale" if a document changed since they started."""
    session = ls.session
    usable = [r for r in records if _candidate(r, request.unverified) is not None]
    if not request.unverified:
        notes = notes + [
            f"no verified fix for {r.node_id}" for r in records if not r.result.verified and usable
        ]
    if not usable:
        unverified = [r for r in records if not r.result.verified]
        message = "; ".join(notes) or "no fix"
        if unverified:
            rounds = max(len(r.result.rounds) for r in unverified)
            tried = sum(len(r.result.candidates) for r in unverified)
            names = ", ".join(r.node_id for r in unverified)
            message = f"no verified fix for {names} after {rounds} round(s), {tried} candidate(s)"
            if session.settings.show_unverified and any(
                r.result.best and r.result.best.code for r in unverified
            ):
                message += "; the best attempt is offered as an unverified code action"
            status.info(ls, message, show=True)
        elif notes:
            status.info(ls, message, show=True)
        return FixOutcome(message=message, records=records)
    if any(_stale(ls, r) for r in usable):
        return "stale"
    encoding = str(ls.workspace.position_encoding or types.PositionEncodingKind.Utf16)
    if len(usable) == 1:
        changes = _patch_changes(ls, usable[0], request.unverified, encoding)
        if changes is None:
            return FixOutcome(message="the fix no longer applies to the file", records=records)
    else:
        composed = await _compose(ls, state, usable, encoding)
        if composed is None:
            usable = usable[:1]
            changes = _patch_changes(ls, usable[0], request.unverified, encoding)
            if changes is None:
                return FixOutcome(message="the fix no longer applies to the file", records=records)
            status.warning(
                ls,
                f"the fixes do not verify together; applying the fix for {usable[0].node_id} only",
            )
        else:
            changes = composed
        if any(_stale(ls, r) for r in usable):  # edited while the combination was verified
            return "stale"
    verified = all(r.result.verified for r in usable) and not request.unverified
    best = usable[0].result.fix if verified else usable[0].result.best
    explanation = one_line(best.explanation if best else "") or "fix"
    label = (
        f"ledex: {explanation}"
        if verified
        else f"ledex (UNVERIFIED, tests still fail): {explanation}"
    )
    if len(usable) > 1:
        label = f"ledex: fix {len(usable)} failing tests"
    what = "verified fix" if verified else "unverified attempt"
    message = "; ".join([f"{what} for {', '.join(r.node_id for r in usable)}", *notes])
    return FixOutcome(
        workspace_edit(changes, ls.client_capabilities), label, message, verified, records
    )


def _candidate(record: RepairRecord, unverified: bool) -> Candidate | None:
    candidate = record.result.best if unverified else record.result.fix
    return candidate if candidate is not None and candidate.code else None


def _stale(ls: LedexLanguageServer, record: RepairRecord) -> bool:
    """Has any file the fix edits changed since the repair started, in the editor or on disk?"""
    if not ls.session.is_fresh(record):
        return True
    for before in record.snapshots.values():
        now = ls.session.snapshot(before.uri)
        if now.version != before.version and before.version is not None:
            return True
    return False


def _patch_changes(
    ls: LedexLanguageServer, record: RepairRecord, unverified: bool, encoding: str
) -> dict[str, tuple[int | None, list[types.TextEdit]]] | None:
    candidate = _candidate(record, unverified)
    if candidate is None:
        return None
    patches = project_repair.ProjectVerifier(record.task).patches(candidate.code)
    if isinstance(patches, patching.PatchError):
        return None
    changes = {}
    for relpath, patch in sorted(patches.items()):
        uri = uri_of(record.task.project / relpath)
        changes[uri] = (ls.session.version_of(uri), text_edits(patch.source, patch.edits, encoding))
    return changes


async def _compose(
    ls: LedexLanguageServer, state: WorkspaceState, records: list[RepairRecord], encoding: str
) -> dict[str, tuple[int | None, list[types.TextEdit]]] | None:
    """Several verified fixes applied one after the other, verified together: the edit, or None."""
    project = records[0].task.project
    originals: dict[str, str] = {}
    composed: dict[str, str] = {}
    for record in records:
        code = record.result.fix.code if record.result.fix else None
        for relpath, source in record.task.sources.items():
            originals.setdefault(relpath, source)
            current = composed.get(relpath, originals[relpath])
            target = (
                record.task.site.symbol.qualname if relpath == record.task.site.relpath else None
            )
            patch = patching.apply_fix(current, code or "", target=target)
            if isinstance(patch, patching.Patch):
                composed[relpath] = patch.new_source
    nodes = sorted({n for r in records for n in r.task.check_nodes})
    required = {n for r in records for n in [r.node_id, *r.task.previously_passing]}
    settings = ls.session.settings
    run = await ls.session.in_thread(
        lambda: run_pytest(
            project, nodes, overlay=composed, python=settings.python, timeout=settings.timeout
        )
    )
    if not run.passes(sorted(required)):
        return None
    return {
        uri_of(project / rel): (
            ls.session.version_of(uri_of(project / rel)),
            diff_edits(originals[rel], text, encoding),
        )
        for rel, text in sorted(composed.items())
        if text != originals[rel]
    }


def one_line(text: str, limit: int = 90) -> str:
    """The first sentence of an explanation, for a code action's title."""
    flat = " ".join((text or "").split())
    for end in (". ", "; "):
        if end in flat[: limit + 1]:
            flat = flat[: flat.index(end) + 1]
            break
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


# --- the command ---------------------------------------------------------------------------------


async def explain_and_fix(ls: LedexLanguageServer, *args: Any) -> dict[str, Any]:
    """`ledex.explainAndFix {uri, version, nodeId | nodeIds, unverified?}`: repair, then send the
    fix to the client with `workspace/applyEdit`. $/cancelRequest and the progress' cancel button
    stop it."""
    if len(args) != 1:
        raise JsonRpcInvalidParams(f"{COMMAND} takes one argument {{uri, version, nodeId}}")
    request = FixRequest.from_json(args[0])
    workspace_caps = ls.client_capabilities.workspace
    if not (workspace_caps and workspace_caps.apply_edit):
        status.error(
            ls,
            "this editor cannot apply edits sent by a server (workspace/applyEdit), so "
            "Explain and fix cannot deliver a fix",
        )
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
    """Run `fix` as its own task: cancelling the request ($/cancelRequest) sets the cancel event,
    and the job stops at its next check, releasing the workspace's queue."""
    cancel = threading.Event()
    msg_id = ls.protocol.msg_id
    if msg_id is not None:
        ls.session.cancellations[msg_id] = cancel
    job = ls.session.spawn(fix(ls, request, cancel))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        cancel.set()
        raise
    finally:
        if msg_id is not None:
            ls.session.cancellations.pop(msg_id, None)
