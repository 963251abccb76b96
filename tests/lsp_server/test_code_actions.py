"""Explain and fix: the quick-fix on a failing test's diagnostic, resolved lazily or run as a
command, with progress; only verified fixes are offered, never a stale one."""

from __future__ import annotations

import asyncio
import sys

from lsprotocol import types

from benchmarks.cases.check_cases import reference_fix_code
from ledex.sandbox.pytest_runner import run_pytest
from tests.lsp_server.conftest import CASES, capabilities
from tests.support.openai_loopback import Failure

NODE = "tests/test_marks.py::test_average_nothing_handed_in"
TEST_FILE = "tests/test_marks.py"
SOURCE_FILE = "gradebook/marks.py"
EXPLANATION = "It checks the raw marks instead of the handed-in ones, so it divides by zero."


async def _failing(editor):
    editor.open(TEST_FILE)
    return await editor.wait_for_diagnostics(TEST_FILE, bool)


async def test_resolve_returns_the_verified_edit_and_applying_it_makes_the_tests_pass(
    start, model, tmp_path
):
    model.answer(EXPLANATION, reference_fix_code(CASES["gradebook_empty_guard"]))
    editor = await start()
    diagnostics = await _failing(editor)
    (action,) = await editor.quick_fixes(TEST_FILE, diagnostics)
    assert action.kind == types.CodeActionKind.QuickFix and "Explain and fix" in action.title
    assert action.edit is None and action.command is None and action.data["nodeId"] == NODE
    assert action.diagnostics[0].code == NODE

    resolved = await editor.client.code_action_resolve_async(action)
    (change,) = resolved.edit.document_changes
    assert (
        change.text_document.uri == editor.uri(SOURCE_FILE) and change.text_document.version is None
    )
    # the smallest edit: the lines that change
    assert [e.new_text for e in change.edits] == [
        "    if not handed_in:\n",
    ]
    # progress: begin, a report per round and candidate, end
    (reports,) = [
        r
        for r in editor.client.progress_reports.values()
        if r and r[0].title == "ledex: explain and fix"
    ]
    assert isinstance(reports[0], types.WorkDoneProgressBegin) and reports[0].cancellable
    assert any(
        isinstance(r, types.WorkDoneProgressReport)
        and "candidate 1/1: 4/4 tests pass" in (r.message or "")
        for r in reports
    )
    assert isinstance(reports[-1], types.WorkDoneProgressEnd)

    # hover: the failure, the explanation, the diff, verified
    hover = await editor.hover(TEST_FILE, diagnostics[0].range.start.line)
    assert "ZeroDivisionError: division by zero" in hover and EXPLANATION in hover
    assert "verified" in hover and "not verified" not in hover
    assert "```diff\n" in hover and "+    if not handed_in:" in hover
    site_hover = await editor.hover(SOURCE_FILE, 6)  # inside course_average
    assert EXPLANATION in site_hover

    # asked again, the verified fix is the quick-fix itself, titled with the explanation
    (again,) = await editor.quick_fixes(TEST_FILE, diagnostics)
    assert again.title.startswith("ledex: It checks the raw marks") and again.is_preferred

    assert editor.apply(resolved.edit) == [SOURCE_FILE]
    assert run_pytest(editor.root, python=sys.executable).passes()
    await editor.wait_for_diagnostics(TEST_FILE, lambda found: not found)


async def test_a_client_without_resolve_gets_a_command_that_ends_in_apply_edit(
    start, model, tmp_path
):
    model.answer(EXPLANATION, reference_fix_code(CASES["gradebook_empty_guard"]))
    editor = await start(caps=capabilities("emacs"))  # eglot: no resolveSupport
    diagnostics = await _failing(editor)
    (action,) = await editor.quick_fixes(TEST_FILE, diagnostics)
    assert action.data is None and action.edit is None
    assert action.command.command == "ledex.explainAndFix"
    assert list(action.command.arguments) == [
        {"uri": editor.uri(TEST_FILE), "version": 1, "nodeId": NODE}
    ]

    result = await editor.execute(action.command.command, *action.command.arguments)
    assert result["applied"] and result["verified"]
    (sent,) = editor.applied
    assert sent.label.startswith("ledex: It checks the raw marks")
    assert editor.apply(sent.edit) == [SOURCE_FILE]
    assert run_pytest(editor.root, python=sys.executable).passes()


