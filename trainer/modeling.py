"""Loading the model a training stage starts from: one function shared by `sft`, `rl` and `export`.

`load_model_and_tokenizer(model)` takes the same names a user gives everywhere else:

- an HF folder or hub id (`Qwen/Qwen2.5-Coder-0.5B-Instruct`, `./runs/sft/merged`), also as `hf:PATH`;
- a `.gguf` file, dequantised by transformers (`gguf_file=`) into a trainable model;
- an embedded model by name: `embedded`, `embedded:0.5b`, `0.5b`, `smollm2-135m` (found with
  `ledex.weights.locate`, so it is the verified file).

Dequantising a GGUF takes a while (about a minute for the 1.5B model on 2 cores), so the first load
saves the result as safetensors (with the tokenizer and its chat template) in the ledex cache, keyed
by the GGUF's SHA-256: `~/.cache/ledex/hf-from-gguf/<sha[:16]>/`. Later loads, from any checkout,
read that folder. The transformers loading itself is `ledex.models.hf.load_pretrained`, the same
code the `hf:` backend uses, so a model trains and serves from the same weights.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledex import weights
from ledex.errors import WeightsError
from ledex.filelock import file_lock


@dataclass
class AdaptationArguments:
    """How `sft` and `rl` adapt the model: a LoRA adapter (the default) or all weights, and
    whether to continue an interrupted run. Shared by both stages' script arguments."""

    full_finetune: bool = field(
        default=False, metadata={"help": "train all weights instead of a LoRA adapter"}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "modules to adapt (default: all attention and MLP projections)"},
    )
    lora_layers: int | None = field(
        default=None,
        metadata={
            "help": "adapt only the last N transformer layers (default: all); the backward pass "
            "then stops at the first adapted layer, which makes CPU training much cheaper"
        },
    )
    resume: bool = field(
        default=True,
        metadata={"help": "continue from the last checkpoint in output_dir, if there is one"},
    )


GGUF_CACHE = "hf-from-gguf"
_DONE = "ledex-source.json"


@dataclass(frozen=True)
class ModelSource:
    """Where a model name points: an HF folder/hub id, or a GGUF file (with its SHA-256)."""

    name: str  # what the user wrote
    location: str  # HF folder or hub id, or the GGUF file path
    gguf_sha256: str | None = None  # set for GGUF files

    @property
    def is_gguf(self) -> bool:
        return self.gguf_sha256 is not None


def resolve_model(model: str) -> ModelSource:
    """Turn a user's model name into an HF location or a GGUF file, or raise a clear `WeightsError`."""
    name = model.strip()
    if not name:
        raise WeightsError("no model given; pass --model (an HF folder or hub id, a .gguf file, or embedded:0.5b)")
    text = name
    if text.startswith("hf:"):
        text = text[3:]
    elif text == "embedded" or text.startswith("embedded:"):
        text = text.partition(":")[2]
        if "+" in text:
            raise WeightsError(
                f"{name!r} names a GGUF LoRA adapter; training starts from a base model "
                "(drop the '+ADAPTER' part)"
            )
        if text.endswith(".gguf") or os.sep in text:
            return _gguf_source(name, Path(text).expanduser())
        return _embedded_source(name, text or None)
    path = Path(text).expanduser()
    if text.endswith(".gguf"):
        return _gguf_source(name, path)
    if path.exists():
        if not path.is_dir():
            raise WeightsError(f"{path} is neither a model folder nor a .gguf file")
        return ModelSource(name, str(path))
    if _is_embedded_name(text):
        return _embedded_source(name, text)
    if text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise WeightsError(
            f"model {name!r} not found: not a folder, a .gguf file, an embedded model "
            f"({', '.join(weights.MODELS)}) or a hub id (OWNER/NAME)"
        )
    return ModelSource(name, text)  # a hub id; transformers says if it cannot be fetched


def _is_embedded_name(text: str) -> bool:
    try:
        weights.resolve(text)
    except WeightsError:
        return False
    return True


def _embedded_source(name: str, embedded: str | None) -> ModelSource:
    entry = weights.resolve(embedded)
    path = weights.locate(entry.name)  # verified (hashed again if the file changed)
    return ModelSource(name, str(path), entry.sha256)


def _gguf_source(name: str, path: Path) -> ModelSource:
    if not path.is_file():
        raise WeightsError(f"GGUF file not found: {path}")
    for entry in weights.MODELS.values():  # an installed embedded file: its hash is known
        if path.resolve() == weights.model_path(entry).resolve() and weights.is_installed(entry):
            return ModelSource(name, str(path), entry.sha256)
    return ModelSource(name, str(path), _cached_sha256(path))


