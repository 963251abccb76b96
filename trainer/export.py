"""`ledex-train export`: hand a trained model to the backends that serve it.

    ledex-train export --run runs/sft                      # all formats into runs/sft/export
    ledex-train export --run runs/rl --formats gguf        # only the GGUF adapter

From an `sft` or `rl` output folder (a PEFT LoRA adapter and `ledex-run.json`, or a checkpoint
folder inside it) it writes:

- `lora/`: the PEFT adapter with its tokenizer, for vLLM's `--enable-lora` (or `hf:BASE+lora`);
- `merged/`: the base model with the adapter merged in, as safetensors with the tokenizer and its
  chat template, for a plain `vllm serve`, any HF tool, or `hf:PATH`;
- `adapter.gguf`: the adapter converted by llama.cpp's own `convert_lora_to_gguf.py`, which the
  `embedded` backend loads on top of the GGUF it was trained from: `--model embedded:0.5b+adapter.gguf`.

The converter is not on the package index by itself: it ships in llama-cpp-python's source
distribution (`vendor/llama.cpp`). The first export downloads that sdist (pinned by SHA-256, the
same version as the installed llama-cpp-python) and keeps the converter, its `conversion/` package
and its `gguf-py` in the ledex cache; `--llama_cpp_sdist FILE` uses a local copy instead.

Every backend renders the same `ledex.dialogue` conversation with the model's own chat template,
so the exported model is prompted exactly as it was trained. After an export the command prints
the `ledex fix --model ...` and the `ledex.model` server setting to use.
"""

import hashlib
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledex import weights
from ledex.errors import LedexError
from ledex.filelock import file_lock

FORMATS = ("lora", "merged", "gguf")
RUN_INFO = "ledex-run.json"  # written by `sft` (and `rl`): the base model of the adapter
EXPORT_INFO = "ledex-export.json"

# llama-cpp-python source distributions whose converter ledex has used, by SHA-256 of the sdist.
SDIST_SHA256 = {
    "0.3.36": "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
}
_TOOL_MEMBERS = ("convert_lora_to_gguf.py", "convert_hf_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")


class ExportError(LedexError):
    """A run that cannot be exported, or a conversion that failed."""


@dataclass
class ExportArguments:
    run: str = field(
        default="",
        metadata={"help": "an sft/rl output folder (or a checkpoint folder inside it)"},
    )
    output_dir: str | None = field(
        default=None, metadata={"help": "where to write the exports (default: RUN/export)"}
    )
    formats: list[str] = field(
        default_factory=lambda: list(FORMATS),
        metadata={"help": "what to write: lora (vLLM --enable-lora), merged (safetensors), gguf (embedded)"},
    )
    base_model: str | None = field(
        default=None,
        metadata={"help": "the base model, when the run does not record it (ledex-run.json)"},
    )
    merged_dtype: str = field(
        default="bfloat16", metadata={"help": "dtype of the merged model: bfloat16, float16 or float32"}
    )
    gguf_outtype: str = field(
        default="f16", metadata={"help": "GGUF adapter precision: f32, f16, bf16 or q8_0"}
    )
    llama_cpp_sdist: str | None = field(
        default=None,
        metadata={"help": "a local llama-cpp-python sdist (.tar.gz) holding convert_lora_to_gguf.py"},
    )


# --- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainedRun:
    folder: Path  # holds the adapter (or the full model)
    base_model: str  # what the user trained from: "embedded:0.5b", a .gguf, an HF folder or hub id
    adapter: bool
    rank: int | None = None


