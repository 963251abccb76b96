"""Telling the user what is going on: `window/showMessage` for what needs their attention (a model
that cannot be reached, tests that cannot run, the sandbox fallback), `window/logMessage` for the
rest. Call on the event loop thread."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from lsp_server.server import LedexLanguageServer

_said: set[tuple[int, str]] = set()


def _send(ls: LedexLanguageServer, kind: types.MessageType, message: str, show: bool) -> None:
    text = message if message.startswith("ledex") else f"ledex: {message}"
    ls.window_log_message(types.LogMessageParams(type=kind, message=text))
    if show:
        ls.window_show_message(types.ShowMessageParams(type=kind, message=text))


def info(ls: LedexLanguageServer, message: str, *, show: bool = False) -> None:
    _send(ls, types.MessageType.Info, message, show)


def log(ls: LedexLanguageServer, message: str) -> None:
    _send(ls, types.MessageType.Log, message, False)


def warning(ls: LedexLanguageServer, message: str, *, show: bool = True) -> None:
    _send(ls, types.MessageType.Warning, message, show)


def error(ls: LedexLanguageServer, message: str) -> None:
    _send(ls, types.MessageType.Error, message, True)


def once(ls: LedexLanguageServer, kind: types.MessageType, message: str) -> None:
    """Show a message the first time only (per server)."""
    key = (id(ls), message)
    if key not in _said:
        _said.add(key)
        _send(ls, kind, message, True)
