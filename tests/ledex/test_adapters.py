"""Shipped LoRA adapters by name (`embedded:NAME`): verified like the base weights, bound to the
base model's hash, loaded by llama.cpp on top of the verified base.

The adapter is a real GGUF LoRA adapter for the real SmolLM2, in the layout `ledex-train export`
writes (llama.cpp's converter: `general.type=adapter`, `adapter.type=lora`, `blk.N.*.lora_a/b`);
it is written here directly with `gguf` (seeded weights, so it surely changes the output) because
training one takes minutes; tests/trainer/test_export.py runs that real pipeline end to end. It is
registered in `ADAPTERS` with its folder monkeypatched, as the shipped entry will be.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ledex import cli, weights
from ledex.errors import ModelSpecError, WeightsError
from ledex.models import Sampling, load_backend
from ledex.weights import ShippedAdapter

BASE = "smollm2-135m"
NAME = "smollm2-test-lora"
PROMPT = [{"role": "user", "content": "Write a Python function that adds two numbers."}]
GREEDY = Sampling(max_tokens=16, temperature=0, seed=0)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "buggy_inventory"


def _write_lora(base: Path, out: Path, rank: int = 4) -> Path:
    """A LoRA adapter on every block's attn_q and attn_output (both n_embd x n_embd)."""
    import llama_cpp
    from gguf import GGUFWriter, Keys

    # the base's shape from its metadata (vocab_only: quick; gguf's reader parses the whole vocab)
    meta = llama_cpp.Llama(str(base), vocab_only=True, verbose=False)
    blocks, n_embd = int(meta.metadata["llama.block_count"]), int(meta.metadata["llama.embedding_length"])
    meta.close()
    rng = np.random.default_rng(0)
    writer = GGUFWriter(out, arch="llama")
    writer.add_type("adapter")
    writer.add_string(Keys.Adapter.TYPE, "lora")
    writer.add_float32(Keys.Adapter.LORA_ALPHA, float(2 * rank))
    for block in range(blocks):
        for target in ("attn_q", "attn_output"):
            name = f"blk.{block}.{target}.weight"
            # numpy order (rows, columns): lora_a is (rank, n_in), lora_b is (n_out, rank)
            writer.add_tensor(f"{name}.lora_a", rng.normal(0, 0.1, (rank, n_embd)).astype(np.float32))
            writer.add_tensor(f"{name}.lora_b", rng.normal(0, 0.1, (n_embd, rank)).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def _entry(path: Path, **changes: object) -> ShippedAdapter:
    data = path.read_bytes()
    fields: dict = dict(
        name=NAME, base=BASE, filename=path.name, size=len(data),
        sha256=hashlib.sha256(data).hexdigest(), base_sha256=weights.MODELS[BASE].sha256,
        description="a test adapter", license="Apache-2.0", card=f"{NAME}.md",
    )  # fmt: skip
    fields.update(changes)
    return ShippedAdapter(**fields)


def _register(mp: pytest.MonkeyPatch, folder: Path, entry: ShippedAdapter) -> None:
    mp.setattr(weights, "adapters_dir", lambda: folder)
    mp.setitem(weights.ADAPTERS, entry.name, entry)


@pytest.fixture(scope="module")
def lora(tmp_path_factory, smollm2_path) -> Path:
    return _write_lora(smollm2_path, tmp_path_factory.mktemp("lora") / "plain.gguf")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, lora, smollm2_path) -> Iterator[ShippedAdapter]:
    """The adapter registered in a package folder of its own; markers in a private cache, the base
    model in the real one (where `make test` installed it)."""
    folder = tmp_path_factory.mktemp("adapters")
    shutil.copy(lora, folder / f"{NAME}.gguf")
    entry = _entry(folder / f"{NAME}.gguf")
    with pytest.MonkeyPatch.context() as mp:
        models = weights.models_dir()
        mp.setenv("LEDEX_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        mp.setattr(weights, "models_dir", lambda: models)
        _register(mp, folder, entry)
        yield entry


def _greedy(spec: str) -> tuple[str, dict[str, str]]:
    with load_backend(spec, n_ctx=512) as backend:
        return backend.generate([PROMPT], GREEDY)[0][0].text, backend.info.details


def test_loads_by_name_the_verified_base_with_the_adapter(shipped, lora, smollm2_path, smollm2_backend):
    by_name, details = _greedy(f"embedded:{NAME}")
    by_path, _ = _greedy(f"embedded:{BASE}+{lora}")
    base = smollm2_backend.generate([PROMPT], GREEDY)[0][0].text
    assert by_name == by_path
    assert by_name != base  # the adapter is applied, not ignored
    assert details == {"path": str(smollm2_path), "adapter": str(weights.adapter_path(shipped))}
    assert weights.adapter_is_verified(shipped)  # the marker spares the hash next time


def test_a_tampered_adapter_is_refused(shipped, tmp_path, monkeypatch):
    folder = tmp_path / "adapters"
    folder.mkdir()
    path = folder / shipped.filename
    shutil.copy(weights.adapter_path(shipped), path)
    _register(monkeypatch, folder, shipped)
    assert weights.locate_adapter(shipped) == path
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, one weight changed: only the hash can tell
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupt or modified .*reinstall ledex"):
        load_backend(f"embedded:{NAME}")
    assert not weights.adapter_is_installed(shipped)
    path.write_bytes(bytes(data[:-10]))
    with pytest.raises(WeightsError, match=r"corrupt or modified \(size"):
        weights.locate_adapter(shipped)
    path.unlink()
    with pytest.raises(WeightsError, match="is missing .*reinstall ledex"):
        load_backend(f"embedded:{NAME}")
    assert cli.main(["model", "verify", NAME]) == 1


def test_an_adapter_made_for_other_base_weights_is_refused(shipped, monkeypatch, capsys):
    monkeypatch.setitem(weights.ADAPTERS, NAME, _entry(weights.adapter_path(shipped), base_sha256="0" * 64))
    with pytest.raises(WeightsError, match="trained on a base model with SHA-256 000000000000.*garbage"):
        load_backend(f"embedded:{NAME}")
    assert cli.main(["model", "path", NAME]) == 1
    assert "garbage" in capsys.readouterr().err
    # `ledex fix --model NAME` takes the name the same way (its tests run, then the model loads)
    fix = ["fix", str(EXAMPLE), "--model", f"embedded:{NAME}", "--python", sys.executable]
    assert cli.main(fix) == 2
    assert "garbage" in capsys.readouterr().err.splitlines()[-1]


def test_one_adapter_only(shipped, lora):
    with pytest.raises(ModelSpecError, match="already a LoRA adapter"):
        load_backend(f"embedded:{NAME}+{lora}")


def test_where_a_base_model_is_needed_the_name_says_what_it_is(shipped):
    with pytest.raises(WeightsError, match=f"shipped LoRA adapter '{NAME}' .* use embedded:{BASE}"):
        weights.resolve(f"embedded:{NAME}")  # the trainer's --model goes through this


def test_model_commands_by_name(shipped, smollm2_path, capsys):
    assert cli.main(["model", "list"]) == 0
    listing = capsys.readouterr().out
    assert "shipped LoRA adapters" in listing
    row = next(line for line in listing.splitlines() if NAME in line)
    assert BASE in row and "yes" in row and "a test adapter" in row
    assert cli.main(["model", "verify", f"embedded:{NAME}"]) == 0
    out = capsys.readouterr().out
    assert f"{BASE}: SHA-256 OK" in out and f"{NAME}: SHA-256 OK" in out
    assert cli.main(["model", "path", NAME]) == 0
    printed = capsys.readouterr()
    assert printed.out == f"{weights.adapter_path(shipped)}\n"  # bare, for scripts
    assert printed.err == f"LoRA adapter on the embedded model {BASE}: {smollm2_path}\n"
    assert cli.main(["model", "install", NAME]) == 0  # the base is there: nothing to download
    assert capsys.readouterr().out.splitlines() == [
        f"{BASE} is installed: {smollm2_path}",
        f"{NAME}: adapter verified: {weights.adapter_path(shipped)}",
    ]

