"""`window/workDoneProgress` for the server's long jobs (a fix, a test run): a bar with a cancel
button where the client has one, nothing where it does not; and the fix's typed events
(`ledex.fix.Event`) as its messages."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from lsprotocol import types

from ledex import fix
from lsp_server.fix_request import one_line

if TYPE_CHECKING:
    from lsp_server.server import LedexLanguageServer


class Progress:
    """One progress bar; its cancel button sets `cancel`. Call on the event loop."""

    def __init__(
        self, ls: LedexLanguageServer, token: str | None, cancel: threading.Event | None
    ) -> None:
        self.ls, self.token, self.cancel = ls, token, cancel
        self.done = 0.0  # fraction of the whole job finished

    @classmethod
    async def start(
        cls,
        ls: LedexLanguageServer,
        title: str,
        message: str,
        cancel: threading.Event | None = None,
    ) -> Progress:
        token = None
        if ls.session.features.work_done_progress:
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
                    title=title, message=message, cancellable=cancel is not None, percentage=0
                ),
            )
            future = ls.work_done_progress.tokens.get(token)
            if future is not None and cancel is not None:
                future.add_done_callback(lambda f: cancel.set() if f.cancelled() else None)
        return progress

    def report(self, message: str, fraction: float | None = None) -> None:
        if fraction is not None:
            self.done = max(self.done, min(1.0, fraction))
        if self.token is not None and not self.ls.protocol._shutdown:
            with contextlib.suppress(Exception):  # the client went away: nothing to tell
                self.ls.work_done_progress.report(
                    self.token,
                    types.WorkDoneProgressReport(
                        message=message,
                        percentage=int(self.done * 100),
                        cancellable=self.cancel is not None,
                    ),
                )

    def end(self, message: str) -> None:
        if self.token is None:
            return
        if not self.ls.protocol._shutdown:  # after `shutdown` the client may be gone
            with contextlib.suppress(Exception):
                self.ls.work_done_progress.end(
                    self.token, types.WorkDoneProgressEnd(message=message)
                )
        self.ls.work_done_progress.tokens.pop(self.token, None)
        self.token = None


class FixEvents:
    """A `fix_tests` event callback (called on a worker thread) that reports on the loop: the bar's
    message and fraction, and `on_event` (the session's view of what each test is doing)."""

    def __init__(self, progress: Progress, on_event: Callable[[fix.Event], None]) -> None:
        self.progress, self.on_event = progress, on_event
        self.loop = asyncio.get_running_loop()
        self.index, self.count = 0, 1

    def __call__(self, event: fix.Event) -> None:
        self.loop.call_soon_threadsafe(self._on_loop, event)

    def _on_loop(self, event: fix.Event) -> None:
        self.on_event(event)
        message = event.describe()
        if isinstance(event, fix.CandidateWritten) and event.explanation:
            # shown while the code is tested, and marked so
            message += f" — explanation (not yet verified): {one_line(event.explanation, 120)}"
        self.progress.report(message, self._fraction(event))

    def _fraction(self, event: fix.Event) -> float | None:
        # a repair done again (fix.RepairingAgain) says so in the message; the bar, which only
        # goes up, stays where the last test's repair left it
        if isinstance(event, fix.RepairStarted):
            self.index, self.count = event.index, max(1, event.count)
            return self.index / self.count
        if isinstance(event, fix.RoundStarted):
            step = 0.0
        elif isinstance(event, fix.CandidateWritten):
            step = (event.candidate - 0.5) / max(1, event.candidates)
        elif isinstance(event, fix.CandidateVerified):
            step = event.candidate / max(1, event.candidates)
        else:
            return None
        return (self.index + (event.round - 1 + step) / max(1, event.rounds)) / self.count
