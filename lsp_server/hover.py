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
    return (
        types.MarkupKind.Markdown
        if ls.session.features.markdown_hover
        else types.MarkupKind.PlainText
    )


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
    key = (failure.test_uri, failure.node_id)
    doing = ls.session.in_progress.get(key)
    draft = ls.session.drafts.get(key)
    record = ls.session.repair_for(*key)
    if doing:
        lines += ["", f"_{doing}_"]
        if draft:  # shown at once; the code is still being tested
            lines += [
                "",
                "**Explanation** (NOT YET VERIFIED: its fix is being tested)",
                "",
                draft.strip(),
            ]
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
    fixing = record.fixing
    if result.verified or fixing.partial is not None:
        passing = len(record.task.previously_passing)
        others = len(fixing.fixed) - 1
        head = (
            f"**Explanation** (verified: `{fixing.test}` passes with this fix"
            + (f", with {others} other failing test(s) of the same code" if others > 0 else "")
            + (f", and the {passing} test(s) that passed before still pass" if passing else "")
            + f"; {tried})"
        )
        if fixing.partial is not None:
            best = fixing.partial
            head += ("\n\n**Partial fix**: nothing fixed them all; still failing: "
                     + ", ".join(f"`{node}`" for node in fixing.still_failing))  # fmt: skip
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
