"""The transformers backend on the real SmolLM2 GGUF (dequantised by transformers), with and
without a PEFT LoRA adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledex.errors import WeightsError
from ledex.models import Sampling, load_backend
from ledex.models.hf import HFBackend

COUNT = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]


@pytest.fixture(scope="module")
def hf_backend(smollm2_path: Path):
    backend = load_backend(f"hf:{smollm2_path}")
    yield backend
    backend.close()


def test_generates_n_candidates_with_the_models_chat_template(hf_backend):
    assert isinstance(hf_backend, HFBackend)
    (completions,) = hf_backend.generate([COUNT], Sampling(n=2, max_tokens=10, seed=3))
    assert len(completions) == 2
    assert all(c.text and c.completion_tokens and c.prompt_tokens for c in completions)
    # the prompt went through the GGUF's chat template (SmolLM2 uses ChatML tags)
    rendered = hf_backend.tokenizer.apply_chat_template(COUNT, tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>assistant" in rendered


def test_greedy_is_deterministic_and_streams_the_same_text(hf_backend):
    sampling = Sampling(max_tokens=12, temperature=0)
    first = hf_backend.generate([COUNT], sampling)[0][0]
    second = hf_backend.generate([COUNT], sampling)[0][0]
    assert first.text == second.text
    assert first.truncated  # counting to 20 takes more than 12 tokens
    assert "".join(hf_backend.stream(COUNT, sampling)).strip() == first.text.strip()


def test_loads_a_peft_adapter(hf_backend, smollm2_path, tmp_path):
    from peft import LoraConfig, get_peft_model

    # A freshly initialised LoRA adapter (B = 0) must leave greedy output unchanged: proves the
    # adapter is loaded and applied without changing the prompt path.
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    peft_model = get_peft_model(hf_backend.model, config)
    peft_model.save_pretrained(tmp_path / "adapter")
    peft_model.unload()  # give the shared fixture its base model back
    with load_backend(f"hf:{smollm2_path}+{tmp_path / 'adapter'}") as adapted:
        assert isinstance(adapted, HFBackend)
        assert type(adapted.model).__name__ == "PeftModelForCausalLM"
        sampling = Sampling(max_tokens=8, temperature=0)
        assert adapted.generate([COUNT], sampling)[0][0].text == hf_backend.generate([COUNT], sampling)[0][0].text


def test_missing_files_are_clear_errors(smollm2_path, tmp_path):
    with pytest.raises(WeightsError, match="GGUF file not found"):
        load_backend(f"hf:{tmp_path / 'none.gguf'}")
    with pytest.raises(WeightsError, match="could not load"):
        load_backend(f"hf:{tmp_path}")
