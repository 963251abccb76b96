"""Code actions: "Explain and fix" (quickfix) on ledex's diagnostics, and `source.fixAll.ledex` for
all failing tests of a file.

Where the client resolves code actions' `edit` lazily (`codeAction.resolveSupport`), an action
carries `data` and `codeAction/resolve` runs the repair and returns the edit; elsewhere it carries
the command `ledex.explainAndFix {uri, version, nodeId}`, which repairs and then sends the edit
with `workspace/applyEdit`. A repair already verified for the current file texts is offered as the
quick-fix itself, titled with its one-line explanation; an unverified attempt only with the
setting `showUnverified`, and labelled as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lsprotocol import types

from lsp_server import explain_and_fix
from lsp_server.diagnostics import SOURCE
from lsp_server.fix_request import COMMAND, FixRequest, one_line
from lsp_server.session import Failure, WorkspaceState

if TYPE_CHECKING:
    from lsp_server.server import LedexLanguageServer

FIX_ALL = f"{types.CodeActionKind.SourceFixAll.value}.ledex"
KINDS = [types.CodeActionKind.QuickFix, FIX_ALL]


def _wanted(kind: str, only: Sequence[str] | None) -> bool:
    """`context.only` filters by kind prefix: `source` admits `source.fixAll.ledex`."""
    return not only or any(kind == o or kind.startswith(f"{o}.") for o in only)


async def code_action(
    ls: LedexLanguageServer, params: types.CodeActionParams
) -> list[types.CodeAction] | None:
    uri = params.text_document.uri
    state = ls.session.workspace_for(uri)
    if state is None or state.run is None:
        return None
    only = params.context.only
    version = ls.session.version_of(uri)
    actions: list[types.CodeAction] = []
    if _wanted(types.CodeActionKind.QuickFix, only):
        seen: set[str] = set()
        for diagnostic in params.context.diagnostics:
            node_id = diagnostic.code
            if diagnostic.source != SOURCE or not isinstance(node_id, str) or node_id in seen:
                continue
            failure = state.failures.get(node_id)
            if failure is None:  # a collection error, or a diagnostic from an older run
                continue
            seen.add(node_id)
            actions += _quick_fixes(ls, failure, diagnostic, uri, version)
    if _wanted(FIX_ALL, only):
        nodes = [node for node, f in state.failures.items() if uri in (f.test_uri, f.site_uri)]
        if nodes:
            request = FixRequest(uri, version, tuple(nodes))
            title = f"ledex: explain and fix the {len(nodes)} failing test(s) of this file"
            actions.append(
                _action(ls, title, FIX_ALL, request, diagnostics=_diagnostics_of(state, uri, nodes))
            )
    return actions


def _quick_fixes(
    ls: LedexLanguageServer,
    failure: Failure,
    diagnostic: types.Diagnostic,
    uri: str,
    version: int | None,
) -> list[types.CodeAction]:
    session = ls.session
    request = FixRequest(uri, version, (failure.node_id,))
    found = session.repair_for(failure.test_uri, failure.node_id)
    record = found if found is not None and session.is_fresh(found) else None  # for these texts
    fresh = record is not None
    short = failure.node_id.rsplit("::", 1)[-1]
    offered = record.fixing.fix if record is not None else None
    if record is not None and offered is not None:
        explanation = one_line(offered.explanation or "") or "apply the verified fix"
        if record.result.verified:
            title = f"ledex: {explanation} (verified fix for {short})"
        else:
            still = len(record.fixing.still_failing)
            title = (f"ledex: {explanation} (partial fix for {short}: {still} failing test(s) of the same "
                     "code still fail)")  # fmt: skip
        actions = [
            _action(
                ls,
                title,
                types.CodeActionKind.QuickFix,
                request,
                [diagnostic],
                preferred=record.result.verified,
            )  # fmt: skip
        ]
    else:
        again = " again (the last attempt was not verified)" if fresh else ""
        actions = [
            _action(
                ls,
                f"ledex: Explain and fix {short}{again}",
                types.CodeActionKind.QuickFix,
                request,
                [diagnostic],
            )
        ]
    best = record.result.best if record is not None else None
    if (
        record is not None
        and not record.result.verified
        and best is not None
        and best.code
        and session.settings.show_unverified
    ):
        explanation = one_line(best.explanation or "") or "apply the best attempt"
        title = f"ledex (UNVERIFIED, tests still fail): {explanation}"
        unverified = FixRequest(uri, version, (failure.node_id,), unverified=True)
        actions.append(_action(ls, title, types.CodeActionKind.QuickFix, unverified, [diagnostic]))
    return actions


def _diagnostics_of(state: WorkspaceState, uri: str, nodes: list[str]) -> list[types.Diagnostic]:
    return [d for d in state.diagnostics.get(uri, []) if d.code in nodes]


def _action(
    ls: LedexLanguageServer,
    title: str,
    kind: str,
    request: FixRequest,
    diagnostics: list[types.Diagnostic],
    preferred: bool = False,
) -> types.CodeAction:
    action = types.CodeAction(
        title=title, kind=kind, diagnostics=diagnostics or None, is_preferred=preferred or None
    )
    if ls.session.features.resolve_edit:
        action.data = request.to_json()
    else:
        action.command = types.Command(title=title, command=COMMAND, arguments=[request.to_json()])
    return action


async def resolve(ls: LedexLanguageServer, action: types.CodeAction) -> types.CodeAction:
    """Run the repair (or reuse a fresh one) and fill in the action's edit; without a fix to offer
    the action comes back without an edit and the user gets a message saying why."""
    request = FixRequest.from_json(action.data)
    outcome = await explain_and_fix.run_cancellable(ls, request)
    action.edit = outcome.edit
    return action
