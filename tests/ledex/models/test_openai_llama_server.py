"""The `openai:` backend against a real OpenAI-compatible server: llama-cpp-python's own server
process serving the embedded SmolLM2 on loopback (the protocol users meet with llama.cpp, vLLM
and Ollama)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ledex.errors import BackendUnavailable
from ledex.models import Sampling, load_backend
from ledex.models.openai_http import OpenAIBackend

COUNT = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(smollm2_path: Path, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path),
        "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_discovers_the_model_and_generates_n_candidates(llama_server):
    with load_backend(f"openai:{llama_server}") as backend:
        assert isinstance(backend, OpenAIBackend)
        assert backend.info.model == "smollm2"
        results = backend.generate([COUNT, COUNT], Sampling(n=2, max_tokens=8, seed=5))
        assert [len(r) for r in results] == [2, 2]
        assert all(c.text for r in results for c in r)
        assert all(c.truncated for r in results for c in r)


def test_streams_the_same_text_as_a_plain_request(llama_server):
    with load_backend(f"openai:{llama_server}#smollm2") as backend:
        sampling = Sampling(max_tokens=16, temperature=0, seed=1)
        streamed = "".join(backend.stream(COUNT, sampling))
        (completions,) = backend.generate([COUNT], sampling)
        assert streamed and streamed == completions[0].text


def test_a_stopped_server_is_a_clear_error():
    port = _free_port()
    with pytest.raises(BackendUnavailable, match=rf"127.0.0.1:{port}/v1 is unreachable"):
        load_backend(f"openai:http://127.0.0.1:{port}/v1#m", max_retries=0).generate([COUNT])
