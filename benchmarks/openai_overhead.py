"""What the `openai:` backend costs on top of a bare HTTP round trip.

Against the loopback server (a fixed short reply, answered at once) it times `requests` raw
`httpx.Client.post` calls of the very request body the backend sends, then `requests`
`OpenAIBackend.generate` calls (n=1, one conversation), and reports both medians and their ratio.
Server time is the same in both, so the ratio bounds the backend's own overhead from above.

    python benchmarks/openai_overhead.py [REQUESTS]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __name__ == "__main__":  # run as a script: make `ledex` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from ledex.models.base import Sampling
from ledex.models.openai_http import OpenAIBackend
from tests.support.openai_loopback import LoopbackServer

MODEL = "loopback-model"
CONVERSATION = [{"role": "user", "content": "Why does `sum(range(3))` return 3?"}]
SAMPLING = Sampling(n=1, temperature=0.0, max_tokens=64, seed=0)
WARMUP = 10


def _median_seconds(call: Callable[[], object], requests: int) -> float:
    for _ in range(WARMUP):  # open the keep-alive connection, warm caches
        call()
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(requests: int = 200) -> dict[str, float]:
    """Median seconds per request for raw httpx and for the backend, and their ratio."""
    with (
        LoopbackServer(reply=lambda messages, params: "It adds 0 + 1 + 2.") as server,
        OpenAIBackend(server.url, MODEL) as backend,
        httpx.Client(timeout=httpx.Timeout(120.0, connect=5.0)) as client,
    ):
        # The same body the backend sends, so the two loops differ only in the backend.
        body = backend._payload(CONVERSATION, SAMPLING, n=1, seed=SAMPLING.seed)
        url = f"{server.url}/chat/completions"

        def raw() -> object:
            response = client.post(url, json=body)
            response.raise_for_status()
            return response.json()

        raw_s = _median_seconds(raw, requests)
        backend_s = _median_seconds(lambda: backend.generate([CONVERSATION], SAMPLING), requests)
    return {
        "requests": float(requests),
        "raw_median_s": raw_s,
        "backend_median_s": backend_s,
        "overhead_ratio": backend_s / raw_s,
    }


def _print_table(result: dict[str, float]) -> None:
    print(f"{int(result['requests'])} requests each, loopback server, median per request")
    print(f"  {'raw httpx.Client.post':<28}{result['raw_median_s'] * 1e6:>10.0f} us")
    print(f"  {'OpenAIBackend.generate':<28}{result['backend_median_s'] * 1e6:>10.0f} us")
    print(f"  {'overhead ratio':<28}{result['overhead_ratio']:>10.2f} x")


if __name__ == "__main__":
    _print_table(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
