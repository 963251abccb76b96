"""Tokens per second of prompt processing and decoding for embedded models on this machine, and
the overhead of the `openai:` backend over a raw HTTP round trip, all measured in one run.

    python benchmarks/model_speed.py [--models 1.5b smollm2-135m] [--trials 3] [--requests 200]

Prompt speed: a ~PROMPT_WORDS-word prompt answered with one token, prompt tokens over seconds.
Decode speed: the same prompt answered with up to DECODE_TOKENS tokens; the extra tokens over the
extra seconds. The KV cache is cleared before every trial so no trial reuses another's prompt.
Ratios are against the first model named (measured in the same run, since these machines are
noisy); medians over the trials.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":  # run as a script: make `ledex` and `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import openai_overhead
from ledex.models import Sampling, load_backend
from ledex.models.embedded import EmbeddedBackend

PROMPT_WORDS = 400
DECODE_TOKENS = 96


@dataclass
class Speed:
    model: str
    prompt_tokens: int
    prompt_tps: float
    decode_tps: float


def _conversation(seed: int) -> list[dict[str, str]]:
    words = random.Random(seed).choices(["alpha", "beta", "gamma", "delta", "value", "index"], k=PROMPT_WORDS)
    text = " ".join(words)
    return [{"role": "user", "content": f"Here is a list of words: {text}\nWrite a long story about them."}]


def _timed(backend: EmbeddedBackend, conversation: list, max_tokens: int) -> tuple[float, int, int]:
    assert backend._llama is not None
    backend._llama.reset()  # no prompt reuse between trials
    started = time.perf_counter()
    (completions,) = backend.generate([conversation], Sampling(max_tokens=max_tokens, temperature=0))
    elapsed = time.perf_counter() - started
    return elapsed, completions[0].prompt_tokens or 0, completions[0].completion_tokens or 0


def measure_model(name: str, trials: int) -> Speed:
    with load_backend(f"embedded:{name}") as backend:
        assert isinstance(backend, EmbeddedBackend)
        _timed(backend, _conversation(-1), 4)  # warm-up: page the weights in
        prompt_rates, decode_rates, prompt_tokens = [], [], 0
        for trial in range(trials):
            conversation = _conversation(trial)
            prompt_s, prompt_tokens, _ = _timed(backend, conversation, 1)
            total_s, _, generated = _timed(backend, conversation, DECODE_TOKENS)
            prompt_rates.append(prompt_tokens / prompt_s)
            decode_rates.append((generated - 1) / max(total_s - prompt_s, 1e-9))
    return Speed(name, prompt_tokens, statistics.median(prompt_rates), statistics.median(decode_rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["1.5b", "smollm2-135m"])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    speeds = [measure_model(name, args.trials) for name in args.models]
    base = speeds[0]
    print(f"embedded models (llama.cpp, {PROMPT_WORDS}-word prompt, up to {DECODE_TOKENS} new tokens, "
          f"median of {args.trials})")  # fmt: skip
    print(f"  {'model':<16}{'prompt tok':>11}{'prompt tok/s':>14}{'decode tok/s':>14}{'prompt x':>10}{'decode x':>10}")
    for speed in speeds:
        print(
            f"  {speed.model:<16}{speed.prompt_tokens:>11}{speed.prompt_tps:>14.1f}{speed.decode_tps:>14.1f}"
            f"{speed.prompt_tps / base.prompt_tps:>10.2f}{speed.decode_tps / base.decode_tps:>10.2f}"
        )
    print()
    overhead = openai_overhead.measure(args.requests)
    openai_overhead._print_table(overhead)


if __name__ == "__main__":
    main()
