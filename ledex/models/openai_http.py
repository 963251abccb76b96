"""The `openai:` backend: any server that speaks OpenAI's chat-completions protocol.

vLLM's server, llama.cpp's server, Ollama and hosted APIs all accept the same request, but differ
in what they honour: llama.cpp's server and Ollama ignore `n` and return one choice, so candidates
are topped up with extra requests (each with its own seed, so candidates differ and reproduce).
Conversations of a batch go out on a small thread pool so a batching server (vLLM) can overlap
them.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import random
import re
import time
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from ledex.errors import BackendResponseError, BackendUnavailable, ContextOverflow, LedexError
from ledex.models.base import (
    Backend,
    BackendInfo,
    Completion,
    Conversation,
    FinishReason,
    Sampling,
)
from ledex.models.spec import ModelSpec

API_KEY_ENV_VARS = ("LEDEX_OPENAI_API_KEY", "OPENAI_API_KEY")
#: =1: send the API key over plain http to another machine too (it then travels readable)
KEY_OVER_HTTP_ENV = "LEDEX_OPENAI_KEY_OVER_HTTP"
log = logging.getLogger("ledex.models")

DEFAULT_TIMEOUT = 120.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF = 0.5
DEFAULT_MAX_BACKOFF = 30.0
DEFAULT_CONCURRENCY = 4

#: How much of a server's reply an error message shows.
EXCERPT_CHARS = 200

#: Servers phrase "prompt too long" differently: vLLM and OpenAI ("maximum context length",
#: "context_length_exceeded"), llama.cpp's server ("exceeds the available context size"),
#: others ("too many tokens", "prompt is too long").
_CONTEXT_OVERFLOW = re.compile(
    r"context[ _]length|maximum context|context size|context window|too many tokens"
    r"|prompt is too long|exceed_context",
    re.IGNORECASE,
)

JSON = dict[str, Any]


class OpenAIBackend(Backend):
    """Chat completions over HTTP with retries, candidate top-up and SSE streaming."""

    def __init__(
        self,
        base_url: str,
        model: str = "",
        *,
        spec: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = float(timeout)
        self._max_retries = max(0, int(max_retries))
        self._backoff = float(backoff)
        self._max_backoff = float(max_backoff)
        self._concurrency = max(1, int(concurrency))
        # Replaced in tests to observe the delays without waiting them out.
        self._sleep = time.sleep
        self._client = httpx.Client(
            timeout=httpx.Timeout(self._timeout, connect=float(connect_timeout)),
            headers=_auth_headers(_resolve_api_key(api_key), self.base_url),
        )
        context_window: int | None = None
        if not model:
            # Asked once, up front: `info` must name the model for logs and provenance.
            try:
                model, context_window = self._discover_model()
            except BaseException:
                self._client.close()
                raise
        self.model = model
        self.info = BackendInfo(
            spec=spec or f"openai:{self.base_url}#{model}",
            model=model,
            context_window=context_window,
            details={"url": self.base_url},
        )

    @classmethod
    def from_spec(
        cls,
        spec: ModelSpec,
        *,
        api_key: str | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        max_retries: int | None = None,
        backoff: float | None = None,
        max_backoff: float | None = None,
        concurrency: int | None = None,
        **_ignored: object,
    ) -> OpenAIBackend:
        """Build from an `openai:URL#MODEL` spec; `None` options keep their defaults."""
        if spec.kind != "openai":
            raise ValueError(f"OpenAIBackend needs an 'openai:' spec, got {str(spec)!r}")
        given = {
            "timeout": timeout,
            "connect_timeout": connect_timeout,
            "max_retries": max_retries,
            "backoff": backoff,
            "max_backoff": max_backoff,
            "concurrency": concurrency,
        }
        options: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        return cls(spec.target, spec.model, spec=str(spec), api_key=api_key, **options)

    # ----------------------------------------------------------------------------- generation

    def generate(
        self,
        conversations: Sequence[Conversation],
        sampling: Sampling = Sampling(),  # noqa: B008 -- frozen, as in Backend
    ) -> list[list[Completion]]:
        if len(conversations) <= 1 or self._concurrency == 1:
            # No pool for the common single-conversation call: threads would only add latency.
            return [self._candidates(c, sampling) for c in conversations]
        workers = min(self._concurrency, len(conversations))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ledex-openai") as pool:
            futures = [pool.submit(self._candidates, c, sampling) for c in conversations]
            return [f.result() for f in futures]

    def _candidates(self, conversation: Conversation, sampling: Sampling) -> list[Completion]:
        """Exactly `sampling.n` completions, topping up when the server returns fewer choices."""
        completions: list[Completion] = []
        while len(completions) < sampling.n:
            missing = sampling.n - len(completions)
            seed = sampling.seed_for(len(completions))
            body = self._payload(conversation, sampling, n=missing, seed=seed)
            reply = self._post_json("/chat/completions", body)
            completions.extend(_parse_choices(reply, self.base_url)[:missing])
        return completions

    def _payload(
        self, conversation: Conversation, sampling: Sampling, *, n: int, seed: int | None
    ) -> JSON:
        body: JSON = {
            "model": self.model,
            "messages": [dict(m) for m in conversation],
            "n": n if n > 1 else None,  # n=1 is everyone's default; some APIs reject the field
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": seed,
            "stop": list(sampling.stop) or None,
        }
        return {k: v for k, v in body.items() if v is not None and v != ""}

    # ------------------------------------------------------------------------------ streaming

    def stream(
        self,
        conversation: Conversation,
        sampling: Sampling = Sampling(),  # noqa: B008 -- frozen, as in Backend
    ) -> Generator[str, None, None]:
        body = self._payload(conversation, sampling, n=1, seed=sampling.seed_for(0))
        body["stream"] = True
        url = self._url("/chat/completions")
        for data in self._sse_events(url, body):
            if data.strip() == "[DONE]":
                return
            piece = _delta_text(_decode_json(data, url), url)
            if piece:
                yield piece

    def _sse_events(self, url: str, body: JSON) -> Generator[str, None, None]:
        """The `data` payload of each Server-Sent Event of a streamed reply."""
        for attempt in range(self._max_retries + 1):
            started = False
            try:
                with self._client.stream("POST", url, json=body) as response:
                    if self._should_retry(response, attempt):
                        continue
                    if response.status_code != 200:
                        response.read()
                        raise _http_error(response, url, attempts=attempt + 1)
                    started = True
                    yield from _parse_sse(response.iter_lines())
                    return
            except httpx.TransportError as exc:
                if started:
                    # Retrying after the first byte would replay text the caller already has.
                    raise _transport_error(exc, url, self._timeout) from exc
                self._retry_or_raise(exc, attempt, url)
        raise AssertionError("unreachable: the last attempt returns or raises")

    # ---------------------------------------------------------------------------------- HTTP

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _discover_model(self) -> tuple[str, int | None]:
        url = self._url("/models")
        listing = self._request_json("GET", url, None)
        data = listing.get("data")
        if not isinstance(data, list):
            raise _invalid(url, json.dumps(listing))
        for entry in data:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"]:
                window = entry.get("max_model_len")  # vLLM reports it; others do not
                return entry["id"], window if isinstance(window, int) else None
        raise BackendResponseError(
            f"model server at {self.base_url} lists no models; "
            f"name one in the spec, e.g. 'openai:{self.base_url}#MODEL'"
        )

    def _post_json(self, path: str, body: JSON) -> JSON:
        return self._request_json("POST", self._url(path), body)

    def _request_json(self, method: str, url: str, body: JSON | None) -> JSON:
        """One JSON request with retries on 429, 5xx and connection failures."""
        for attempt in range(self._max_retries + 1):
            try:
                response = self._client.request(method, url, json=body)
            except httpx.TransportError as exc:
                self._retry_or_raise(exc, attempt, url)
                continue
            if self._should_retry(response, attempt):
                continue
            if response.status_code != 200:
                raise _http_error(response, url, attempts=attempt + 1)
            return _decode_json(response.text, url)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _should_retry(self, response: httpx.Response, attempt: int) -> bool:
        """Sleep and say so when the status is worth another attempt and attempts remain."""
        retryable = response.status_code == 429 or response.status_code >= 500
        if not retryable or attempt >= self._max_retries:
            return False
        self._sleep(self._delay(attempt, response.headers.get("retry-after")))
        return True

    def _retry_or_raise(self, exc: httpx.TransportError, attempt: int, url: str) -> None:
        # A read timeout means the server is alive but slow: retrying would queue the same
        # expensive generation again, so it fails at once.
        if isinstance(exc, httpx.ReadTimeout) or attempt >= self._max_retries:
            raise _transport_error(exc, url, self._timeout) from exc
        self._sleep(self._delay(attempt, None))

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Exponential backoff with jitter, or the server's `Retry-After`, capped either way."""
        asked = _retry_after_seconds(retry_after)
        if asked is not None:
            return min(asked, self._max_backoff)
        exponential = min(self._backoff * (2**attempt), self._max_backoff)
        # Jitter spreads out clients that failed together so they do not retry in lockstep.
        return exponential * random.uniform(0.5, 1.0)

    def close(self) -> None:
        self._client.close()