def _cached_sha256(path: Path) -> str:
    """SHA-256 of a GGUF file, remembered next to the cache by (path, size, mtime)."""
    stat = path.stat()
    index = weights.cache_dir() / GGUF_CACHE / "hashes.json"
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        known = json.loads(index.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return str(known[key])
    digest = weights.sha256_file(path)
    known[key] = digest
    with contextlib.suppress(OSError):
        index.parent.mkdir(parents=True, exist_ok=True)
        tmp = index.with_name(f".{index.name}.{os.getpid()}")
        tmp.write_text(json.dumps(known, indent=1))
        os.replace(tmp, index)
    return digest


def gguf_cache_folder(sha256: str) -> Path:
    return weights.cache_dir() / GGUF_CACHE / sha256[:16]


def default_dtype(use_cpu: bool = False) -> Any:
    """The weights' dtype: bfloat16 where a GPU will train, float32 on a CPU (there SFT may still
    compute in bf16 by autocast, `cpu_trains_faster_in_bf16`)."""
    import torch

    return torch.bfloat16 if (torch.cuda.is_available() and not use_cpu) else torch.float32


def cpu_trains_faster_in_bf16() -> bool:
    """True on a CPU with bf16 matrix instructions (AMX tiles or AVX-512-BF16).

    There bf16 autocast trains faster than float32: 3.1 s against 4.4 s for a 511-token LoRA step
    of the 0.5B on a 2-core Xeon with AMX (`benchmarks/train_speed.py`, session 11). Without them
    (AVX2 only) bf16 is emulated: a step on a 2-core AMD EPYC had not finished after 4 minutes,
    against 23 s in float32 (session 5). The weights stay float32 either way (autocast).
    """
    import torch

    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, so looked up
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def _as_dtype(dtype: Any) -> Any:
    if dtype is None or dtype == "auto" or not isinstance(dtype, str):
        return dtype
    import torch

    try:
        value = getattr(torch, dtype)
    except AttributeError:
        value = None
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16")
    return value


def load_model_and_tokenizer(
    model: str, *, dtype: Any = None, use_cpu: bool = False
) -> tuple[Any, Any]:
    """(model, tokenizer) ready for a TRL trainer.

    `dtype`: a torch dtype or its name; default bfloat16 on a GPU, float32 on a CPU (`use_cpu`).
    The tokenizer always has a pad token (eos when the model defines none) and a chat template
    (an error otherwise: ledex trains and serves conversations only).
    """
    from ledex.models.hf import load_pretrained

    source = resolve_model(model)
    wanted = _as_dtype(dtype) or default_dtype(use_cpu)
    if source.is_gguf:
        folder = ensure_gguf_converted(source)
        loaded, tokenizer = load_pretrained(str(folder), dtype=wanted)
    else:
        loaded, tokenizer = load_pretrained(source.location, dtype=wanted)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise WeightsError(
            f"{model!r} has no chat template; ledex trains on conversations rendered in the "
            "model's own template, so start from an instruct/chat model"
        )
    if loaded.generation_config is not None and loaded.generation_config.pad_token_id is None:
        loaded.generation_config.pad_token_id = tokenizer.pad_token_id
    return loaded, tokenizer


def ensure_gguf_converted(source: ModelSource) -> Path:
    """The safetensors folder of a GGUF model, converting it on first use (one process at a time)."""
    assert source.gguf_sha256
    folder = gguf_cache_folder(source.gguf_sha256)
    if (folder / _DONE).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(folder.with_name(folder.name + ".lock")):
        if (folder / _DONE).is_file():  # another process converted it meanwhile
            return folder
        _convert(source, folder)
    return folder


def _convert(source: ModelSource, folder: Path) -> None:
    import torch  # the caller has the [train] extra

    from ledex.models.hf import load_pretrained

    # bfloat16, the dtype these models were published in: half the size of float32; the rounding
    # of the dequantised 4-bit values is far below the quantisation error itself. Trainers cast to
    # the dtype they want on load.
    model, tokenizer = load_pretrained(source.location, dtype=torch.bfloat16)
    _forget_gguf_origin(model)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    staging.chmod(0o755)
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / _DONE).write_text(
            json.dumps({"gguf": source.location, "sha256": source.gguf_sha256}, indent=1)
        )
        shutil.rmtree(folder, ignore_errors=True)  # a half-written folder from a killed run
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    del model


def _forget_gguf_origin(model: Any) -> None:
    """A GGUF loaded without GGUF kernels is dequantised into plain `nn.Linear` layers, but it keeps
    its GGUF "quantizer", which refuses `save_pretrained` (and marks the model untrainable). Drop it
    once the weights are plain tensors; refuse if any layer still holds packed GGUF blocks."""
    packed = [
        name for name, module in model.named_modules()
        if type(module).__module__.startswith("transformers.integrations.gguf")
    ]  # fmt: skip
    if packed:
        raise WeightsError(
            f"transformers kept {len(packed)} GGUF layers packed (e.g. {packed[0]}); ledex needs "
            "plain weights to train: uninstall the `kernels` package or load a safetensors model"
        )
    if not all(p.dtype.is_floating_point for p in model.parameters()):
        raise WeightsError("the GGUF model was not fully dequantised by transformers")
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config



def lora_config(args: AdaptationArguments, model: Any) -> Any:
    """The PEFT LoRA config of a new adapter (sft and rl): rank, targets and, with `lora_layers`,
    only the last layers (gradients then never flow through the frozen layers below them)."""
    from peft import LoraConfig

    layers = None
    if args.lora_layers is not None:
        total = int(model.config.num_hidden_layers)
        if not 0 < args.lora_layers <= total:
            raise ValueError(f"--lora_layers must be between 1 and {total} for this model, got {args.lora_layers}")
        layers = list(range(total - args.lora_layers, total))
    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=args.lora_target_modules or default_lora_targets(model),
        layers_to_transform=layers,
        task_type="CAUSAL_LM",
    )


def default_lora_targets(model: Any) -> list[str]:
    """LoRA target modules: every attention and MLP projection the model has (Qwen2, LLaMA, Mistral,
    SmolLM...), else PEFT's "all-linear"."""
    wanted = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    found = [name for name in wanted if name in present]
    return found or ["all-linear"]
