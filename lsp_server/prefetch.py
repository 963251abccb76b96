"""The fix ready before the user asks: after a test run publishes failures, repair them in the
background, one at a time, at the lowest priority, so the quick-fix and the hover are served from
the result (the explanation shows, marked not yet verified, while the fix is being tested).

A prefetch is cancelled by an edit of a Python file in the workspace, by a run whose failures
differ, and by a request of the user for another test (which then goes first; the prefetch
resumes after it). The setting `ledex.prefetch` turns it off (on by default for local models).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lsprotocol import types

from ledex.errors import LedexError
from lsp_server import status
from lsp_server.progress import Progress
from lsp_server.session import WorkspaceState, describe_error
from lsp_server.text import path_of

if TYPE_CHECKING:
    from lsp_server.server import LedexLanguageServer

log = logging.getLogger("lsp_server")


@dataclass
class Prefetch:
    """The background repair of one workspace's failures."""

    state: WorkspaceState
    failures: frozenset[str]  # the run's failing tests when it started
    cancel: threading.Event = field(default_factory=threading.Event)
    current: str | None = None  # the test being repaired now


def _running(ls: LedexLanguageServer) -> dict:
    return ls.session.prefetches


def after_run(ls: LedexLanguageServer, state: WorkspaceState) -> None:
    """A run was published: start repairing its failures that have no repair yet (a prefetch
    already at work on the same failures goes on)."""
    running = _running(ls).get(state.root)
    failures = frozenset(state.failures)
    if running is not None and not running.cancel.is_set():
        if running.failures == failures:
            return
        running.cancel.set()
    if not ls.session.settings.prefetches() or not _pending(ls, state):
        _running(ls).pop(state.root, None)
        return
    prefetch = Prefetch(state, failures)
    _running(ls)[state.root] = prefetch
    ls.session.spawn(_work(ls, prefetch))


def _pending(ls: LedexLanguageServer, state: WorkspaceState) -> list[str]:
    """Failing tests without a repair for the files as they are."""
    session = ls.session
    pending = []
    for node_id, failure in state.failures.items():
        record = session.repair_for(failure.test_uri, node_id)
        if record is None or not session.is_fresh(record):
            pending.append(node_id)
    return pending


def edited(ls: LedexLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    """An edit makes the files a prefetch works on stale: stop it (the save runs the tests, and
    the run starts a new one)."""
    path = path_of(params.text_document.uri)
    if path is None or path.suffix != ".py":
        return
    state = ls.session.workspace_for(params.text_document.uri)
    running = _running(ls).pop(state.root, None) if state is not None else None
    if running is not None:
        running.cancel.set()


def yield_to(ls: LedexLanguageServer, state: WorkspaceState, node_ids: tuple[str, ...]) -> None:
    """The user asks for these tests: a prefetch of another test stops (it resumes afterwards);
    one of the same test goes on, and the request waits for its result."""
    running = _running(ls).get(state.root)
    if running is not None and running.current not in node_ids:
        running.cancel.set()
        _running(ls).pop(state.root, None)


async def _work(ls: LedexLanguageServer, prefetch: Prefetch) -> None:
    from lsp_server.explain_and_fix import Cancelled, compute  # the fix job; imports this module

    state, session = prefetch.state, ls.session
    progress = Progress(ls, None, prefetch.cancel)  # silent: the user did not ask
    try:
        for node_id in _pending(ls, state):
            async with state.repair_lock:  # after any request of the user's
                if prefetch.cancel.is_set():
                    return
                if node_id not in state.failures or node_id not in _pending(ls, state):
                    continue
                prefetch.current = node_id
                status.log(ls, f"repairing {node_id} in the background")
                await compute(ls, state, (node_id,), prefetch.cancel, progress, background=True)
                prefetch.current = None
    except Cancelled:
        pass
    except LedexError as error:
        session.models.forget()
        status.log(ls, f"background repair stopped: {error}")
    except Exception as error:  # noqa: BLE001 - a bug must not stop the server
        log.exception("background repair failed")
        status.log(ls, f"background repair failed: {describe_error(error)}")
    finally:
        if _running(ls).get(state.root) is prefetch:
            _running(ls).pop(state.root, None)
