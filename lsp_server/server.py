"""The language server object: a thin pygls `LanguageServer` holding a `Session`; the handlers are
registered in `wiring.py`, one module per feature.

The protocol class adds what pygls 2.1 lacks: a request whose params do not match the LSP types
gets an InvalidParams error response (pygls logs it and never answers, leaving the client
waiting); `$/cancelRequest` also reaches work running on a thread (the repair's cancel event);
and `shutdown` with requests in flight does not fail.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Generator
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, default_converter
from pygls.protocol.language_server import lsp_method

from ledex import __version__
from lsp_server.session import Session

log = logging.getLogger("lsp_server")


class _Malformed:
    """A request that could not be read: answered with an error instead of being handled."""

    def __init__(self, msg_id: Any, method: str, error: JsonRpcException) -> None:
        self.id, self.method, self.error = msg_id, method, error


class LedexProtocol(LanguageServerProtocol):
    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcException as error:
            if isinstance(data, dict) and "id" in data and isinstance(data.get("method"), str):
                cause = error.__cause__
                detail = (
                    f"invalid params for {data['method']}: {_first_line(cause) if cause else error}"
                )
                return _Malformed(data["id"], data["method"], JsonRpcInvalidParams(detail))
            raise

    def handle_message(self, message: Any):
        if isinstance(message, _Malformed):
            log.warning("answering a malformed %s request with an error", message.method)
            self._send_response(message.id, error=message.error.to_response_error())
            return
        return super().handle_message(message)

    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args) -> Generator[Any, Any, None]:
        """pygls' own, over a copy of the in-flight requests: cancelling one runs a callback that
        removes it from the dict (pygls 2.1 raises "dictionary changed size during iteration"
        when `shutdown` arrives while a repair runs)."""
        if (user_handler := self.fm.features.get(types.SHUTDOWN)) is not None:
            yield user_handler, args, None
        current_id = self.msg_id
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current_id and not future.done():
                future.cancel()
        self._shutdown = True
        return None

    def _handle_cancel_notification(self, msg_id: Any):
        event = self._server.session.cancellations.get(msg_id)  # type: ignore[attr-defined]
        if event is not None:
            event.set()
        super()._handle_cancel_notification(msg_id)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    exceptions = getattr(error, "exceptions", None)
    if exceptions:  # cattrs' ClassValidationError: say which fields
        return "; ".join(_first_line(e) for e in exceptions)[:500]
    return (text[0] if text else type(error).__name__)[:500]


class LedexLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            "ledex",
            __version__,
            protocol_cls=LedexProtocol,
            converter_factory=default_converter,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        self.session = Session(self)
        self._reporting = False  # a server error is being reported to the client

    def shutdown(self) -> None:
        self.session.close()
        super().shutdown()

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Errors outside a request (a notification handler, a message that cannot be read) go to
        the log, and to the screen as one line."""
        log.error("server error (%s): %s", getattr(source, "__name__", source), error)
        if getattr(source, "__name__", "") == "FeatureRequestError":
            return  # the request got an error response already
        if self._reporting or self.protocol._shutdown:
            # sending the report failed too (the client is gone): telling it again would loop
            return
        self._reporting = True
        try:
            with contextlib.suppress(Exception):  # reporting must not fail
                self.window_log_message(
                    types.LogMessageParams(type=types.MessageType.Error, message=f"ledex: {error}")
                )
        finally:
            self._reporting = False


def create_server() -> LedexLanguageServer:
    from lsp_server.wiring import register

    server = LedexLanguageServer()
    register(server)
    return server


def start(tcp: str | None = None, *, log_level: int = logging.WARNING) -> None:
    """Serve over stdio, or over TCP on HOST:PORT (for debugging). Logs go to stderr."""
    logging.basicConfig(
        level=log_level,
        stream=sys.stderr,
        format="ledex-server %(levelname)s %(name)s: %(message)s",
    )
    server = create_server()
    if tcp:
        host, _, port = tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        server.start_io()
    # `exit` (or the client gone): leave now. Waiting for the worker threads (a test run, the
    # model generating) would keep an editor's restart waiting for minutes; they hold nothing
    # that needs saving (and under bubblewrap the sandboxed processes die with the server).
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0 if server.protocol._shutdown else 1)
