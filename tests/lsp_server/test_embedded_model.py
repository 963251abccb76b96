"""One full Explain-and-fix run through the server on a real embedded model (SmolLM2-135M: fast,
its fixes are useless, so the point is the plumbing: loading, progress, an honest outcome)."""

from __future__ import annotations

import sys

import pytest
from lsprotocol import types

from ledex.sandbox.pytest_runner import run_pytest
from tests.conftest import FAST_MODEL
from tests.lsp_server.conftest import capabilities

TEST_FILE = "tests/test_marks.py"


@pytest.mark.model
@pytest.mark.timeout(400)  # llama.cpp slows down a lot when other work shares the cores
async def test_explain_and_fix_with_the_embedded_model(start, smollm2_path):
    editor = await start(
        caps=capabilities("emacs"),
        settings={"model": f"embedded:{FAST_MODEL}", "maxTokens": 160, "temperature": 0.2},
    )
    editor.open(TEST_FILE)
    diagnostics = await editor.wait_for_diagnostics(TEST_FILE, bool)
    (action,) = await editor.quick_fixes(TEST_FILE, diagnostics)
    result = await editor.execute(action.command.command, *action.command.arguments)

    assert any("loading the model" in m for m in editor.shown(types.MessageType.Info))
    (reports,) = editor.progress()
    assert isinstance(reports[0], types.WorkDoneProgressBegin) and isinstance(
        reports[-1], types.WorkDoneProgressEnd
    )
    assert any("asking the model" in (r.message or "") for r in reports[1:-1])
    hover = await editor.hover(TEST_FILE, diagnostics[0].range.start.line)
    if result["verified"]:  # a lucky tiny model: the fix arrived and works
        (sent,) = editor.applied
        editor.apply(sent.edit)
        assert run_pytest(editor.root, python=sys.executable).passes()
    else:  # the usual case: nothing is applied, and the attempt is described as what it is
        assert not result["applied"] and editor.applied == []
        assert "not verified" in hover or "No fix found" in hover