# ---------------------------------------------------------------------------- response parsing


def _parse_choices(reply: JSON, url: str) -> list[Completion]:
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _invalid(url, json.dumps(reply))
    usage = reply.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    prompt_tokens = _int_or_none(usage.get("prompt_tokens"))
    # Usage is per request, not per choice: a completion count is exact only for one choice.
    completion_tokens = _int_or_none(usage.get("completion_tokens")) if len(choices) == 1 else None
    ordered = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
    return [_completion(c, url, prompt_tokens, completion_tokens) for c in ordered]


def _completion(
    choice: object, url: str, prompt_tokens: int | None, completion_tokens: int | None
) -> Completion:
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or not isinstance(message, dict):
        raise _invalid(url, json.dumps(choice))
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise _invalid(url, json.dumps(choice))
    return Completion(
        text=content or "",
        finish_reason=_finish_reason(choice.get("finish_reason")),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


def _finish_reason(raw: object) -> FinishReason:
    # Anything but "length" (stop, eos, content_filter, tool_calls, null) ended on its own terms.
    return "length" if raw == "length" else "stop"


def _delta_text(chunk: JSON, url: str) -> str:
    if "error" in chunk:  # vLLM reports failures mid-stream as a data event
        raise _error_from_payload(chunk, url, status=None)
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise _invalid(url, json.dumps(chunk))
    if not choices:  # the usage-only chunk some servers send last
        return ""
    delta = choices[0].get("delta") if isinstance(choices[0], dict) else None
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


def _parse_sse(lines: Iterator[str]) -> Generator[str, None, None]:
    """Server-Sent Events: `data:` lines accumulate until a blank line ends the event."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith(":"):
            continue  # keep-alive comment
        elif line.startswith("data:"):
            value = line[len("data:") :]
            data.append(value[1:] if value.startswith(" ") else value)
        # other fields (event:, id:, retry:) carry nothing for chat completions
    if data:
        yield "\n".join(data)


def _decode_json(text: str, url: str) -> JSON:
    try:
        value = json.loads(text)
    except ValueError:
        raise _invalid(url, text) from None
    if not isinstance(value, dict):
        raise _invalid(url, text)
    return value


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ---------------------------------------------------------------------------------- errors


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[:EXCERPT_CHARS] + "..."


def _invalid(url: str, body: str) -> BackendResponseError:
    return BackendResponseError(
        f"model server at {_base(url)} returned an invalid response: {_excerpt(body) or '(empty)'}"
    )


def _base(url: str) -> str:
    """The base URL a user configured, from an endpoint URL, for messages."""
    for suffix in ("/chat/completions", "/models"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


def _server_message(payload: object) -> str | None:
    """The human message in an error body: OpenAI, vLLM, llama.cpp and Ollama shapes."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    for value in (error, payload.get("message"), payload.get("detail")):
        if isinstance(value, str):
            return value
    return None


def _http_error(response: httpx.Response, url: str, attempts: int = 1) -> LedexError:
    try:
        payload: object = response.json()
    except ValueError:
        payload = None
    message = _server_message(payload) or response.text
    return _error_for(response.status_code, message, url, attempts)


def _error_from_payload(payload: JSON, url: str, status: int | None) -> LedexError:
    return _error_for(status, _server_message(payload) or json.dumps(payload), url)


def _error_for(status: int | None, message: str, url: str, attempts: int = 1) -> LedexError:
    base = _base(url)
    if status in (400, 413, None) and _CONTEXT_OVERFLOW.search(message):
        return ContextOverflow(
            f"model server at {base} rejected the conversation as too long for the model's "
            f"context window: {_excerpt(message)}"
        )
    if status in (401, 403):
        return BackendResponseError(
            f"model server at {base} refused the API key (HTTP {status}); set it with "
            f"{API_KEY_ENV_VARS[0]} or OPENAI_API_KEY (over plain http a key is sent only to "
            f"this machine, unless {KEY_OVER_HTTP_ENV}=1): {_excerpt(message)}"
        )
    if status == 404:
        return BackendResponseError(
            f"model server at {base} answered HTTP 404 for {url}; check that the URL ends in "
            f"/v1 and names a model it serves: {_excerpt(message)}"
        )
    label = f"HTTP {status}" if status is not None else "an error"
    tries = f" {attempts} times" if attempts > 1 else ""
    return BackendResponseError(
        f"model server at {base} answered {label}{tries}: {_excerpt(message) or '(empty body)'}"
    )


def _transport_error(exc: httpx.TransportError, url: str, timeout: float) -> BackendUnavailable:
    base = _base(url)
    if isinstance(exc, httpx.ReadTimeout):
        return BackendUnavailable(
            f"model server at {base} did not answer within {timeout:g} s; "
            "raise the timeout or ask for fewer tokens"
        )
    return BackendUnavailable(
        f"model server at {base} is unreachable ({_describe(exc)}); is it running?"
    )


def _describe(exc: httpx.TransportError) -> str:
    text = str(exc).lower()
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out"
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename" in text or "getaddrinfo" in text:
        return "host not found"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return "connection closed unexpectedly"
    return _excerpt(str(exc)) or type(exc).__name__


def _retry_after_seconds(value: str | None) -> float | None:
    # Only the delta-seconds form; an HTTP date falls back to the exponential backoff.
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


# -------------------------------------------------------------------------------- API key


def _resolve_api_key(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    for name in API_KEY_ENV_VARS:
        if os.environ.get(name):
            return os.environ[name]
    return None


def _auth_headers(api_key: str | None, base_url: str) -> dict[str, str]:
    """The key only over https or to this machine, unless the user allows plain http: an
    OPENAI_API_KEY set for a hosted API must not travel readable to a server on the network."""
    if not api_key:
        return {}
    if not _key_may_travel(base_url):
        log.warning(
            "not sending the API key to %s: plain http to another machine would show it to the "
            "network; use https, or set %s=1 to send it anyway", base_url, KEY_OVER_HTTP_ENV,
        )  # fmt: skip
        return {}
    return {"Authorization": f"Bearer {api_key}"}


def _key_may_travel(base_url: str) -> bool:
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL:
        return False
    if url.scheme == "https" or os.environ.get(KEY_OVER_HTTP_ENV) == "1":
        return True
    host = url.host.strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


__all__ = ["OpenAIBackend"]
