"""The embedded backend on the real SmolLM2 GGUF, through llama.cpp."""

from __future__ import annotations

import pytest

from ledex.errors import ContextOverflow, WeightsError
from ledex.models import Sampling, load_backend
from ledex.models.embedded import EmbeddedBackend

HELLO = [{"role": "user", "content": "Say hello."}]
COUNT = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Count from 1 to 20, separated by commas."},
]


def test_spec_builds_the_embedded_backend(smollm2_backend):
    assert isinstance(smollm2_backend, EmbeddedBackend)
    assert smollm2_backend.info.model == "smollm2-135m-instruct-q4_1.gguf"
    # the chat template comes from the GGUF itself, not a guess by name
    assert smollm2_backend._llama.chat_format == "chat_template.default"


def test_count_tokens_in_the_models_vocabulary(smollm2_backend):
    text = "def add(a, b):\n    return a + b\n"
    count = smollm2_backend.count_tokens(text)
    assert 5 < count < len(text)
    assert smollm2_backend.count_tokens(text * 2) == 2 * count


def test_n_candidates_per_conversation_in_order(smollm2_backend):
    results = smollm2_backend.generate([HELLO, COUNT], Sampling(n=3, max_tokens=12, seed=7))
    assert [len(r) for r in results] == [3, 3]
    assert all(c.text and c.prompt_tokens and c.completion_tokens for r in results for c in r)
    # distinct seeds per candidate: sampling at T=0.8 gives at least two different texts
    assert len({c.text for c in results[1]}) > 1


def test_seeded_generation_is_reproducible(smollm2_backend):
    sampling = Sampling(n=2, max_tokens=16, seed=123, temperature=1.0)
    first = smollm2_backend.generate([COUNT], sampling)
    second = smollm2_backend.generate([COUNT], sampling)
    assert [c.text for c in first[0]] == [c.text for c in second[0]]


def test_token_budget_is_reported_as_truncation(smollm2_backend):
    (completions,) = smollm2_backend.generate([COUNT], Sampling(max_tokens=4, temperature=0))
    assert completions[0].truncated
    assert completions[0].completion_tokens == 4


def test_stop_sequences(smollm2_backend):
    (completions,) = smollm2_backend.generate(
        [COUNT], Sampling(max_tokens=60, temperature=0, stop=("5",))
    )
    assert "5" not in completions[0].text and "4" in completions[0].text


def test_stream_matches_greedy_generate(smollm2_backend):
    sampling = Sampling(max_tokens=24, temperature=0)
    pieces = list(smollm2_backend.stream(COUNT, sampling))
    assert len(pieces) > 3
    (completions,) = smollm2_backend.generate([COUNT], sampling)
    assert "".join(pieces) == completions[0].text


def test_one_candidate_at_a_time_samples_what_a_batch_would(smollm2_backend):
    # the repair loop streams a sequential backend's candidates one by one with seed_for(index)
    assert smollm2_backend.info.sequential
    sampling = Sampling(n=2, max_tokens=16, seed=11, temperature=1.0)
    (batch,) = smollm2_backend.generate([COUNT], sampling)
    one = Sampling(n=1, max_tokens=16, seed=sampling.seed_for(1), temperature=1.0)
    assert "".join(smollm2_backend.stream(COUNT, one)) == batch[1].text


def test_a_stream_closed_early_leaves_the_backend_usable(smollm2_backend):
    sampling = Sampling(max_tokens=24, temperature=0)
    pieces = smollm2_backend.stream(COUNT, sampling)
    next(pieces), next(pieces)
    pieces.close()  # the repair loop stops reading once the code block is complete
    (completions,) = smollm2_backend.generate([COUNT], sampling)
    assert completions[0].text == "".join(smollm2_backend.stream(COUNT, sampling))


def test_a_prompt_over_the_context_window_is_a_clear_error(smollm2_path):
    with load_backend("embedded:smollm2-135m", n_ctx=256) as backend:
        long = [{"role": "user", "content": "word " * 400}]
        with pytest.raises(ContextOverflow, match="context window of 256 tokens"):
            backend.generate([long], Sampling(max_tokens=8))
        with pytest.raises(ContextOverflow):
            list(backend.stream(long, Sampling(max_tokens=8)))
        # and the backend still works afterwards
        assert backend.generate([HELLO], Sampling(max_tokens=4))[0][0].text


def test_a_gguf_path_works_as_spec(smollm2_path):
    with load_backend(f"embedded:{smollm2_path}", n_ctx=512) as backend:
        assert backend.generate([HELLO], Sampling(max_tokens=4, temperature=0))[0][0].text


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("embedded:/nowhere/model.gguf", "GGUF file not found"),
        ("embedded:13b", "unknown embedded model '13b'"),
        ("embedded:smollm2-135m+/nowhere/lora.gguf", "LoRA adapter not found"),
    ],
)
def test_bad_specs_are_clear_errors(smollm2_path, spec, message):
    with pytest.raises(WeightsError, match=message):
        load_backend(spec)


def test_a_file_that_is_not_gguf_is_a_clear_error(tmp_path):
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"not a model at all" * 100)
    with pytest.raises(WeightsError, match="llama.cpp could not load"):
        load_backend(f"embedded:{bogus}")
