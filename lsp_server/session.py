"""What the server knows between requests: settings, each workspace's last test run and the
failures in it, the published diagnostics, the repairs computed so far, and the model.

Everything here is read and written on the event loop thread only; blocking work (pytest, the
model) runs on `Session.pool` through `Session.in_thread`, and gets immutable inputs (paths,
settings, `Snapshot`s), so its result can be checked against the documents it was computed for.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lsprotocol import types

from ledex.errors import LedexError
from ledex.fix import TestFix
from ledex.models import Backend, Completion, Conversation, Sampling, load_backend, parse_spec
from ledex.project_repair import ProjectTask, Site
from ledex.repair import RepairResult
from ledex.sandbox.pytest_runner import PytestRun, TestOutcome
from ledex.source_text import normalise
from lsp_server import status
from lsp_server.client_features import ClientFeatures
from lsp_server.settings import Settings
from lsp_server.text import canonical_uri, path_of, read, uri_of

if TYPE_CHECKING:
    from lsp_server.server import LedexLanguageServer

T = TypeVar("T")


@dataclass(frozen=True)
class Snapshot:
    """A document as it was when work on it started: the editor's buffer if it is open, else the
    file on disk (version None)."""

    uri: str
    version: int | None
    text: str | None


@dataclass(frozen=True)
class Failure:
    """One failing test of the last run, with where it shows."""

    node_id: str
    outcome: TestOutcome
    test_uri: str
    line: int  # 1-based, the failing line in the test file
    site: Site | None  # the function under repair
    site_uri: str | None
    site_line: int | None  # the line of the site diagnostic


@dataclass(frozen=True)
class Span:
    """A range of a document that hover explains: a failing line or a function under repair."""

    range: types.Range
    node_id: str
    kind: str  # "failure", "site" or "collection"


@dataclass
class RepairRecord:
    """A finished repair of one failing test (`ledex.fix.TestFix`: the task with the file texts it
    started from, the result, a partial fix), kept to serve quick-fixes and hovers and to be
    reused while those files read the same."""

    node_id: str
    test_uri: str
    fixing: TestFix

    @property
    def task(self) -> ProjectTask:
        assert self.fixing.task is not None
        return self.fixing.task

    @property
    def result(self) -> RepairResult:
        assert self.fixing.result is not None
        return self.fixing.result


@dataclass
class WorkspaceState:
    root: Path
    run: PytestRun | None = None
    failures: dict[str, Failure] = field(default_factory=dict)
    collection_errors: dict[str, str] = field(default_factory=dict)  # node id -> message
    diagnostics: dict[str, list[types.Diagnostic]] = field(default_factory=dict)  # uri -> published
    spans: dict[str, list[Span]] = field(default_factory=dict)  # uri -> hover spans
    generation: int = 0  # bumped by every requested run; an older run's result is dropped
    pending: asyncio.Task | None = None  # the debounced or running test run
    #: set to kill the test run in flight: a newer request has made it stale
    cancel_run: threading.Event = field(default_factory=threading.Event)
    repair_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # repairs run one at a time


class Models:
    """The model backend for the current `model` setting: loaded once, off the loop; a spec change
    loads the new one and closes the old."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._key: tuple[str, float] | None = None
        self._backend: Backend | None = None

    async def get(self, ls: LedexLanguageServer, settings: Settings) -> Backend:
        """The backend, loading it if needed; raises LedexError with a message for the user."""
        key = (settings.model, settings.model_timeout)
        async with self._lock:
            if self._backend is not None and self._key == key:
                return self._backend
            self.close()
            spec = parse_spec(settings.model)  # a bad spec raises ModelSpecError here
            loud = spec.kind != "openai"  # loading weights takes a while: say so on screen
            status.info(ls, f"loading the model ({settings.model})...", show=loud)
            backend = await ls.session.in_thread(
                functools.partial(load_backend, spec, timeout=settings.model_timeout)
            )
            self._backend, self._key = _Serialised(backend), key
            status.info(ls, f"model ready: {backend.info.model}", show=loud)
            return self._backend

    def forget(self) -> None:
        """Drop the backend (e.g. after it failed) so the next repair loads it again."""
        self.close()

    def close(self) -> None:
        if self._backend is not None:
            backend, self._backend, self._key = self._backend, None, None
            with contextlib.suppress(Exception):  # closing is best effort
                backend.close()


