"""A real OpenAI-compatible chat-completions server on 127.0.0.1, scriptable for tests.

It speaks HTTP/1.1 over a socket (keep-alive, chunked Server-Sent Events for `"stream": true`),
serves `/v1/models` and `/v1/chat/completions`, and can be told to misbehave the way real servers
do: return fewer choices than `n` (llama.cpp's server, Ollama), fail with 429/5xx and
`Retry-After`, send garbage, stall past the client's timeout, reject a long prompt, cut a reply
at `max_tokens`. Tokens are whitespace-separated words, which is all the tests need.

    with LoopbackServer(reply=lambda messages, params: "hi") as server:
        backend = OpenAIBackend(server.url, "loopback-model")
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: (messages, params) -> reply text; params is the request body without "messages", plus
#: "index", the choice being generated, so replies can differ per candidate.
ReplyFn = Callable[[list[dict[str, Any]], dict[str, Any]], str]

CONTEXT_OVERFLOW_MESSAGE = (
    "This model's maximum context length is 2048 tokens. However, you requested 4096 tokens "
    "(3072 in the messages, 1024 in the completion). Please reduce the length of the messages "
    "or completion."
)


def default_reply(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    return "ok"


@dataclass(frozen=True)
class Failure:
    """One scripted misbehaviour, used up by the next request that arrives.

    `status` with a JSON error body (`message`) or a raw `body`; `retry_after` sets the header;
    `stall` sleeps that many seconds before answering (normally, if `status` is None);
    `disconnect` closes the socket without answering.
    """

    status: int | None = 503
    message: str = "the server is overloaded"
    retry_after: float | str | None = None
    body: bytes | str | None = None
    content_type: str = "application/json"
    stall: float = 0.0
    disconnect: bool = False

    @classmethod
    def garbage(cls, body: bytes | str = b"<html>502 bad gateway</html>") -> Failure:
        return cls(status=200, body=body, content_type="text/html")

    @classmethod
    def slow(cls, seconds: float) -> Failure:
        return cls(status=None, stall=seconds)

    @classmethod
    def context_overflow(cls, message: str = CONTEXT_OVERFLOW_MESSAGE) -> Failure:
        return cls(status=400, message=message)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]  # the JSON object sent ({} for none, or for JSON that is not an object)


@dataclass(eq=False)
class LoopbackServer:
    """The server; start with `with` (or `start()`/`close()`); `url` ends in `/v1`."""

    reply: ReplyFn = default_reply
    models: list[str] = field(default_factory=lambda: ["loopback-model"])
    #: most choices returned per request, whatever `n` asks (None: honour `n`)
    max_choices: int | None = None
    #: when set, requests without `Authorization: Bearer <api_key>` get 401
    api_key: str | None = None
    #: send SSE comment lines and blank lines between events, as proxies and llama.cpp do
    keepalive_comments: bool = True
    failures: deque[Failure] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    #: when set, a stream pauses after its first text piece until the event is set, so a test
    #: can see text arrive before the reply is complete
    stream_gate: threading.Event | None = None
    #: the most chat requests seen in flight at once
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._in_flight = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> LoopbackServer:
        handler = type("Handler", (_Handler,), {"loopback": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        # A short poll interval: shutdown() waits for the poll loop, once per test.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="openai-loopback",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()  # wakes stalled handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -------------------------------------------------------------------------------- scripting

    def fail(self, *failures: Failure) -> None:
        """Queue failures; each is used up by one request, in order."""
        with self._lock:
            self.failures.extend(failures)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _record(self, request: RecordedRequest) -> Failure | None:
        with self._lock:
            self.requests.append(request)
            return self.failures.popleft() if self.failures else None

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers; streams use chunked encoding
    # Headers and body go out as separate writes; with Nagle on, the body would wait for the
    # client's delayed ACK (~40 ms on Linux) on every kept-alive request.
    disable_nagle_algorithm = True
    loopback: LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._handle(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send_error(400, "request body is not JSON")
            return
        self._handle(body if isinstance(body, dict) else None)

    # -------------------------------------------------------------------------------- routing

    def _handle(self, body: dict[str, Any] | None) -> None:
        server = self.loopback
        headers = {k.lower(): v for k, v in self.headers.items()}
        failure = server._record(RecordedRequest(self.command, self.path, headers, body or {}))
        try:
            if failure is not None and self._misbehave(failure):
                return
            if server.api_key and headers.get("authorization") != f"Bearer {server.api_key}":
                self._send_error(401, "Incorrect API key provided.", kind="invalid_api_key")
            elif self.command == "GET" and self.path == "/v1/models":
                self._send_models()
            elif self.command == "POST" and self.path == "/v1/chat/completions":
                self._chat(body)
            else:
                self._send_error(404, f"no route for {self.command} {self.path}")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its read timeout)

    def _misbehave(self, failure: Failure) -> bool:
        """Act out a failure; True when the request is answered (or dropped) by it."""
        if failure.stall:
            self.loopback._stopping.wait(failure.stall)
        if failure.disconnect:
            self.close_connection = True
            return True
        if failure.status is None:
            return False
        if failure.body is not None:
            raw = failure.body.encode() if isinstance(failure.body, str) else failure.body
            self._send_raw(failure.status, raw, failure.content_type, failure.retry_after)
        else:
            self._send_error(failure.status, failure.message, retry_after=failure.retry_after)
        return True

    def _send_models(self) -> None:
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "loopback"}
            for name in self.loopback.models
        ]
        self._send_json(200, {"object": "list", "data": data})

    def _chat(self, body: dict[str, Any] | None) -> None:
        if body is None or not isinstance(body.get("messages"), list):
            self._send_error(400, "'messages' is required")
            return
        server = self.loopback
        server._enter()
        try:
            choices = self._generate(body)
        finally:
            server._leave()
        if body.get("stream"):
            self._stream(body, choices)
        else:
            self._send_json(200, _completion_body(body, choices))

    def _generate(self, body: dict[str, Any]) -> list[tuple[str, str]]:
        """(text, finish_reason) for each choice this server is willing to return."""
        server = self.loopback
        asked = int(body.get("n") or 1)
        count = 1 if body.get("stream") else min(asked, server.max_choices or asked)
        params = {k: v for k, v in body.items() if k != "messages"}
        replies = [server.reply(body["messages"], {**params, "index": i}) for i in range(count)]
        return [_cut(text, body.get("max_tokens")) for text in replies]

    # ---------------------------------------------------------------------------- streaming

    def _stream(self, body: dict[str, Any], choices: list[tuple[str, str]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        text, finish = choices[0]
        gate = self.loopback.stream_gate
        for event in _stream_events(body, text, finish, self.loopback.keepalive_comments):
            self._write_chunk(event.encode())
            if gate is not None and '"content": "' in event and '"content": ""' not in event:
                gate.wait(timeout=10)
                gate = None
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    # ------------------------------------------------------------------------------- replies

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", None)

    def _send_error(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        retry_after: float | str | None = None,
    ) -> None:
        payload = {"error": {"message": message, "type": kind, "code": status}}
        self._send_raw(status, json.dumps(payload).encode(), "application/json", retry_after)

    def _send_raw(
        self, status: int, raw: bytes, content_type: str, retry_after: float | str | None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.end_headers()
        self.wfile.write(raw)
        self.wfile.flush()


def _words(text: str) -> int:
    return len(text.split())


def _cut(text: str, max_tokens: object) -> tuple[str, str]:
    """Cut a reply to `max_tokens` words, keeping its spacing, the way a token budget would."""
    if not isinstance(max_tokens, int) or _words(text) <= max_tokens:
        return text, "stop"
    ends = [m.end() for m in re.finditer(r"\S+", text)]
    return text[: ends[max_tokens - 1]] if max_tokens > 0 else "", "length"


def _prompt_tokens(body: dict[str, Any]) -> int:
    return sum(_words(str(m.get("content", ""))) for m in body["messages"] if isinstance(m, dict))


def _completion_body(body: dict[str, Any], choices: list[tuple[str, str]]) -> dict[str, Any]:
    prompt = _prompt_tokens(body)
    completion = sum(_words(text) for text, _ in choices)
    return {
        "id": f"chatcmpl-loopback-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or "loopback-model",
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish,
            }
            for i, (text, finish) in enumerate(choices)
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _stream_events(body: dict[str, Any], text: str, finish: str, keepalive: bool) -> Iterator[str]:
    """The SSE text of a streamed reply: role chunk, one chunk per word, finish chunk, [DONE]."""
    base = {
        "id": f"chatcmpl-loopback-{time.monotonic_ns()}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model") or "loopback-model",
    }

    def chunk(delta: dict[str, str], finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return f"data: {json.dumps({**base, 'choices': [choice]})}\n\n"

    if keepalive:
        yield ": keep-alive\n\n"
    yield chunk({"role": "assistant", "content": ""})
    for i, piece in enumerate(re.findall(r"\s*\S+\s*", text) or [text]):
        if keepalive and i % 3 == 1:
            yield ": ping\n\n"
        yield chunk({"content": piece})
    yield chunk({}, finish)
    yield "data: [DONE]\n\n"
