"""Hover on a failing test's line or on the function under repair: the failure, and once a repair
has run, the model's explanation with the proposed diff and whether it was verified."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from lsp_server.diagnostics import summary
from lsp_server.session import Failure, RepairRecord
from lsp_server.text import contains

if TYPE_CHECKING:
    from lsp_server.server import LedexLanguageServer


async def hover(ls: LedexLanguageServer, params: types.HoverParams) -> types.Hover | None:
    uri, position = params.text_document.uri, params.position
    state = ls.session.workspace_for(uri)
    if state is None:
        return None
    spans = [span for span in state.spans.get(uri, []) if contains(span.range, position)]
    if not spans:
        return None
    # the narrowest first: a failing line inside a function under repair wins
    spans.sort(key=lambda s: (s.range.end.line - s.range.start.line, s.kind != "failure"))
    parts: list[str] = []
    shown: set[str] = set()
    for span in spans:
        if span.node_id in shown:
            continue
        shown.add(span.node_id)
        if span.kind == "collection":
            parts.append(
                f"**ledex**: pytest could not collect `{span.node_id}`\n\n"
                f"```text\n{state.collection_errors.get(span.node_id, '')}\n```"
            )
            continue
        failure = state.failures.get(span.node_id)
        if failure is not None:
            parts.append(_describe(ls, failure))
    if not parts:
        return None
    return types.Hover(
        contents=types.MarkupContent(kind=_markup(ls), value="\n\n---\n\n".join(parts)),
        range=spans[0].range,
    )


def _markup(ls: LedexLanguageServer) -> types.MarkupKind:
    caps = ls.client_capabilities.text_document
    formats = caps.hover.content_format if caps and caps.hover else None
    if formats and types.MarkupKind.Markdown not in formats:
        return types.MarkupKind.PlainText
    return types.MarkupKind.Markdown


def _describe(ls: LedexLanguageServer, failure: Failure) -> str:
    lines = [
        f"**ledex**: `{failure.node_id}` fails",
        "",
        "```text",
        summary(failure.outcome),
        "```",
    ]
    if failure.site is not None:
        lines += [
            "",
            f"Function under repair: `{failure.site.symbol.qualname}` in `{failure.site.relpath}` "
            f"({failure.site.reason})",
        ]
    doing = ls.session.in_progress.get((failure.test_uri, failure.node_id))
    record = ls.session.repair_for(failure.test_uri, failure.node_id)
    if doing:
        lines += ["", f"_Explain and fix is running: {doing}_"]
    elif record is not None:
        lines += ["", *_repair(record, fresh=ls.session.is_fresh(record))]
    else:
        lines += [
            "",
            "_Use the quick-fix **Explain and fix** to ask the model why, and for a verified fix._",
        ]
    return "\n".join(lines)


def _repair(record: RepairRecord, *, fresh: bool) -> list[str]:
    result = record.result
    best = result.best
    tried = f"{len(result.rounds)} round(s), {len(result.candidates)} candidate(s)"
    tried += f", {result.seconds:.1f}s"
    if best is None:
        return [f"**No fix found** ({tried}): no reply of the model could be used."]
    if result.verified:
        passing = len(record.task.previously_passing)
        head = (
            f"**Explanation** (verified: `{record.node_id}` passes with this fix"
            + (f", and the {passing} test(s) that passed before still pass" if passing else "")
            + f"; {tried})"
        )
    else:
        verdict = best.verdict
        why = (
            f"{verdict.passed}/{verdict.total} tests pass with it" if verdict else "it was not run"
        )
        head = f"**Explanation** (not verified: {why}; {tried})"
    lines = [head, "", (best.explanation or "_The model gave no explanation._").strip()]
    if best.diff:
        lines += ["", "```diff", best.diff.rstrip("\n"), "```"]
    if not fresh:
        lines += ["", "_The files changed since; the fix is recomputed when applied._"]
    return lines