def read_run(run: str, base_model: str | None = None) -> TrainedRun:
    folder = Path(run).expanduser()
    if not folder.is_dir():
        raise ExportError(f"no trained run at {folder}: pass the --output_dir of `ledex-train sft` or `rl`")
    info: dict[str, Any] = {}
    for candidate in (folder / RUN_INFO, folder.parent / RUN_INFO):  # a run, or a checkpoint in it
        if candidate.is_file():
            info = json.loads(candidate.read_text())
            break
    adapter_config = folder / "adapter_config.json"
    if adapter_config.is_file():
        config = json.loads(adapter_config.read_text())
        if not any((folder / name).is_file() for name in ("adapter_model.safetensors", "adapter_model.bin")):
            raise ExportError(f"{folder} has adapter_config.json but no adapter weights")
        base = base_model or info.get("base_model") or config.get("base_model_name_or_path")
        if not base:
            raise ExportError(f"{folder} does not say which base model it adapts; pass --base_model")
        return TrainedRun(folder, str(base), adapter=True, rank=config.get("r"))
    if (folder / "config.json").is_file():  # a full fine-tune: the folder is the model
        return TrainedRun(folder, base_model or info.get("base_model") or str(folder), adapter=False)
    raise ExportError(
        f"{folder} holds neither a LoRA adapter (adapter_config.json) nor a model (config.json); "
        "is training finished?"
    )


# --- the exports ---------------------------------------------------------------------------------


def export_lora(run: TrainedRun, out: Path) -> Path:
    """The PEFT adapter folder for vLLM `--enable-lora`, with the tokenizer (and chat template)."""
    target = out / "lora"
    _fresh(target)
    keep = {
        "adapter_config.json", "adapter_model.safetensors", "adapter_model.bin",
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
        "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json", RUN_INFO,
    }  # fmt: skip
    for item in run.folder.iterdir():
        if item.name in keep and item.is_file():
            shutil.copy2(item, target / item.name)
    return target


def export_merged(run: TrainedRun, out: Path, dtype: str = "bfloat16") -> Path:
    """The base model with the adapter merged in, as safetensors (vLLM, any HF tool, `hf:PATH`)."""
    import torch

    from trainer import modeling

    target = out / "merged"
    wanted = getattr(torch, dtype, None)
    if not isinstance(wanted, torch.dtype):
        raise ExportError(f"unknown dtype {dtype!r}; use bfloat16, float16 or float32")
    if run.adapter:
        from peft import PeftModel

        model, tokenizer = modeling.load_model_and_tokenizer(run.base_model, dtype=torch.float32, use_cpu=True)
        model = PeftModel.from_pretrained(model, str(run.folder)).merge_and_unload()
    else:
        model, tokenizer = modeling.load_model_and_tokenizer(str(run.folder), dtype=torch.float32, use_cpu=True)
    model = model.to(wanted)
    model.config.dtype = wanted  # what the config records: vLLM picks its default dtype from it
    _fresh(target)
    model.save_pretrained(target, safe_serialization=True)
    _tokenizer_of(run, tokenizer).save_pretrained(target)
    return target


def _tokenizer_of(run: TrainedRun, fallback: Any) -> Any:
    """The tokenizer saved with the run (it has the chat template the model was trained with)."""
    if (run.folder / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(run.folder))
    return fallback


def export_gguf(run: TrainedRun, out: Path, *, outtype: str = "f16", sdist: str | None = None) -> Path:
    """The adapter as a GGUF LoRA for llama.cpp, made by llama.cpp's own converter."""
    from trainer import modeling

    if not run.adapter:
        raise ExportError(
            "a full fine-tune has no LoRA adapter to convert; use the merged export "
            "(or train with LoRA, the default, for the embedded backend)"
        )
    tools = converter_tools(sdist)
    source = modeling.resolve_model(run.base_model)
    base_folder = modeling.ensure_gguf_converted(source) if source.is_gguf else Path(source.location)
    if not (base_folder / "config.json").is_file():
        raise ExportError(
            f"the base model {run.base_model!r} is not a local folder; the GGUF converter needs its "
            "config.json (pass --base_model with a local folder)"
        )
    out.mkdir(parents=True, exist_ok=True)
    target = out / "adapter.gguf"
    partial = out / ".adapter.gguf.partial"
    command = [
        sys.executable, str(tools / "convert_lora_to_gguf.py"), str(run.folder),
        "--base", str(base_folder), "--outfile", str(partial), "--outtype", outtype,
    ]  # fmt: skip
    env = dict(os.environ)
    env.pop("NO_LOCAL_GGUF", None)  # use the converter's own gguf-py, the version it was written for
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise ExportError(f"convert_lora_to_gguf.py failed:\n{tail}")
    os.replace(partial, target)
    return target


