"""Model spec strings: one string picks the backend everywhere (CLI, server settings, trainer).

    embedded                       the default embedded model (llama.cpp, GGUF)
    embedded:0.5b                  another embedded model, by name (`ledex model list`)
    embedded:0.5b-ledex            a shipped LoRA adapter, by name: its base model + the adapter
                                   (both verified; `ledex model list` shows them)
    embedded:/path/model.gguf      any local GGUF file
    embedded+/path/adapter.gguf    ... with a LoRA adapter of your own (also `embedded:0.5b+ADAPTER`;
                                   one adapter: not after a shipped adapter's name)
    openai:http://host:port/v1#model   any OpenAI-compatible chat-completions server
    hf:PATH[+ADAPTER]              transformers (+ peft); PATH a folder, a hub id or a .gguf file
    vllm:PATH                      vLLM's offline engine (GPU batch work)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

from ledex.errors import ModelSpecError

Kind = Literal["embedded", "openai", "hf", "vllm"]
KINDS: tuple[Kind, ...] = ("embedded", "openai", "hf", "vllm")
DEFAULT_SPEC = "embedded"


@dataclass(frozen=True)
class ModelSpec:
    kind: Kind
    #: embedded: model name or GGUF path ("" = default); openai: base URL; hf/vllm: path or hub id
    target: str = ""
    #: openai: the model name sent in requests ("" = ask the server)
    model: str = ""
    #: LoRA adapter path (embedded: GGUF adapter; hf: peft adapter folder)
    adapter: str | None = None

    def __str__(self) -> str:
        text: str = self.kind
        if self.target:
            text += f":{self.target}"
        if self.model:
            text += f"#{self.model}"
        if self.adapter:
            text += f"+{self.adapter}"
        return text


def parse_spec(spec: str) -> ModelSpec:
    """Parse a spec string, or raise `ModelSpecError` saying what is accepted."""
    text = spec.strip()
    kind, sep, rest = text.partition(":")
    if kind.startswith("embedded+"):  # "embedded+ADAPTER" has no ":" before the "+"
        kind, rest, sep = "embedded", text[len("embedded") :], ":"
    if kind not in KINDS:
        raise ModelSpecError(
            f"unknown model spec {spec!r}: expected one of "
            "'embedded[:NAME][+ADAPTER]', 'openai:URL#MODEL', 'hf:PATH[+ADAPTER]', 'vllm:PATH'"
        )
    if kind == "openai":
        return _parse_openai(spec, rest)
    target, adapter = _split_adapter(rest)
    if kind in ("hf", "vllm") and not target:
        raise ModelSpecError(f"model spec {spec!r} needs a path or hub id after '{kind}:'")
    if kind == "vllm" and adapter:
        raise ModelSpecError(f"model spec {spec!r}: vllm takes a merged model, not '+ADAPTER'")
    if sep and kind == "embedded" and not target and not adapter:
        raise ModelSpecError(f"model spec {spec!r} has an empty model name after 'embedded:'")
    return ModelSpec(kind=kind, target=target, adapter=adapter)


def parse_model_name(text: str) -> ModelSpec:
    """A model as `ledex model install|verify|path` names it: any spec `--model` takes
    (`embedded`, `embedded:0.5b`, ...) or, as before, a bare embedded model or shipped adapter
    name (`0.5b`, `0.5b-ledex`)."""
    stripped = text.strip()
    if re.split(r"[:+]", stripped, maxsplit=1)[0] in KINDS:
        return parse_spec(stripped)
    return ModelSpec(kind="embedded", target=stripped)


def is_gguf_path(target: str) -> bool:
    """True when an embedded spec's target is a GGUF file of the user's own, not a model name."""
    return target.endswith(".gguf") or os.sep in target


def _split_adapter(rest: str) -> tuple[str, str | None]:
    target, plus, adapter = rest.partition("+")
    if plus and not adapter:
        raise ModelSpecError(f"empty adapter path after '+' in {rest!r}")
    return target, (adapter or None)


def _parse_openai(spec: str, rest: str) -> ModelSpec:
    url, _, model = rest.partition("#")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ModelSpecError(
            f"model spec {spec!r} needs an http(s) URL, e.g. 'openai:http://127.0.0.1:8000/v1#MODEL'"
        )
    return ModelSpec(kind="openai", target=url.rstrip("/"), model=model)
