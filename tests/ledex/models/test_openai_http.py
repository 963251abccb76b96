"""The `openai:` backend against a real HTTP server on 127.0.0.1 (tests/support/openai_loopback)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ledex.errors import BackendResponseError, BackendUnavailable, ContextOverflow
from ledex.models import Completion, Sampling, load_backend
from ledex.models.openai_http import OpenAIBackend
from tests.support.openai_loopback import Failure, LoopbackServer

pytestmark = pytest.mark.timeout(30)

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(autouse=True)
def _no_ambient_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's real key must neither leak into requests nor change what the tests see.
    monkeypatch.delenv("LEDEX_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


def fast_backend(server: LoopbackServer, model: str = "loopback-model", **options: Any):
    """A backend with test-sized timeouts and backoffs."""
    settings: dict[str, Any] = {
        "timeout": 2.0,
        "connect_timeout": 1.0,
        "max_retries": 3,
        "backoff": 0.001,
        "max_backoff": 0.05,
    }
    settings.update(options)
    return OpenAIBackend(server.url, model, **settings)


def seeded_reply(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """Differs per seed and per choice, like real sampling."""
    return f"seed={params.get('seed')} choice={params['index']}"


# ------------------------------------------------------------------------------- candidates


def test_n_candidates_come_from_one_request_when_the_server_honours_n() -> None:
    with LoopbackServer(reply=seeded_reply) as server, fast_backend(server) as backend:
        [candidates] = backend.generate([HELLO], Sampling(n=3, seed=7))

    assert [c.text for c in candidates] == [f"seed=7 choice={i}" for i in range(3)]
    assert [r.body["n"] for r in server.chat_requests] == [3]


def test_candidates_are_topped_up_when_the_server_ignores_n() -> None:
    # llama.cpp's server and Ollama return a single choice whatever n asks for.
    with LoopbackServer(reply=seeded_reply, max_choices=1) as server, fast_backend(server) as b:
        [candidates] = b.generate([HELLO], Sampling(n=4, seed=100))

    assert len(candidates) == 4
    assert len({c.text for c in candidates}) == 4
    sent = [(r.body.get("n", 1), r.body["seed"]) for r in server.chat_requests]
    assert sent == [(4, 100), (3, 101), (2, 102), (1, 103)]


def test_top_up_asks_only_for_what_is_missing_and_returns_exactly_n() -> None:
    with LoopbackServer(reply=seeded_reply, max_choices=2) as server, fast_backend(server) as b:
        [candidates] = b.generate([HELLO], Sampling(n=5, seed=0))

    assert len(candidates) == 5
    sent = [(r.body.get("n", 1), r.body["seed"]) for r in server.chat_requests]
    assert sent == [(5, 0), (3, 2), (1, 4)]
    assert len({c.text for c in candidates}) == 5


def test_extra_choices_beyond_n_are_dropped(server: LoopbackServer) -> None:
    choices = [
        {"index": i, "message": {"role": "assistant", "content": f"c{i}"}, "finish_reason": "stop"}
        for i in range(3)
    ]
    server.fail(Failure(200, body=json.dumps({"choices": choices})))
    with fast_backend(server) as backend:
        [candidates] = backend.generate([HELLO], Sampling(n=2))
    assert [c.text for c in candidates] == ["c0", "c1"]


def test_batch_results_keep_conversation_order_and_run_concurrently() -> None:
    count = 8

    def reply(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
        number = int(messages[-1]["content"])
        time.sleep(0.02 * (count - number))  # early conversations finish last
        return f"answer {number}"

    conversations = [[{"role": "user", "content": str(i)}] for i in range(count)]
    with LoopbackServer(reply=reply) as server, fast_backend(server, concurrency=4) as backend:
        results = backend.generate(conversations, Sampling(n=2, seed=1))

    assert [[c.text for c in cands] for cands in results] == [
        [f"answer {i}"] * 2 for i in range(count)
    ]
    assert server.max_in_flight > 1, "conversations of a batch should overlap"


def test_payload_omits_unset_fields_and_sends_set_ones(server: LoopbackServer) -> None:
    with fast_backend(server) as backend:
        backend.generate([HELLO], Sampling(temperature=0, max_tokens=64))
        backend.generate([HELLO], Sampling(seed=3, stop=("```",)))

    plain, full = (r.body for r in server.chat_requests)
    assert plain == {
        "model": "loopback-model",
        "messages": HELLO,
        "temperature": 0,
        "top_p": 0.95,
        "max_tokens": 64,
    }
    assert full["seed"] == 3
    assert full["stop"] == ["```"]


def test_length_finish_reason_marks_the_completion_truncated() -> None:
    ten_words = "one two three four five six seven eight nine ten"
    with (
        LoopbackServer(reply=lambda m, p: ten_words) as server,
        fast_backend(server) as backend,
    ):
        [[cut]] = backend.generate([HELLO], Sampling(max_tokens=3))
        [[whole]] = backend.generate([HELLO], Sampling(max_tokens=50))

    assert cut == Completion("one two three", "length", prompt_tokens=1, completion_tokens=3)
    assert cut.truncated
    assert whole.text == ten_words
    assert not whole.truncated
    assert whole.finish_reason == "stop"


# -------------------------------------------------------------------------------- streaming


def test_stream_reassembles_the_reply_from_sse_events() -> None:
    text = "def add(a, b):\n    return a + b\n"
    with (
        LoopbackServer(reply=lambda m, p: text, keepalive_comments=True) as server,
        fast_backend(server) as backend,
    ):
        pieces = list(backend.stream(HELLO, Sampling(max_tokens=100)))

    assert "".join(pieces) == text
    assert len(pieces) > 1, "the reply should arrive in pieces"
    [request] = server.chat_requests
    assert request.body["stream"] is True
    assert "n" not in request.body


def test_stream_yields_before_the_reply_is_complete() -> None:
    gate = threading.Event()  # the server holds the rest of the reply until it is set
    with (
        LoopbackServer(reply=lambda m, p: "first second third", stream_gate=gate) as server,
        fast_backend(server) as backend,
    ):
        stream = backend.stream(HELLO)
        assert next(stream) == "first "
        gate.set()
        assert "".join(stream) == "second third"


def test_stream_retries_a_503_before_the_first_byte(server: LoopbackServer) -> None:
    server.fail(Failure(503))
    with fast_backend(server) as backend:
        assert "".join(backend.stream(HELLO)) == "ok"
    assert len(server.chat_requests) == 2


def test_stream_reports_context_overflow(server: LoopbackServer) -> None:
    server.fail(Failure.context_overflow())
    with fast_backend(server) as backend, pytest.raises(ContextOverflow):
        list(backend.stream(HELLO))


# ---------------------------------------------------------------------------------- retries


def test_retries_429_honouring_retry_after_then_503_then_succeeds(
    server: LoopbackServer,
) -> None:
    server.fail(Failure(429, retry_after=2), Failure(503))
    with fast_backend(server, max_backoff=10.0) as backend:
        delays: list[float] = []
        backend._sleep = delays.append
        [[completion]] = backend.generate([HELLO])

    assert completion.text == "ok"
    assert len(server.chat_requests) == 3
    assert delays[0] == 2.0  # the server's Retry-After
    assert 0 < delays[1] <= 0.002  # backoff * 2**1 with jitter in [0.5, 1]


def test_retry_after_is_capped(server: LoopbackServer) -> None:
    server.fail(Failure(429, retry_after=3600))
    with fast_backend(server, max_backoff=0.05) as backend:
        started = time.monotonic()
        backend.generate([HELLO])
    assert time.monotonic() - started < 1.0


def test_backoff_grows_exponentially(server: LoopbackServer) -> None:
    server.fail(Failure(502), Failure(502), Failure(502))
    with fast_backend(server, backoff=1.0, max_backoff=100.0) as backend:
        delays: list[float] = []
        backend._sleep = delays.append
        backend.generate([HELLO])

    assert len(delays) == 3
    for attempt, delay in enumerate(delays):
        assert 0.5 * 2**attempt <= delay <= 2**attempt


def test_gives_up_after_max_retries(server: LoopbackServer) -> None:
    server.fail(*[Failure(503, message="overloaded, try later")] * 5)
    with (
        fast_backend(server, max_retries=2) as backend,
        pytest.raises(BackendResponseError) as caught,
    ):
        backend.generate([HELLO])

    assert len(server.chat_requests) == 3
    message = str(caught.value)
    assert server.url in message
    assert "503" in message
    assert "overloaded, try later" in message


def test_a_dropped_connection_is_retried(server: LoopbackServer) -> None:
    server.fail(Failure(disconnect=True))
    with fast_backend(server) as backend:
        [[completion]] = backend.generate([HELLO])
    assert completion.text == "ok"
    assert len(server.chat_requests) == 2


# ----------------------------------------------------------------------------------- errors


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_is_backend_unavailable_naming_the_url() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    backend = OpenAIBackend(url, "m", max_retries=1, backoff=0.001)
    with backend, pytest.raises(BackendUnavailable) as caught:
        backend.generate([HELLO])

    message = str(caught.value)
    assert message == f"model server at {url} is unreachable (connection refused); is it running?"


def test_unreachable_server_during_model_discovery() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(BackendUnavailable, match="unreachable"):
        OpenAIBackend(url, "", max_retries=0)


def test_garbage_body_is_an_invalid_response(server: LoopbackServer) -> None:
    server.fail(Failure.garbage("<html>" + "x" * 5000 + "</html>"))
    with fast_backend(server) as backend, pytest.raises(BackendResponseError) as caught:
        backend.generate([HELLO])

    message = str(caught.value)
    assert message.startswith(f"model server at {server.url} returned an invalid response: ")
    assert "<html>xxx" in message
    assert len(message) < 300, "the body shown should be truncated"


def test_json_without_choices_is_an_invalid_response(server: LoopbackServer) -> None:
    server.fail(Failure(200, body='{"object": "chat.completion"}'))
    with fast_backend(server) as backend, pytest.raises(BackendResponseError, match="invalid"):
        backend.generate([HELLO])


def test_read_timeout_is_a_clear_error_and_not_retried(server: LoopbackServer) -> None:
    server.fail(Failure.slow(5.0))
    with fast_backend(server, timeout=0.3) as backend:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as caught:
            backend.generate([HELLO])

    assert time.monotonic() - started < 2.0
    assert str(caught.value) == (
        f"model server at {server.url} did not answer within 0.3 s; "
        "raise the timeout or ask for fewer tokens"
    )
    assert len(server.chat_requests) == 1


def test_context_overflow_400_is_context_overflow_and_not_retried(server: LoopbackServer) -> None:
    server.fail(Failure.context_overflow())
    with fast_backend(server) as backend, pytest.raises(ContextOverflow) as caught:
        backend.generate([HELLO])

    assert server.url in str(caught.value)
    assert "maximum context length is 2048" in str(caught.value)
    assert len(server.chat_requests) == 1


@pytest.mark.parametrize(
    "message",
    [
        "the request exceeds the available context size, try increasing it",  # llama.cpp
        "prompt is too long: 9000 tokens > 8192 maximum",
    ],
)
def test_other_servers_context_messages_are_recognised(
    server: LoopbackServer, message: str
) -> None:
    server.fail(Failure.context_overflow(message))
    with fast_backend(server) as backend, pytest.raises(ContextOverflow):
        backend.generate([HELLO])


def test_other_400s_are_response_errors_not_overflow(server: LoopbackServer) -> None:
    server.fail(Failure(400, message="temperature must be at most 2"))
    with fast_backend(server) as backend, pytest.raises(BackendResponseError) as caught:
        backend.generate([HELLO])
    assert "temperature must be at most 2" in str(caught.value)
    assert not isinstance(caught.value, ContextOverflow)


# ------------------------------------------------------------------------- model discovery


def test_model_is_discovered_once_through_models_endpoint() -> None:
    with (
        LoopbackServer(models=["first-model", "second-model"]) as server,
        fast_backend(server, model="") as backend,
    ):
        backend.generate([HELLO])
        backend.generate([HELLO])
        assert backend.info.model == "first-model"

    assert [r.path for r in server.requests].count("/v1/models") == 1
    assert {r.body["model"] for r in server.chat_requests} == {"first-model"}


def test_a_server_without_models_says_to_name_one() -> None:
    with (
        LoopbackServer(models=[]) as server,
        pytest.raises(BackendResponseError, match="lists no models; name one"),
    ):
        fast_backend(server, model="")


# ---------------------------------------------------------------------------------- API key


def authorization_headers(server: LoopbackServer) -> list[str | None]:
    return [r.headers.get("authorization") for r in server.requests]


def test_no_authorization_header_without_a_key(server: LoopbackServer) -> None:
    with fast_backend(server) as backend:
        backend.generate([HELLO])
    assert authorization_headers(server) == [None]


def test_api_key_option_is_sent_as_bearer(server: LoopbackServer) -> None:
    with fast_backend(server, api_key="sk-option") as backend:
        backend.generate([HELLO])
        list(backend.stream(HELLO))
    assert authorization_headers(server) == ["Bearer sk-option"] * 2


def test_api_key_from_the_environment_prefers_the_ledex_variable(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    with fast_backend(server) as backend:
        backend.generate([HELLO])
    monkeypatch.setenv("LEDEX_OPENAI_API_KEY", "sk-ledex")
    with fast_backend(server) as backend:
        backend.generate([HELLO])
    assert authorization_headers(server) == ["Bearer sk-openai", "Bearer sk-ledex"]


def test_a_rejected_key_names_the_key_without_showing_it() -> None:
    with (
        LoopbackServer(api_key="sk-right") as server,
        fast_backend(server, api_key="sk-wrong-secret") as backend,
        pytest.raises(BackendResponseError) as caught,
    ):
        backend.generate([HELLO])

    message = str(caught.value)
    assert "API key" in message and "401" in message
    assert "sk-wrong-secret" not in message
    assert len(server.chat_requests) == 1, "a bad key is not worth retrying"


# ---------------------------------------------------------------------------- load_backend


def test_load_backend_builds_an_openai_backend(server: LoopbackServer) -> None:
    spec = f"openai:http://127.0.0.1:{server.port}/v1#m"
    backend = load_backend(spec, timeout=2.0, n_ctx=4096, max_retries=0)
    with backend:
        assert isinstance(backend, OpenAIBackend)
        assert backend.info.spec == spec
        assert backend.info.model == "m"
        assert backend.info.details == {"url": server.url}
        [[completion]] = backend.generate([HELLO])
    assert completion.text == "ok"
    assert server.chat_requests[0].body["model"] == "m"


# ------------------------------------------------------------- the key over plain http (issue 15)


def _machine_address() -> str | None:
    """This machine's address on its network (not loopback), if it has one."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))  # no packet is sent: it only picks the route
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


