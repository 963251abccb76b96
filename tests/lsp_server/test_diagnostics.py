"""Failing tests become diagnostics (and clear when fixed); collection errors too."""

from __future__ import annotations

import asyncio

from lsprotocol import types


async def test_a_failing_test_is_a_diagnostic_at_its_failing_line_and_clears_when_fixed(start):
    editor = await start("gradebook_empty_guard")
    editor.open("tests/test_marks.py")
    (failure,) = await editor.wait_for_diagnostics("tests/test_marks.py", bool)
    node = "tests/test_marks.py::test_average_nothing_handed_in"
    assert failure.code == node and failure.source == "ledex"
    assert failure.severity == types.DiagnosticSeverity.Error
    assert failure.message == "ZeroDivisionError: division by zero"
    assert failure.range.start.line == 13  # `assert course_average([None, None]) is None`, 0-based
    assert failure.range.start.character == 4
    (related,) = failure.related_information
    assert (
        related.location.uri == editor.uri("gradebook/marks.py")
        and related.location.range.start.line == 10
    )
    assert related.message == "in course_average"
    # and the function under repair, at the line that raised
    (site,) = editor.diagnostics("gradebook/marks.py")
    assert site.code == node and site.severity == types.DiagnosticSeverity.Information
    assert site.range.start.line == 10 and "course_average" in site.message

    marks = editor.root / "gradebook/marks.py"
    editor.save(
        "gradebook/marks.py", marks.read_text().replace("if not marks:", "if not handed_in:")
    )
    await editor.wait_for_diagnostics("tests/test_marks.py", lambda found: not found)
    assert editor.diagnostics("gradebook/marks.py") == []


async def test_a_collection_error_is_a_diagnostic(start):
    editor = await start("gradebook_empty_guard")
    broken = "tests/test_broken.py"
    (editor.root / broken).write_text("import gradebook\n\ndef test_x(:\n    pass\n")
    editor.open(broken)
    (error,) = await editor.wait_for_diagnostics(broken, bool)
    assert error.severity == types.DiagnosticSeverity.Error and error.code == broken
    assert error.range.start.line == 2 and "could not collect" in error.message
    hover = await editor.hover(broken, 2, 5)
    assert "could not collect" in hover


async def test_run_tests_command_and_run_on_setting(start):
    editor = await start("gradebook_empty_guard", settings={"runOn": ["command"]})
    editor.open("tests/test_marks.py")
    result = await editor.execute("ledex.runTests")
    assert list(result.values()) == [
        {"status": "ok", "passed": 3, "failed": 1, "collectionErrors": 0}
    ]
    assert [d.code for d in editor.diagnostics("tests/test_marks.py")] == [
        "tests/test_marks.py::test_average_nothing_handed_in"
    ]


async def test_saves_in_quick_succession_run_the_tests_once(start):
    editor = await start("gradebook_empty_guard", settings={"debounce": 0.5})
    editor.open("tests/test_marks.py")
    await editor.wait_for_diagnostics("tests/test_marks.py", bool)
    runs = lambda: [m for m in editor.client.log_messages if " passed, " in m.message]  # noqa: E731
    assert len(runs()) == 1
    for _ in range(4):
        editor.save("gradebook/marks.py")
        await asyncio.sleep(0.05)
    await editor.wait_for(lambda: len(runs()) == 2, what="the second run")
    await asyncio.sleep(1.0)
    assert len(runs()) == 2


async def test_a_save_during_a_run_kills_the_stale_run(start):
    editor = await start("gradebook_empty_guard", settings={"debounce": 0.1, "timeout": 120})
    slow = "tests/test_slow.py"
    (editor.root / slow).write_text("import time\n\ndef test_slow():\n    time.sleep(100)\n")
    editor.open("tests/test_marks.py")
    await asyncio.sleep(1.5)  # the first run is in the sleeping test now
    (editor.root / slow).write_text("def test_slow():\n    pass\n")
    editor.save(slow)
    cancelled = lambda: [m for m in editor.client.log_messages if "cancelled a stale" in m.message]  # noqa: E731
    await editor.wait_for(cancelled, timeout=30, what="the stale run to be cancelled")
    # the second run publishes long before the first one's sleep could have ended
    (failure,) = await editor.wait_for_diagnostics("tests/test_marks.py", bool, timeout=60)
    assert failure.code == "tests/test_marks.py::test_average_nothing_handed_in"
