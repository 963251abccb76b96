"""Settings from `initializationOptions`, `workspace/configuration` (section `ledex`) and
`workspace/didChangeConfiguration`; a change applies at once, without a restart."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from lsp_server import diagnostics, status
from lsp_server.client_features import ClientFeatures
from lsp_server.settings import SECTION, Settings, from_client

if TYPE_CHECKING:
    from lsp_server.server import LedexLanguageServer


def initialize(ls: LedexLanguageServer, params: types.InitializeParams) -> None:
    ls.session.features = ClientFeatures.of(params.capabilities, _position_encoding(ls))
    ls.session.initialization_options = params.initialization_options
    settings, problems = from_client(params.initialization_options)
    ls.session.settings = settings
    _report(ls, problems)


def _position_encoding(ls: LedexLanguageServer) -> str | None:
    """The encoding pygls negotiated (pygls 2.1 sets up the workspace before this handler runs)."""
    try:
        encoding = ls.workspace.position_encoding
    except RuntimeError:  # no workspace yet
        return None
    return str(encoding) if encoding else None


async def initialized(ls: LedexLanguageServer, params: types.InitializedParams) -> None:
    encoding = _position_encoding(ls)
    if encoding and encoding != ls.session.features.position_encoding:
        ls.session.features = replace(ls.session.features, position_encoding=encoding)
    await refresh(ls)


async def did_change_configuration(
    ls: LedexLanguageServer, params: types.DidChangeConfigurationParams
) -> None:
    pushed = params.settings.get(SECTION) if isinstance(params.settings, dict) else None
    await refresh(ls, pushed)


async def refresh(ls: LedexLanguageServer, pushed: Any = None) -> None:
    """Settings = defaults < initializationOptions < what the client pushed < what it answers to
    `workspace/configuration`; then act on what changed."""
    sources = [ls.session.initialization_options, pushed]
    pulled = await _pull(ls)
    if pulled is not None:
        sources.append(pulled)
    settings, problems = from_client(*sources)
    _report(ls, problems)
    apply(ls, settings)


async def _pull(ls: LedexLanguageServer) -> Any:
    if not ls.session.features.configuration:
        return None
    try:
        (value,) = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
        )
    except Exception as error:  # noqa: BLE001 - a client that answers badly keeps the old settings
        status.warning(ls, f"could not read the `{SECTION}` settings: {error}", show=False)
        return None
    return value


def apply(ls: LedexLanguageServer, settings: Settings) -> None:
    session = ls.session
    old, session.settings = session.settings, settings
    if settings == old:
        return
    status.log(ls, f"settings: {settings}")
    if (settings.model, settings.model_timeout) != (old.model, old.model_timeout):
        session.models.close()  # the next repair loads the new model
    if settings.differs_for_tests(old):
        for state in session.workspaces.values():
            if state.run is not None or state.pending is not None:
                diagnostics.schedule(ls, state)


def _report(ls: LedexLanguageServer, problems: list[str]) -> None:
    for problem in problems:
        status.warning(ls, problem)
