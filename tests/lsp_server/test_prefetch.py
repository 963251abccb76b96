"""The fix ready before the user asks: the background repair after a run, the explanation shown
before its code is verified, the fix cache across server restarts, and test runs' progress."""

from __future__ import annotations

import asyncio
import time

from lsprotocol import types

from benchmarks.cases.check_cases import reference_fix_code
from lsp_server.settings import Settings
from tests.lsp_server.conftest import CASES, capabilities
from tests.support.openai_loopback import Failure

TEST_FILE = "tests/test_marks.py"
SOURCE_FILE = "gradebook/marks.py"
EXPLANATION = "It checks the raw marks instead of the handed-in ones, so it divides by zero."


def _verified(actions: list[types.CodeAction]) -> bool:
    return any("(verified fix for" in a.title for a in actions)


async def test_a_new_failure_is_repaired_in_the_background_and_the_quick_fix_is_instant(
    start, model
):
    model.answer(EXPLANATION, reference_fix_code(CASES["gradebook_empty_guard"]))
    editor = await start(caps=capabilities("emacs"), settings={"prefetch": True})
    editor.open(TEST_FILE)
    diagnostics = await editor.wait_for_diagnostics(TEST_FILE, bool)
    # nobody asked: the quick-fix becomes the verified fix, titled with its explanation
    actions = await editor.poll(
        lambda: editor.quick_fixes(TEST_FILE, diagnostics), _verified, timeout=60
    )
    (action,) = actions
    assert action.title.startswith("ledex: It checks the raw marks") and action.is_preferred
    assert len(model.server.chat_requests) == 1
    hover = await editor.hover(TEST_FILE, diagnostics[0].range.start.line)
    assert EXPLANATION in hover and "(verified:" in hover
    started = time.perf_counter()
    result = await editor.execute(action.command.command, *action.command.arguments)
    elapsed = time.perf_counter() - started
    assert result["applied"] and result["verified"] and len(model.server.chat_requests) == 1
    assert elapsed < 5, (
        elapsed
    )  # served from the background result (p50 goal 1 s; CI machines vary)
    editor.apply(editor.applied[0].edit)
    await editor.wait_for_diagnostics(TEST_FILE, lambda found: not found)


async def test_the_explanation_shows_before_the_code_is_verified_and_says_so(start, model):
    model.answer(EXPLANATION, reference_fix_code(CASES["gradebook_empty_guard"]))
    editor = await start(caps=capabilities("emacs"), settings={"prefetch": True, "timeout": 30})
    editor.open(TEST_FILE)
    diagnostics = await editor.wait_for_diagnostics(TEST_FILE, bool)
    line = diagnostics[0].range.start.line
    seen = await editor.poll(lambda: editor.hover(TEST_FILE, line),
                             lambda text: text is not None and ("NOT YET VERIFIED" in text or "(verified:" in text),
                             timeout=60)  # fmt: skip
    assert "NOT YET VERIFIED" in seen and EXPLANATION in seen, seen
    final = await editor.poll(
        lambda: editor.hover(TEST_FILE, line), lambda text: "(verified:" in (text or "")
    )
    assert "NOT YET VERIFIED" not in final


async def test_an_edit_stops_the_background_repair(start, model):
    model.answer(EXPLANATION, reference_fix_code(CASES["gradebook_empty_guard"]))
    model.server.fail(Failure.slow(3.0))
    editor = await start(caps=capabilities("emacs"), settings={"prefetch": True})
    editor.open(TEST_FILE)
    editor.open(SOURCE_FILE)
    diagnostics = await editor.wait_for_diagnostics(TEST_FILE, bool)
    await editor.wait_for(lambda: model.server.chat_requests, what="the background model request")
    source = (editor.root / SOURCE_FILE).read_text()
    editor.change(SOURCE_FILE, source + "\n# typing\n")  # not saved
    await asyncio.sleep(4.5)  # the model's answer arrives; the stopped repair keeps nothing
    assert not _verified(await editor.quick_fixes(TEST_FILE, diagnostics))
    logged = " ".join(m.message for m in editor.client.log_messages)
    assert (
        "repairing tests/test_marks.py::test_average_nothing_handed_in in the background" in logged
    )


async def test_without_prefetch_nothing_is_asked_until_the_user_asks(start, model):
    model.answer(EXPLANATION, reference_fix_code(CASES["gradebook_empty_guard"]))
    editor = await start(caps=capabilities("emacs"), settings={"prefetch": False})
    editor.open(TEST_FILE)
    await editor.wait_for_diagnostics(TEST_FILE, bool)
    await asyncio.sleep(1.5)
    assert model.server.chat_requests == []


def test_prefetch_is_on_by_default_for_local_models_only():
    assert Settings().prefetches()  # the embedded model
    assert Settings(model="openai:http://127.0.0.1:8080/v1#qwen").prefetches()
    assert not Settings(model="openai:https://api.example.com/v1#gpt").prefetches()
    assert not Settings(model="embedded", prefetch=False).prefetches()


async def test_a_verified_fix_is_cached_across_server_restarts_and_verified_again(start, model):
    model.answer(EXPLANATION, reference_fix_code(CASES["gradebook_empty_guard"]))
    first = await start(caps=capabilities("emacs"), settings={"prefetch": False})
    first.open(TEST_FILE)
    diagnostics = await first.wait_for_diagnostics(TEST_FILE, bool)
    (action,) = await first.quick_fixes(TEST_FILE, diagnostics)
    result = await first.execute(action.command.command, *action.command.arguments)
    assert result["verified"] and len(model.server.chat_requests) == 1
    await first.client.shutdown_session()
    # a new server on the same (unchanged) files: the cached fix, verified again, no model
    again = await start(caps=capabilities("emacs"), settings={"prefetch": False}, folder="copy")
    again.open(TEST_FILE)
    diagnostics = await again.wait_for_diagnostics(TEST_FILE, bool)
    (action,) = await again.quick_fixes(TEST_FILE, diagnostics)
    result = await again.execute(action.command.command, *action.command.arguments)
    assert result["applied"] and result["verified"] and len(model.server.chat_requests) == 1


async def test_a_test_run_reports_progress(start, model):
    editor = await start()
    editor.open(TEST_FILE)
    await editor.wait_for_diagnostics(TEST_FILE, bool)
    # the run's progress ends after its diagnostics are published: wait for the end too
    ended = await editor.wait_for(
        lambda: [
            r[-1]
            for r in editor.progress("ledex: running the tests")
            if isinstance(r[-1], types.WorkDoneProgressEnd)
        ],
        what="the end of the test run's progress",
    )
    assert any("3 passed, 1 failed" in (end.message or "") for end in ended)
