"""An editor for the language server's tests: `ledex serve` as a real subprocess driven over stdio
by pytest-lsp's client, a copy of a buggy project as the workspace, and a scripted model (the
loopback OpenAI-compatible server in this process) so every repair's outcome is known."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities, make_test_lsp_client

from benchmarks.cases.check_cases import copy_case, load_cases
from ledex import dialogue
from lsp_server.text import apply_text_edits, path_of, uri_of
from tests.support.openai_loopback import LoopbackServer

ROOT = Path(__file__).resolve().parents[2]
SERVER = [sys.executable, "-m", "ledex", "serve"]
CASES = {case.name: case for case in load_cases(ROOT / "benchmarks" / "cases")}
(EXAMPLE,) = load_cases(ROOT / "examples")
CASES[EXAMPLE.name] = EXAMPLE


class Model:
    """The scripted model: replies with `reply` (explanation, code); `delay` seconds per request."""

    def __init__(self) -> None:
        self.explanation = "It divides before checking that anything was handed in."
        self.code = "def nothing():\n    pass\n"
        self.server = LoopbackServer(
            reply=lambda messages, params: dialogue.format_reply(self.explanation, self.code)
        )

    def answer(self, explanation: str, code: str) -> None:
        self.explanation, self.code = explanation, code

    @property
    def spec(self) -> str:
        return f"openai:{self.server.url}#loopback-model"


@pytest.fixture
def model():
    scripted = Model()
    with scripted.server:
        yield scripted


@dataclass
class Editor:
    """What an editor does, through a pytest-lsp client: open, change, save documents, apply the
    edits the server sends (and save them), wait for diagnostics."""

    client: LanguageClient
    root: Path
    applied: list[types.ApplyWorkspaceEditParams] = field(default_factory=list)
    accept_edits: bool = True
    versions: dict[str, int] = field(default_factory=dict)
    opened: dict[str, str] = field(default_factory=dict)  # relpath -> the URI it was opened with

    def uri(self, relpath: str) -> str:
        return uri_of(self.root / relpath)

    def open(self, relpath: str, uri: str | None = None) -> str:
        """Open a document (its text as stored, line endings included), under `uri` if the
        client spells it differently from ledex."""
        uri = uri or self.uri(relpath)
        self.opened[relpath] = uri
        self.versions[uri] = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=stored(self.root / relpath)
                )
            )
        )
        return uri

    def change(self, relpath: str, text: str) -> int:
        """Edit the buffer (not saved)."""
        uri = self.opened.get(relpath, self.uri(relpath))
        self.versions[uri] = self.versions.get(uri, 0) + 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[uri]
                ),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        return self.versions[uri]

    def save(self, relpath: str, text: str | None = None) -> None:
        if text is not None:
            if relpath in self.opened:
                self.change(relpath, text)
            (self.root / relpath).write_text(text, newline="")
        uri = self.opened.get(relpath, self.uri(relpath))
        self.client.text_document_did_save(
            types.DidSaveTextDocumentParams(types.TextDocumentIdentifier(uri))
        )

    def apply(self, edit: types.WorkspaceEdit) -> list[str]:
        """Apply a WorkspaceEdit to the files and save them, as an editor would; the paths."""
        changed = []
        pairs: list[tuple[str, list]] = []
        if edit.document_changes:
            for change in edit.document_changes:
                assert isinstance(change, types.TextDocumentEdit), change
                version = change.text_document.version
                assert version is None or version == self.versions.get(change.text_document.uri), (
                    "stale edit"
                )
                pairs.append((change.text_document.uri, list(change.edits)))
        for uri, edits in (edit.changes or {}).items():
            pairs.append((uri, list(edits)))
        for uri, edits in pairs:
            path = path_of(uri)
            assert path is not None and path.is_relative_to(self.root)
            relpath = str(path.relative_to(self.root))
            self.save(relpath, apply_text_edits(stored(path), edits))
            changed.append(relpath)
        return changed

    def diagnostics(self, relpath: str) -> list[types.Diagnostic]:
        return list(self.client.diagnostics.get(self.uri(relpath), []))

    async def wait_for(
        self, condition: Callable[[], Any], timeout: float = 30.0, what: str = ""
    ) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            await asyncio.sleep(0.05)
        shown = [m.message for m in self.client.messages]
        raise AssertionError(f"timed out waiting for {what or condition}; shown: {shown}")

    async def poll(
        self, ask: Callable[[], Any], predicate: Callable[[Any], bool], timeout: float = 30.0
    ) -> Any:
        """Ask the server (a coroutine) until the answer satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        while True:
            answer = await ask()
            if predicate(answer):
                return answer
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; the last answer: {answer!r}")
            await asyncio.sleep(0.1)

    async def wait_for_diagnostics(
        self,
        relpath: str,
        predicate: Callable[[list[types.Diagnostic]], bool],
        timeout: float = 30.0,
    ) -> list[types.Diagnostic]:
        uri = self.uri(relpath)
        await self.wait_for(
            lambda: uri in self.client.diagnostics and predicate(self.diagnostics(relpath)),
            timeout,
            f"diagnostics of {relpath}",
        )
        return self.diagnostics(relpath)

    async def execute(self, command: str, *arguments: Any) -> Any:
        return await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=command, arguments=list(arguments))
        )

    async def code_actions(
        self, relpath: str, diagnostics: list[types.Diagnostic], only: list[str] | None = None
    ) -> list[types.CodeAction]:
        line = (
            diagnostics[0].range
            if diagnostics
            else types.Range(types.Position(0, 0), types.Position(0, 0))
        )
        params = types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(self.uri(relpath)),
            range=line,
            context=types.CodeActionContext(diagnostics=diagnostics, only=only),
        )
        converter = self.client.protocol._converter
        # lsprotocol's client-side converter reads a CodeAction holding a command as a Command (with
        # the command object as its name): read the raw reply the way editors do instead.
        result = await raw_request(
            self.client, types.TEXT_DOCUMENT_CODE_ACTION, converter.unstructure(params)
        )
        assert all(isinstance(item.get("command"), (dict, type(None))) for item in result or [])
        return [converter.structure(item, types.CodeAction) for item in result or []]

    async def quick_fixes(
        self, relpath: str, diagnostics: list[types.Diagnostic]
    ) -> list[types.CodeAction]:
        """What the light bulb shows (no `only`), less the source actions."""
        actions = await self.code_actions(relpath, diagnostics)
        return [a for a in actions if a.kind == types.CodeActionKind.QuickFix]

    async def hover(self, relpath: str, line: int, character: int = 8) -> str | None:
        result = await self.client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(self.uri(relpath)),
                position=types.Position(line, character),
            )
        )
        return result.contents.value if result is not None else None

    def progress(self, title: str = "ledex: explain and fix") -> list[list[Any]]:
        """The $/progress reports of each progress bar with this title (test runs have their own)."""
        return [
            reports
            for reports in self.client.progress_reports.values()
            if reports and getattr(reports[0], "title", None) == title
        ]

    def shown(self, kind: types.MessageType | None = None) -> list[str]:
        return [m.message for m in self.client.messages if kind is None or m.type == kind]


