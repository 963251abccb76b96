"""Edits never lose the user's work: a path that needs percent-encoding (a space, a non-ASCII
letter), spelled either way by the client, gets a versioned edit of the open buffer; a CRLF file
open in the editor gets its fix, in CRLF."""

from __future__ import annotations

import sys
from urllib.parse import unquote

import pytest

from benchmarks.cases.check_cases import reference_fix_code
from ledex import dialogue
from ledex.sandbox.pytest_runner import run_pytest
from tests.ledex.test_fix import ALL, GRADE, GRADE_TESTS, ONLY_A, make_project
from tests.lsp_server.conftest import CASES, capabilities, stored

TEST_FILE = "tests/test_marks.py"
SOURCE_FILE = "gradebook/marks.py"
EXPLANATION = "It checks the raw marks instead of the handed-in ones, so it divides by zero."


@pytest.mark.parametrize("spelling", ["encoded", "plain"])
async def test_a_path_with_a_space_and_an_accent_gets_a_versioned_edit_of_the_open_buffer(
    start, model, spelling
):
    model.answer(EXPLANATION, reference_fix_code(CASES["gradebook_empty_guard"]))
    editor = await start(caps=capabilities("emacs"), folder="my project é")
    assert "%20" in editor.uri(SOURCE_FILE) and "%C3%A9" in editor.uri(SOURCE_FILE)
    # the client opens the source file under its own spelling of the URI, then edits and saves it
    source_uri = (
        editor.uri(SOURCE_FILE) if spelling == "encoded" else unquote(editor.uri(SOURCE_FILE))
    )
    editor.open(SOURCE_FILE, uri=source_uri)
    editor.open(TEST_FILE)
    await editor.wait_for_diagnostics(TEST_FILE, bool)
    editor.save(SOURCE_FILE, stored(editor.root / SOURCE_FILE) + "\n# edited\n")  # buffer version 2
    diagnostics = await editor.wait_for_diagnostics(TEST_FILE, bool)
    (action,) = await editor.quick_fixes(TEST_FILE, diagnostics)
    result = await editor.execute(action.command.command, *action.command.arguments)
    assert result["applied"] and result["verified"], result
    (sent,) = editor.applied
    (change,) = sent.edit.document_changes
    assert change.text_document.uri == source_uri  # the open document, as the client knows it
    assert change.text_document.version == editor.versions[source_uri] is not None
    editor.apply(sent.edit)
    fixed = stored(editor.root / SOURCE_FILE)
    assert "if not handed_in:" in fixed and fixed.endswith("# edited\n")
    assert run_pytest(editor.root, python=sys.executable).passes()


async def test_a_crlf_file_open_in_the_editor_gets_its_fix_in_crlf(start, model):
    model.answer(EXPLANATION, reference_fix_code(CASES["gradebook_empty_guard"]))
    editor = await start()
    path = editor.root / SOURCE_FILE
    path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    editor.open(SOURCE_FILE)
    editor.open(TEST_FILE)
    diagnostics = await editor.wait_for_diagnostics(TEST_FILE, bool)
    (action,) = await editor.quick_fixes(TEST_FILE, diagnostics)
    resolved = await editor.client.code_action_resolve_async(action)
    assert resolved.edit is not None, editor.shown()
    (change,) = resolved.edit.document_changes
    assert change.text_document.version == editor.versions[editor.uri(SOURCE_FILE)]
    # asked again, the quick-fix is the verified fix (the repair of a CRLF file was always "stale")
    (again,) = await editor.quick_fixes(TEST_FILE, diagnostics)
    assert "(verified fix for" in again.title
    editor.apply(resolved.edit)
    fixed = path.read_bytes()
    assert b"if not handed_in:\r\n" in fixed and b"\n" not in fixed.replace(b"\r\n", b"")
    assert run_pytest(editor.root, python=sys.executable).passes()


async def test_a_fix_for_one_case_of_a_parametrized_test_fixes_every_case(start, model, tmp_path):
    """The issue's report: Explain and fix on one of three failing cases applied a fix that left
    the third failing. The model's first candidate fixes that case only; the second fixes all."""
    model.answer(EXPLANATION, reference_fix_code(CASES["gradebook_empty_guard"]))
    editor = await start(caps=capabilities("emacs"), settings={"candidates": 2})
    make_project(editor.root, {"marks/grade.py": GRADE, "tests/test_grade.py": GRADE_TESTS})
    replies = [("Only A was off.", ONLY_A), ("Every bound excludes its own mark.", ALL)]
    model.server.reply = lambda messages, params: dialogue.format_reply(
        *replies[min(params.get("index", 0), 1)]
    )
    editor.open("tests/test_grade.py")
    diagnostics = await editor.wait_for_diagnostics(
        "tests/test_grade.py", lambda found: len(found) == 3
    )
    first = next(d for d in diagnostics if d.code.endswith("[90-A]"))
    (action,) = await editor.quick_fixes("tests/test_grade.py", [first])
    result = await editor.execute(action.command.command, *action.command.arguments)
    assert result["applied"] and result["verified"], result
    (sent,) = editor.applied
    assert sent.label == "ledex: Every bound excludes its own mark."  # not "Only A was off."
    assert not result["partial"]
    editor.apply(sent.edit)
    assert (editor.root / "marks/grade.py").read_text() == ALL
    await editor.wait_for_diagnostics("tests/test_grade.py", lambda found: not found)
