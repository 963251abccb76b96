"""The one place where handlers are registered: which LSP method or command each feature module
answers."""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled

from lsp_server import code_actions, configuration, diagnostics, explain_and_fix, hover, prefetch
from lsp_server.fix_request import COMMAND

if TYPE_CHECKING:
    from lsp_server.server import LedexLanguageServer

RUN_TESTS = "ledex.runTests"


def register(server: LedexLanguageServer) -> None:
    def on(method: str, handler, options=None) -> None:
        server.feature(method, options)(_bind(server, handler))

    # settings
    on(types.INITIALIZE, configuration.initialize)
    on(types.INITIALIZED, configuration.initialized)
    on(types.WORKSPACE_DID_CHANGE_CONFIGURATION, configuration.did_change_configuration)
    # tests -> diagnostics
    on(types.TEXT_DOCUMENT_DID_OPEN, diagnostics.did_open)
    on(types.TEXT_DOCUMENT_DID_SAVE, diagnostics.did_save)
    on(types.TEXT_DOCUMENT_DID_CHANGE, prefetch.edited)  # an edit stops a background repair
    server.command(RUN_TESTS)(_command(server, diagnostics.run_tests))
    # explain and fix
    on(
        types.TEXT_DOCUMENT_CODE_ACTION,
        code_actions.code_action,
        types.CodeActionOptions(code_action_kinds=code_actions.KINDS, resolve_provider=True),
    )
    on(types.CODE_ACTION_RESOLVE, code_actions.resolve)
    server.command(COMMAND)(_command(server, explain_and_fix.explain_and_fix))
    # hover
    on(types.TEXT_DOCUMENT_HOVER, hover.hover)


def _bind(server: LedexLanguageServer, handler):
    """The handler with the server as its first argument, as a closure without annotations: pygls
    runs coroutine functions on the event loop, and passes a command's arguments to `*args` as
    the client sent them (each command checks its own)."""
    if inspect.iscoroutinefunction(handler):

        async def bound_async(*args):
            return await handler(server, *args)

        bound_async.__name__ = bound_async.__qualname__ = handler.__name__
        return bound_async

    def bound(*args):
        return handler(server, *args)

    bound.__name__ = bound.__qualname__ = handler.__name__
    return bound


def _command(server: LedexLanguageServer, handler):
    """A command handler: pygls runs commands inside a generator that only passes on `Exception`s,
    so a cancelled command must end in an error response rather than a bare CancelledError (which
    would leave the request unanswered)."""

    async def command(*args):
        try:
            return await handler(server, *args)
        except asyncio.CancelledError:
            raise JsonRpcRequestCancelled(f"{handler.__name__} was cancelled") from None

    command.__name__ = command.__qualname__ = handler.__name__
    return command