def stored(path: Path) -> str:
    """A file's text with its line endings as stored (what an editor's buffer holds)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


async def raw_request(client: LanguageClient, method: str, params: Any) -> Any:
    """Send a request as raw JSON (no typing on either way): for malformed params, and for replies
    the client's converter misreads. Raises JsonRpcException for an error response."""
    msg_id = f"raw-{uuid.uuid4().hex}"
    future: Future = Future()
    client.protocol._request_futures[msg_id] = future
    client.protocol._send_data({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
    return await asyncio.wait_for(asyncio.wrap_future(future), 60)


def capabilities(
    name: str = "visual-studio-code", *, resolve: bool | None = None
) -> types.ClientCapabilities:
    caps = client_capabilities(name)
    if resolve is False and caps.text_document and caps.text_document.code_action:
        caps.text_document.code_action.resolve_support = None
    return caps


@pytest_asyncio.fixture
async def start(tmp_path: Path, model: Model):
    """start(case_name, settings=..., capabilities=...) -> Editor, with the case copied to tmp."""
    editors: list[Editor] = []

    async def _start(
        case: str = "gradebook_empty_guard",
        *,
        settings: dict[str, Any] | None = None,
        caps: types.ClientCapabilities | None = None,
        init: dict[str, Any] | None = None,
        folder: str | None = None,
    ) -> Editor:
        root = copy_case(CASES[case], tmp_path / (folder or case)).resolve()
        client = make_test_lsp_client()
        editor = Editor(client, root)

        @client.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
            editor.applied.append(params)
            return types.ApplyWorkspaceEditResult(applied=editor.accept_edits)

        await client.start_io(*SERVER)
        base = {
            "python": sys.executable,
            "model": model.spec,
            "candidates": 1,
            "rounds": 1,
            "debounce": 0.1,
            "prefetch": False,  # on by default for a model on loopback: tests/lsp_server/test_prefetch.py
        }
        client.set_configuration({**base, **(settings or {})}, section="ledex")
        await client.initialize_session(
            types.InitializeParams(
                capabilities=caps or capabilities(),
                root_uri=uri_of(root),
                workspace_folders=[types.WorkspaceFolder(uri=uri_of(root), name=root.name)],
                initialization_options={"ledex": init or {}},
            )
        )
        editors.append(editor)
        return editor

    yield _start
    for editor in editors:
        with contextlib.suppress(Exception):  # a test may have broken the session on purpose
            await asyncio.wait_for(editor.client.shutdown_session(), 10)
        process = editor.client._server
        if process is not None and process.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.wait(), 5)
        if process is not None and process.returncode is None:  # never hang the suite on a server
            process.kill()
        await editor.client.stop()