# --- llama.cpp's converter, from the llama-cpp-python sdist --------------------------------------


def converter_tools(sdist: str | None = None) -> Path:
    """A folder with llama.cpp's convert_lora_to_gguf.py and what it imports (cached per version)."""
    version = _llama_cpp_version()
    folder = weights.cache_dir() / "llama.cpp-convert" / version
    if (folder / "convert_lora_to_gguf.py").is_file() and (folder / "conversion").is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(folder.parent / f"{version}.lock"):
        if (folder / "convert_lora_to_gguf.py").is_file():
            return folder
        with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
            archive = Path(sdist).expanduser() if sdist else _download_sdist(version, Path(tmp))
            if not archive.is_file():
                raise ExportError(f"llama-cpp-python sdist not found: {archive}")
            _check_sdist(archive, version)
            staging = Path(tmp) / "tools"
            _extract_tools(archive, staging)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(staging, folder)
    return folder


def _llama_cpp_version() -> str:
    try:
        return md.version("llama-cpp-python")
    except md.PackageNotFoundError:
        return "0.3.36"  # the version ledex pins; the adapter must match the runtime that loads it


def _download_sdist(version: str, into: Path) -> Path:
    print(
        f"ledex-train export: downloading llama-cpp-python=={version} (source, ~75 MB) for "
        "llama.cpp's convert_lora_to_gguf.py; this happens once",
        file=sys.stderr, flush=True,
    )  # fmt: skip
    requirement = f"llama-cpp-python=={version}"
    if version in SDIST_SHA256:
        requirement += f" --hash=sha256:{SDIST_SHA256[version]}"
    requirements = into / "requirements.txt"
    requirements.write_text(requirement + "\n")
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-binary", ":all:", "-d", str(into), "-r", str(requirements),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    found = sorted(into.glob("llama_cpp_python-*.tar.gz"))
    if result.returncode != 0 or not found:
        tail = " ".join(result.stderr.strip().splitlines()[-3:])
        raise ExportError(
            f"could not download the llama-cpp-python sdist with pip ({tail}); pass "
            "--llama_cpp_sdist FILE with a local copy"
        )
    return found[0]


def _check_sdist(archive: Path, version: str) -> None:
    expected = SDIST_SHA256.get(version)
    if expected is None:
        return
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != expected:
        raise ExportError(
            f"{archive} has SHA-256 {digest[:12]}..., not the published llama-cpp-python=={version} "
            f"sdist ({expected[:12]}...); refusing to run its converter"
        )


def _extract_tools(archive: Path, into: Path) -> None:
    into.mkdir(parents=True)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/", 3)  # llama_cpp_python-X/vendor/llama.cpp/REST
            if len(parts) < 4 or parts[1:3] != ["vendor", "llama.cpp"]:
                continue
            rest = parts[3]
            if not any(rest == m or (m.endswith("/") and rest.startswith(m)) for m in _TOOL_MEMBERS):
                continue
            if not (member.isfile() or member.isdir()):
                continue
            member.name = rest
            tar.extract(member, into, filter="data")
    if not (into / "convert_lora_to_gguf.py").is_file():
        raise ExportError(f"{archive} does not contain vendor/llama.cpp/convert_lora_to_gguf.py")



