"""`ledex serve --tcp HOST:PORT`: the same server over a socket (for debugging)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time


def _message(payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    return f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def _read(stream) -> dict:
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(stream.read(length))


def test_serve_over_tcp_answers_initialize_with_the_capabilities():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "ledex", "serve", "--tcp", f"127.0.0.1:{port}"]
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = socket.create_connection(("127.0.0.1", port), timeout=30)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, (
                    "the server did not start"
                )
                time.sleep(0.1)
        with connection, connection.makefile("rb") as replies:
            params: dict[str, object] = {"processId": None, "rootUri": None, "capabilities": {}}
            connection.sendall(
                _message({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
            )
            reply = _read(replies)
            capabilities = reply["result"]["capabilities"]
            assert reply["result"]["serverInfo"]["name"] == "ledex"
            assert capabilities["codeActionProvider"]["resolveProvider"] is True
            assert "source.fixAll.ledex" in capabilities["codeActionProvider"]["codeActionKinds"]
            assert capabilities["hoverProvider"] is True
            assert set(capabilities["executeCommandProvider"]["commands"]) == {
                "ledex.runTests",
                "ledex.explainAndFix",
            }
            assert capabilities["textDocumentSync"]["save"] is True
            connection.sendall(_message({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}))
            assert _read(replies)["id"] == 2
            connection.sendall(_message({"jsonrpc": "2.0", "method": "exit"}))
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_serve_accepts_the_stdio_flag_editors_append():
    server = subprocess.Popen([sys.executable, "-m", "ledex", "serve", "--stdio"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    try:
        params: dict[str, object] = {"processId": None, "rootUri": None, "capabilities": {}}
        server.stdin.write(
            _message({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
        )
        server.stdin.flush()
        assert _read(server.stdout)["result"]["serverInfo"]["name"] == "ledex"
    finally:
        server.kill()
        server.wait()
