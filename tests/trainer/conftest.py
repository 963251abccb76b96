"""Trainer fixtures: a tiny model built offline, and trajectories to train on.

`tiny_model_dir` is a randomly initialised 2-layer LLaMA (hidden size 64) saved as an HF folder with
SmolLM2's real tokenizer and ChatML chat template (read from the installed SmolLM2 GGUF), so it
loads with `from_pretrained`/`load_model_and_tokenizer` like any hub model and takes a training step
in milliseconds. Use SmolLM2 itself (`smollm2_path`) where a test needs a real model, e.g. to
check that llama.cpp runs an exported adapter.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.records import Trajectory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(str(smollm2_path.parent), gguf_file=smollm2_path.name)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        # larger than the usual 0.02, so that a LoRA adapter can move the logits within a few steps
        initializer_range=0.2,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_trajectory(index: int, *, passed: bool = True, style: str = "explain+refine") -> Trajectory:
    """A small, realistic verified (or failed) trajectory: an off-by-one in a sum."""
    return Trajectory(
        key=f"p{index}/abc/{style}/0",
        problem_id=f"p{index}",
        source="jsonl",
        task=f"Write a function `total_{index}(xs)` that returns the sum of xs.\n\n"
        f"Your code should pass these tests:\n\n```python\nassert total_{index}([1, 2]) == 3\n```",
        wrong_code=f"def total_{index}(xs):\n    return sum(xs[1:])",
        feedback=f"assert total_{index}([1, 2]) == 3\nAssertionError: got 2, expected 3",
        style=style,
        reply="",
        explanation="The slice xs[1:] skips the first element, so it is missing from the sum.",
        refinement=f"def total_{index}(xs):\n    return sum(xs)",
        passed=[passed],
        status="passed" if passed else "failed",
        teacher="test",
    )


@pytest.fixture
def trajectories_file(tmp_path: Path) -> Path:
    """A collect-style output folder's trajectories.jsonl: 4 verified records and 1 failed one."""
    from trainer.records import TRAJECTORIES_FILE, append_jsonl

    path = tmp_path / "collect" / TRAJECTORIES_FILE
    records = [make_trajectory(i) for i in range(4)] + [make_trajectory(9, passed=False)]
    append_jsonl(path, records)
    return path