def _fresh(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


# --- what to run next ----------------------------------------------------------------------------


def embedded_spec(base_model: str, adapter: Path) -> str | None:
    """The `--model` spec that runs the base GGUF with this adapter, or None (no GGUF base)."""
    from trainer import modeling

    source = modeling.resolve_model(base_model)
    if not source.is_gguf:
        return None
    name = base_model.strip()
    if name.startswith("embedded:") or name == "embedded":
        base = name
    elif name.endswith(".gguf"):
        base = f"embedded:{Path(name).expanduser().resolve()}"
    else:
        base = f"embedded:{weights.resolve(name).name}"
    return f"{base}+{adapter.resolve()}"


def usage(run: TrainedRun, written: dict[str, Path]) -> list[str]:
    lines = []
    if "gguf" in written:
        spec = embedded_spec(run.base_model, written["gguf"])
        if spec:
            lines += [
                "embedded (llama.cpp, in-process):",
                f"  ledex fix --model {spec}",
                f'  server setting: "ledex.model": "{spec}"',
            ]
        else:
            lines += [
                f"GGUF adapter: {written['gguf']} (convert the base model {run.base_model} to GGUF "
                "with llama.cpp's convert_hf_to_gguf.py, then use embedded:BASE.gguf+ADAPTER)"
            ]
    if "lora" in written:
        from trainer import modeling

        source = modeling.resolve_model(run.base_model)
        sha256 = source.gguf_sha256  # set for GGUF files (source.is_gguf)
        base = modeling.gguf_cache_folder(sha256) if sha256 is not None else source.location
        # vLLM takes one of a few sizes for --max-lora-rank (default 16)
        sizes = [size for size in (8, 16, 32, 64, 128, 256, 320, 512) if size >= (run.rank or 0)]
        rank = f" --max-lora-rank {sizes[0]}" if run.rank and run.rank > 16 and sizes else ""
        lines += [
            "vLLM with the adapter:",
            f"  vllm serve {base} --enable-lora --lora-modules ledex={written['lora'].resolve()}{rank}",
            "  ledex fix --model openai:http://127.0.0.1:8000/v1#ledex",
            f"  (or transformers: --model hf:{base}+{written['lora'].resolve()})",
        ]
    if "merged" in written:
        merged = written["merged"].resolve()
        lines += [
            "merged model:",
            f"  vllm serve {merged}   then   ledex fix --model openai:http://127.0.0.1:8000/v1#{merged}",
            f"  ledex fix --model hf:{merged}      (transformers)",
            f"  ledex fix --model vllm:{merged}    (vLLM offline engine, batch work on a GPU)",
        ]
    return lines


# --- the command ---------------------------------------------------------------------------------


def run_export(args: ExportArguments) -> dict[str, Path]:
    unknown = [f for f in args.formats if f not in FORMATS]
    if unknown or not args.formats:
        raise ExportError(f"unknown format(s) {unknown}; choose from {', '.join(FORMATS)}")
    if not args.run:
        raise ExportError("no run given; pass --run runs/sft (the output folder of sft or rl)")
    run = read_run(args.run, args.base_model)
    out = Path(args.output_dir).expanduser() if args.output_dir else run.folder / "export"
    formats = [f for f in FORMATS if f in args.formats]
    if not run.adapter and ("lora" in formats or "gguf" in formats):
        if formats != ["merged"] and args.formats == list(FORMATS):  # the default: do what applies
            formats = ["merged"]
        else:
            raise ExportError(f"{run.folder} is a full fine-tune, not a LoRA adapter: only 'merged' applies")
    written: dict[str, Path] = {}
    for fmt in formats:
        _say(f"writing {fmt} ...")
        if fmt == "lora":
            written[fmt] = export_lora(run, out)
        elif fmt == "merged":
            written[fmt] = export_merged(run, out, args.merged_dtype)
        else:
            written[fmt] = export_gguf(run, out, outtype=args.gguf_outtype, sdist=args.llama_cpp_sdist)
    lines = usage(run, written)
    (out / EXPORT_INFO).write_text(
        json.dumps(
            {
                "run": str(run.folder.resolve()),
                "base_model": run.base_model,
                "written": {k: str(v.resolve()) for k, v in written.items()},
                "usage": lines,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"exported {run.folder} to {out}")
    print("\n".join(lines))
    return written


def _say(text: str) -> None:
    print(f"ledex-train export: {text}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    from trl import TrlParser

    from trainer.cli import run_stage

    def export(args: list[str]) -> None:
        (export_args,) = TrlParser((ExportArguments,), prog="ledex-train export").parse_args_and_config(args)
        run_export(export_args)

    return run_stage("export", argv, export)


if __name__ == "__main__":
    raise SystemExit(main())
