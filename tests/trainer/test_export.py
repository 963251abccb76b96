"""`ledex-train export`, the full round trip on the real SmolLM2: train LoRA steps on the model loaded
from its GGUF by transformers -> export -> generate through llama.cpp (`embedded:...+adapter.gguf`),
transformers + PEFT (`hf:BASE+lora`) and the merged safetensors (`hf:merged`)."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from ledex.models import Sampling, load_backend
from tests.trainer.conftest import make_trajectory
from trainer import chat_data, export, modeling, sft
from trainer.records import append_jsonl

GREEDY = Sampling(max_tokens=16, temperature=0, seed=0)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, smollm2_path) -> Path:
    """Three LoRA steps on SmolLM2 with a large learning rate, so the adapter surely changes output."""
    root = tmp_path_factory.mktemp("export")
    data = root / "collect" / "trajectories.jsonl"
    append_jsonl(data, [make_trajectory(i) for i in range(2)])
    out = root / "sft"
    argv = [
        "--data", str(data), "--model", "embedded:smollm2-135m", "--output_dir", str(out),
        "--max_steps", "3", "--learning_rate", "2e-2", "--warmup_steps", "0",
        "--lr_scheduler_type", "constant", "--per_device_train_batch_size", "1",
        "--lora_r", "8", "--lora_alpha", "16", "--gradient_checkpointing", "false",
        "--save_strategy", "no", "--logging_steps", "1", "--max_length", "512",
    ]  # fmt: skip
    assert sft.main(argv) == 0
    return out


@pytest.fixture(scope="module")
def exported(trained_run) -> dict[str, Path]:
    # the converter comes from llama-cpp-python's sdist: downloaded once into the ledex cache
    written = export.run_export(
        export.ExportArguments(run=str(trained_run), merged_dtype="float32")
    )
    return written


@pytest.fixture(scope="module")
def prompt() -> list[dict[str, str]]:
    return chat_data.to_example(make_trajectory(0))["prompt"]  # a prompt the adapter was trained on


def _greedy(spec: str, prompt) -> str:
    with load_backend(spec, n_ctx=1024) as backend:
        return backend.generate([prompt], GREEDY)[0][0].text


def test_run_records_its_gguf_base(trained_run):
    info = json.loads((trained_run / sft.RUN_INFO).read_text())
    assert info["base_model"] == "embedded:smollm2-135m"
    assert info["gguf_sha256"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert info["global_step"] == 3


def test_export_writes_three_formats_and_says_how_to_use_them(exported, trained_run, capsys):
    assert set(exported) == {"lora", "merged", "gguf"}
    assert (exported["lora"] / "adapter_config.json").is_file()
    assert (exported["lora"] / "adapter_model.safetensors").is_file()
    assert (exported["merged"] / "model.safetensors").is_file()
    assert "adapter_config.json" not in {p.name for p in exported["merged"].iterdir()}
    from gguf import GGUFReader

    reader = GGUFReader(exported["gguf"])
    fields = {name: reader.fields[name] for name in ("general.type", "adapter.type")}
    assert [bytes(f.parts[f.data[0]]).decode() for f in fields.values()] == ["adapter", "lora"]
    assert any(t.name.endswith(".lora_a") for t in reader.tensors)
    info = json.loads((trained_run / "export" / export.EXPORT_INFO).read_text())
    spec = f"embedded:smollm2-135m+{exported['gguf'].resolve()}"
    assert f"  ledex fix --model {spec}" in info["usage"]
    assert any("--enable-lora" in line for line in info["usage"])


def test_llama_cpp_runs_the_gguf_adapter_and_it_changes_the_output(exported, prompt):
    base = _greedy("embedded:smollm2-135m", prompt)
    adapted = _greedy(f"embedded:smollm2-135m+{exported['gguf']}", prompt)
    assert adapted != base, (base, adapted)


def test_every_export_generates_the_same_answer(exported, prompt, trained_run):
    """The GGUF adapter is the same function as the PEFT adapter and the merged model: their greedy
    answers agree (llama.cpp runs the 4-bit base, so compare the first words only)."""
    info = json.loads((trained_run / sft.RUN_INFO).read_text())
    base_folder = modeling.gguf_cache_folder(info["gguf_sha256"])
    with_peft = _greedy(f"hf:{base_folder}+{exported['lora']}", prompt)
    merged = _greedy(f"hf:{exported['merged']}", prompt)
    llama = _greedy(f"embedded:smollm2-135m+{exported['gguf']}", prompt)
    assert merged == with_peft
    assert llama.split()[:3] == with_peft.split()[:3], (llama, with_peft)


def test_bad_runs_are_clear_errors(tmp_path, capsys):
    assert export.main(["--run", str(tmp_path / "nowhere")]) == 1
    assert "no trained run at" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert export.main(["--run", str(tmp_path / "empty")]) == 1
    assert "neither a LoRA adapter" in capsys.readouterr().err
    assert export.main(["--run", str(tmp_path / "empty"), "--formats", "zip"]) == 1
    assert "unknown format" in capsys.readouterr().err


def test_a_full_finetune_exports_only_the_merged_model(tmp_path, tiny_model_dir, capsys):
    run = tmp_path / "full"
    shutil.copytree(tiny_model_dir, run)
    assert export.main(["--run", str(run), "--formats", "gguf"]) == 1
    assert "full fine-tune" in capsys.readouterr().err
    assert export.main(["--run", str(run), "--output_dir", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "merged" / "model.safetensors").is_file()
    assert "hf:" in capsys.readouterr().out


def test_a_tampered_sdist_is_refused(tmp_path):
    fake = tmp_path / "llama_cpp_python-0.3.36.tar.gz"
    with tarfile.open(fake, "w:gz") as tar:
        script = tmp_path / "convert_lora_to_gguf.py"
        script.write_text("print('not llama.cpp')\n")
        tar.add(script, arcname="llama_cpp_python-0.3.36/vendor/llama.cpp/convert_lora_to_gguf.py")
    with pytest.raises(export.ExportError, match="refusing to run its converter"):
        export._check_sdist(fake, "0.3.36")


def test_a_gguf_model_is_dequantised_once_and_cached_by_its_hash(tiny_model_dir, tmp_path, monkeypatch):
    """Any .gguf trains through transformers; the dequantised weights are cached as safetensors,
    keyed by the file's SHA-256 (the tiny model goes to GGUF with llama.cpp's own converter)."""
    import subprocess
    import sys

    import torch
    from transformers import AutoModelForCausalLM

    tools = export.converter_tools()
    gguf_file = tmp_path / "tiny.gguf"
    subprocess.run(
        [sys.executable, str(tools / "convert_hf_to_gguf.py"), str(tiny_model_dir),
         "--outfile", str(gguf_file), "--outtype", "f32"],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("LEDEX_CACHE_DIR", str(tmp_path / "cache"))
    conversions = []
    real_convert = modeling._convert
    monkeypatch.setattr(modeling, "_convert", lambda *a: (conversions.append(a), real_convert(*a)))

    first, tokenizer = modeling.load_model_and_tokenizer(str(gguf_file), use_cpu=True)
    second, _ = modeling.load_model_and_tokenizer(f"hf:{gguf_file}", use_cpu=True)
    assert len(conversions) == 1  # the second load read the cache
    folder = modeling.gguf_cache_folder(modeling.weights.sha256_file(gguf_file))
    assert (folder / "model.safetensors").is_file() and folder.parent == tmp_path / "cache" / "hf-from-gguf"
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    assert second.dtype == torch.float32 and getattr(second, "hf_quantizer", None) is None

    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.tensor([tokenizer.encode("def total(xs):\n    return sum(xs)")])
    with torch.no_grad():
        expected, actual = original(ids).logits, second(ids).logits
    assert torch.allclose(actual, expected, atol=0.15), (actual - expected).abs().max()  # bf16 cache