class _Serialised(Backend):
    """One generation at a time: the embedded llama.cpp model is not thread-safe, and repairs of
    different workspaces may overlap."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self.info = backend.info

    def generate(
        self,
        conversations: Sequence[Conversation],
        sampling: Sampling = Sampling(),  # noqa: B008 -- frozen, as in Backend
    ) -> list[list[Completion]]:
        with self._lock:
            return self._backend.generate(conversations, sampling)

    def stream(self, conversation: Conversation, sampling: Sampling = Sampling()):  # noqa: B008
        with self._lock:
            yield from self._backend.stream(conversation, sampling)

    def close(self) -> None:
        self._backend.close()


class Session:
    def __init__(self, ls: LedexLanguageServer, max_workers: int | None = None) -> None:
        self.ls = ls
        self.settings = Settings()
        self.features = ClientFeatures()  # resolved at initialize
        self.initialization_options: object = None
        self.workspaces: dict[Path, WorkspaceState] = {}
        self.repairs: dict[tuple[str, str], RepairRecord] = {}  # (test uri, node id) -> record
        self.models = Models()
        self.pool = ThreadPoolExecutor(
            max_workers=max_workers or min(8, (os.cpu_count() or 2) + 2),
            thread_name_prefix="ledex-work",
        )
        self.cancellations: dict[Any, threading.Event] = {}  # request id -> event
        self.in_progress: dict[tuple[str, str], str] = {}  # (test uri, node id) -> what it is doing
        #: (test uri, node id) -> the explanation of the candidate being verified (not yet verified)
        self.drafts: dict[tuple[str, str], str] = {}
        self.prefetches: dict[
            Path, Any
        ] = {}  # workspace root -> its background repair (prefetch.Prefetch)
        self._background: set[asyncio.Task] = set()

    # --- threads ---------------------------------------------------------------------------------

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run in the background, holding a reference (asyncio keeps only weak ones)."""
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def close(self) -> None:
        self.models.close()
        self.pool.shutdown(wait=False, cancel_futures=True)

    # --- workspaces ------------------------------------------------------------------------------

    def roots(self) -> list[Path]:
        """The workspace folders (or the root) the client opened, deepest first."""
        found: list[Path] = []
        try:
            workspace = self.ls.workspace
        except RuntimeError:  # not initialized
            return []
        for folder_uri in list(workspace.folders.keys()) + [workspace.root_uri]:
            path = path_of(folder_uri) if folder_uri else None
            if path is not None and path.is_dir():
                found.append(Path(os.path.abspath(path)))
        return sorted(set(found), key=lambda p: len(p.parts), reverse=True)

    def workspace_for(self, uri: str) -> WorkspaceState | None:
        """The state of the workspace folder holding the document (created on first use)."""
        path = path_of(uri)
        if path is None:
            return None
        path = Path(os.path.abspath(path))
        for root in self.roots():
            if path == root or path.is_relative_to(root):
                return self.workspace(root)
        return None

    def workspace(self, root: Path) -> WorkspaceState:
        if root not in self.workspaces:
            self.workspaces[root] = WorkspaceState(root)
        return self.workspaces[root]

    # --- documents -------------------------------------------------------------------------------

    def document(self, uri: str) -> Any:
        """The open document (pygls' TextDocument) for a URI in any spelling the client may use
        (percent-encoded or not, `file:` with or without a host): URIs are compared in one
        canonical form, here; None if the document is not open."""
        wanted = canonical_uri(uri)
        for document in self.ls.workspace.text_documents.values():  # keyed by pygls' own spelling
            if document.uri == uri or canonical_uri(document.uri) == wanted:
                return document
        return None

    def snapshot(self, uri: str) -> Snapshot:
        """The document as the user sees it (the buffer, else the disk), with the client's own URI
        for an open one; the text as it is, line endings included."""
        document = self.document(uri)
        if document is not None:
            return Snapshot(document.uri, document.version, document.source)
        path = path_of(uri)
        return Snapshot(uri, None, read(path, raw=True) if path else None)

    def text_of(self, path: Path) -> str | None:
        """A file's text as the user sees it (the open buffer, else the disk), with `\n` line
        endings, as ledex's repairs read files."""
        text = self.snapshot(uri_of(path)).text
        return normalise(text) if text is not None else None

    def version_of(self, uri: str) -> int | None:
        document = self.document(uri)
        return document.version if document is not None else None

    # --- repairs ---------------------------------------------------------------------------------

    def repair_for(self, test_uri: str, node_id: str) -> RepairRecord | None:
        return self.repairs.get((test_uri, node_id))

    def forget_repairs(self, keep: Callable[[RepairRecord], bool]) -> None:
        for key, record in list(self.repairs.items()):
            if not keep(record):
                del self.repairs[key]

    def is_fresh(self, record: RepairRecord) -> bool:
        """Do the files the repair started from still read the same, in the editor and on disk?"""
        for relpath, original in record.task.sources.items():
            path = record.task.project / relpath
            if self.text_of(path) != original or read(path) != original:
                return False
        return True


def describe_error(error: BaseException) -> str:
    if isinstance(error, LedexError):
        return str(error)
    return f"{type(error).__name__}: {error}"