class _NetworkServer:
    """A chat-completions server on the machine's network address, recording Authorization."""

    def __init__(self, address: str) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        seen: list[str | None] = []
        self.authorization = seen

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen.append(self.headers.get("Authorization"))
                body = json.dumps({"choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": "hi"}}]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((address, 0), Handler)
        self.url = f"http://{address}:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def network_server() -> Iterator[_NetworkServer]:
    address = _machine_address()
    if address is None:
        pytest.skip("this machine has no network address besides loopback")
    running = _NetworkServer(address)
    yield running
    running.close()


def test_a_key_is_not_sent_over_plain_http_to_another_machine(
    network_server: _NetworkServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-for-the-hosted-api")
    with OpenAIBackend(network_server.url, "m", api_key=None, max_retries=0) as backend:
        backend.generate([HELLO])
    with OpenAIBackend(network_server.url, "m", api_key="sk-given", max_retries=0) as backend:
        backend.generate([HELLO])
    assert network_server.authorization == [None, None]
    assert "LEDEX_OPENAI_KEY_OVER_HTTP=1" in caplog.text and "sk-" not in caplog.text


def test_a_key_goes_over_plain_http_when_the_user_allows_it(
    network_server: _NetworkServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDEX_OPENAI_KEY_OVER_HTTP", "1")
    with OpenAIBackend(network_server.url, "m", api_key="sk-given", max_retries=0) as backend:
        backend.generate([HELLO])
    assert network_server.authorization == ["Bearer sk-given"]


@pytest.mark.parametrize("url, sent", [
    ("https://api.example.com/v1", True), ("http://127.0.0.1:8000/v1", True),
    ("http://localhost:8000/v1", True), ("http://[::1]:8000/v1", True),
    ("http://10.1.2.3:8000/v1", False), ("http://gpu-box.lan:8000/v1", False),
])  # fmt: skip
def test_where_a_key_may_travel(url: str, sent: bool) -> None:
    from ledex.models.openai_http import _auth_headers

    assert bool(_auth_headers("sk-x", url)) is sent
