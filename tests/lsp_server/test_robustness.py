"""The server never blocks and never dies: it answers while a repair runs, stops a repair when it
is cancelled, reports a dead model server clearly, and answers malformed requests with errors."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from benchmarks.cases.check_cases import reference_fix_code
from tests.lsp_server.conftest import CASES, capabilities, raw_request
from tests.support.openai_loopback import Failure

TEST_FILE = "tests/test_marks.py"
NODE = "tests/test_marks.py::test_average_nothing_handed_in"


async def _failing(editor):
    editor.open(TEST_FILE)
    return await editor.wait_for_diagnostics(TEST_FILE, bool)


async def test_hover_is_answered_while_a_repair_runs_and_cancel_request_stops_it(
    start, model, tmp_path
):
    model.answer("Guard the handed-in marks.", reference_fix_code(CASES["gradebook_empty_guard"]))
    model.server.fail(Failure.slow(3.0))
    editor = await start(caps=capabilities("emacs"))
    diagnostics = await _failing(editor)
    (action,) = await editor.quick_fixes(TEST_FILE, diagnostics)
    params = {"command": action.command.command, "arguments": list(action.command.arguments)}
    running = asyncio.ensure_future(
        raw_request(editor.client, types.WORKSPACE_EXECUTE_COMMAND, params)
    )
    await editor.wait_for(lambda: model.server.chat_requests, what="the model request")

    started = time.monotonic()
    hover = await editor.hover(TEST_FILE, diagnostics[0].range.start.line)
    assert time.monotonic() - started < 1.0
    assert "Explain and fix is running" in hover
    assert await editor.quick_fixes(TEST_FILE, diagnostics)  # code actions too

    (msg_id,) = [
        key for key in editor.client.protocol._request_futures if str(key).startswith("raw-")
    ]
    editor.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with pytest.raises(JsonRpcException, match="cancel"):
        await running
    # the job stops at its next check (after the slow reply) and ends its progress as cancelled
    await editor.wait_for(lambda: _ended(editor) == ["cancelled"], what="the progress end")
    assert editor.applied == []
    # and the workspace's queue is free again: the next repair runs (the model answers at once now)
    result = await editor.execute(action.command.command, *action.command.arguments)
    assert result["applied"] and result["verified"]


async def test_the_progress_cancel_button_stops_a_repair(start, model, tmp_path):
    model.answer("Guard the handed-in marks.", reference_fix_code(CASES["gradebook_empty_guard"]))
    model.server.fail(Failure.slow(2.0))
    editor = await start(caps=capabilities("emacs"))
    diagnostics = await _failing(editor)
    (action,) = await editor.quick_fixes(TEST_FILE, diagnostics)
    running = asyncio.ensure_future(
        editor.execute(action.command.command, *action.command.arguments)
    )
    await editor.wait_for(lambda: model.server.chat_requests, what="the model request")
    (token,) = [
        token
        for token, reports in editor.client.progress_reports.items()
        if reports and reports[0].title == "ledex: explain and fix"
    ]
    editor.client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    result = await running
    assert result == {
        "applied": False,
        "verified": False,
        "partial": False,
        "message": "cancelled",
        "tests": [],
    }
    assert _ended(editor) == ["cancelled"] and editor.applied == []


def _ended(editor) -> list[str | None]:
    return [
        r.message
        for reports in editor.progress()
        for r in reports
        if isinstance(r, types.WorkDoneProgressEnd)
    ]


async def test_a_dead_model_server_is_a_clear_message_and_the_server_lives_on(start):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    editor = await start(
        caps=capabilities("emacs"), settings={"model": f"openai:http://127.0.0.1:{port}/v1#m"}
    )
    diagnostics = await _failing(editor)
    (action,) = await editor.quick_fixes(TEST_FILE, diagnostics)
    result = await editor.execute(action.command.command, *action.command.arguments)
    assert not result["applied"] and "unreachable" in result["message"]
    (error,) = editor.shown(types.MessageType.Error)
    assert f"127.0.0.1:{port}" in error and "unreachable" in error and "Traceback" not in error
    assert "ZeroDivisionError" in await editor.hover(TEST_FILE, diagnostics[0].range.start.line)
    assert await editor.execute("ledex.runTests")  # still serving


async def test_malformed_requests_get_error_responses(start):
    editor = await start()
    diagnostics = await _failing(editor)
    bad = [
        (types.TEXT_DOCUMENT_CODE_ACTION, {"textDocument": 5, "range": "everything"}),
        (types.TEXT_DOCUMENT_HOVER, {"textDocument": {"uri": editor.uri(TEST_FILE)}}),
        (types.CODE_ACTION_RESOLVE, {"title": "x", "data": {"nodeId": 3}}),
        (types.CODE_ACTION_RESOLVE, {"title": "x"}),
        (
            types.WORKSPACE_EXECUTE_COMMAND,
            {"command": "ledex.explainAndFix", "arguments": [{"uri": 1}]},
        ),
        (types.WORKSPACE_EXECUTE_COMMAND, {"command": "ledex.explainAndFix", "arguments": []}),
        (types.WORKSPACE_EXECUTE_COMMAND, {"command": "ledex.runTests", "arguments": [42]}),
        (types.WORKSPACE_EXECUTE_COMMAND, {"command": "ledex.noSuchCommand"}),
        ("ledex/noSuchMethod", {}),
    ]
    for method, params in bad:
        with pytest.raises(JsonRpcException):
            await raw_request(editor.client, method, params)
    # notifications with bad params get no answer (none is possible), and break nothing
    editor.client.protocol._send_data(
        {"jsonrpc": "2.0", "method": types.TEXT_DOCUMENT_DID_SAVE, "params": {"x": 1}}
    )
    editor.client.protocol._send_data(
        {"jsonrpc": "2.0", "method": types.TEXT_DOCUMENT_DID_OPEN, "params": []}
    )
    hover = await editor.hover(TEST_FILE, diagnostics[0].range.start.line)
    assert "ZeroDivisionError" in hover
    assert editor.client.error is None


async def test_a_settings_change_reruns_the_tests_with_the_new_arguments(start):
    editor = await start()
    await _failing(editor)
    editor.client.set_configuration(["-k", "not nothing_handed_in"], section="ledex.pytestArgs")
    editor.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings=None)
    )
    await editor.wait_for_diagnostics(TEST_FILE, lambda found: not found)
    # a bad value is reported and ignored, not fatal
    editor.client.set_configuration("many", section="ledex.rounds")
    editor.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings=None)
    )
    await editor.wait_for(
        lambda: any("ledex.rounds" in m for m in editor.shown(types.MessageType.Warning))
    )


async def test_repairs_in_one_workspace_queue_and_share_a_fix(start, model, tmp_path):
    case = CASES["binary_search_bounds"]
    model.answer("The upper bound skips the last element.", reference_fix_code(case))
    model.server.fail(Failure.slow(1.5))
    editor = await start(case.name, caps=capabilities("emacs"))
    test_file = case.failing[0].split("::")[0]
    editor.open(test_file)
    diagnostics = await editor.wait_for_diagnostics(test_file, lambda found: len(found) == 2)
    commands = []
    for diagnostic in diagnostics:
        (action,) = await editor.quick_fixes(test_file, [diagnostic])
        commands.append(action.command)
    results = await asyncio.gather(*(editor.execute(c.command, *c.arguments) for c in commands))
    assert all(r["applied"] and r["verified"] for r in results)
    assert model.server.max_in_flight == 1 and len(model.server.chat_requests) == 1
    messages = [r.message for reports in editor.client.progress_reports.values() for r in reports]
    assert "waiting for the repair running in this workspace" in messages
    assert any("an earlier fix also fixes it" in (m or "") for m in messages)


async def test_shutdown_while_a_repair_runs_exits_at_once(start, model, tmp_path):
    model.answer("Guard the handed-in marks.", reference_fix_code(CASES["gradebook_empty_guard"]))
    model.server.fail(Failure.slow(20.0))
    editor = await start(caps=capabilities("emacs"))
    diagnostics = await _failing(editor)
    (action,) = await editor.quick_fixes(TEST_FILE, diagnostics)
    running = asyncio.ensure_future(
        editor.execute(action.command.command, *action.command.arguments)
    )
    await editor.wait_for(lambda: model.server.chat_requests, what="the model request")
    started = time.monotonic()
    await asyncio.wait_for(editor.client.shutdown_session(), 10)
    assert editor.client._server.returncode == 0 and time.monotonic() - started < 5
    with pytest.raises(JsonRpcException):
        await running