async def test_an_unverified_reply_is_no_quick_fix_unless_show_unverified(start, model):
    wrong = "def course_average(marks):\n    return 0\n"
    model.answer("Return zero.", wrong)
    editor = await start(caps=capabilities("emacs"))
    diagnostics = await _failing(editor)
    (action,) = await editor.quick_fixes(TEST_FILE, diagnostics)
    result = await editor.execute(action.command.command, *action.command.arguments)
    assert not result["applied"] and not result["verified"] and editor.applied == []
    assert any("no verified fix" in m for m in editor.shown())
    (again,) = await editor.quick_fixes(TEST_FILE, diagnostics)
    assert "not verified" in again.title and "UNVERIFIED" not in again.title
    hover = await editor.hover(TEST_FILE, diagnostics[0].range.start.line)
    assert "not verified" in hover and "Return zero." in hover

    # the setting, changed while the server runs, takes effect at once
    editor.client.set_configuration(True, section="ledex.showUnverified")
    editor.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings=None)
    )
    actions = await editor.poll(
        lambda: editor.quick_fixes(TEST_FILE, diagnostics),
        lambda found: any("UNVERIFIED" in a.title for a in found),
    )
    (unverified,) = [a for a in actions if "UNVERIFIED" in a.title]
    assert unverified.command.arguments[0]["unverified"] is True
    result = await editor.execute(unverified.command.command, *unverified.command.arguments)
    assert result["applied"] and not result["verified"]
    (sent,) = editor.applied
    assert "UNVERIFIED" in sent.label


async def test_a_document_edited_during_the_repair_gets_no_stale_edit(start, model, tmp_path):
    model.answer(EXPLANATION, reference_fix_code(CASES["gradebook_empty_guard"]))
    model.server.fail(Failure.slow(2.0))
    editor = await start(caps=capabilities("emacs"))
    diagnostics = await _failing(editor)
    editor.open(SOURCE_FILE)
    (action,) = await editor.quick_fixes(TEST_FILE, diagnostics)
    running = asyncio.ensure_future(
        editor.execute(action.command.command, *action.command.arguments)
    )
    await editor.wait_for(lambda: model.server.chat_requests, what="the model request")
    source = (editor.root / SOURCE_FILE).read_text()
    editor.change(
        SOURCE_FILE, source.replace("PASS_MARK = 50", "PASS_MARK = 55")
    )  # typed, not saved
    result = await running
    assert not result["applied"] and "changed while the fix was computed" in result["message"]
    assert editor.applied == []
    assert any(
        "changed while the fix was computed" in m for m in editor.shown(types.MessageType.Warning)
    )


async def test_a_document_saved_during_the_repair_gets_a_recomputed_edit(start, model, tmp_path):
    model.answer(EXPLANATION, reference_fix_code(CASES["gradebook_empty_guard"]))
    model.server.fail(Failure.slow(2.0))
    editor = await start(caps=capabilities("emacs"))
    diagnostics = await _failing(editor)
    editor.open(SOURCE_FILE)
    (action,) = await editor.quick_fixes(TEST_FILE, diagnostics)
    running = asyncio.ensure_future(
        editor.execute(action.command.command, *action.command.arguments)
    )
    await editor.wait_for(lambda: model.server.chat_requests, what="the model request")
    source = (editor.root / SOURCE_FILE).read_text()
    editor.save(SOURCE_FILE, source.replace("PASS_MARK = 50", "PASS_MARK = 50  # edited"))
    result = await running
    assert result["applied"] and result["verified"]
    assert (
        len(model.server.chat_requests) == 1
    )  # recomputed by re-verifying the fix, not by asking again
    (sent,) = editor.applied
    (change,) = sent.edit.document_changes
    assert change.text_document.version == editor.versions[editor.uri(SOURCE_FILE)]
    editor.apply(sent.edit)
    fixed = (editor.root / SOURCE_FILE).read_text()
    assert "PASS_MARK = 50  # edited" in fixed and "if not handed_in:" in fixed
    assert run_pytest(editor.root, python=sys.executable).passes()


async def test_fix_all_of_a_file_honours_context_only(start, model, tmp_path):
    case = CASES["binary_search_bounds"]
    model.answer("The upper bound skips the last element.", reference_fix_code(case))
    editor = await start(case.name)
    test_file = case.failing[0].split("::")[0]
    editor.open(test_file)
    diagnostics = await editor.wait_for_diagnostics(test_file, lambda found: len(found) == 2)
    quick = await editor.code_actions(test_file, diagnostics, only=["quickfix"])
    assert {a.kind for a in quick} == {types.CodeActionKind.QuickFix} and len(quick) == 2
    (fix_all,) = await editor.code_actions(test_file, diagnostics, only=["source.fixAll"])
    assert fix_all.kind == "source.fixAll.ledex" and set(fix_all.data["nodeIds"]) == set(
        case.failing
    )
    assert await editor.code_actions(test_file, diagnostics, only=["refactor"]) == []

    resolved = await editor.client.code_action_resolve_async(fix_all)
    assert len(model.server.chat_requests) == 1  # the second test is fixed by the first fix
    editor.apply(resolved.edit)
    assert run_pytest(editor.root, python=sys.executable).passes()
