"""Generation backends behind one interface, chosen by a spec string (see `spec.py`)."""

from __future__ import annotations

from typing import Any

from ledex.models.base import Backend, BackendInfo, Completion, Conversation, Message, Sampling
from ledex.models.spec import DEFAULT_SPEC, ModelSpec, parse_spec

__all__ = [
    "DEFAULT_SPEC",
    "Backend",
    "BackendInfo",
    "Completion",
    "Conversation",
    "Message",
    "ModelSpec",
    "Sampling",
    "load_backend",
    "parse_spec",
]


def load_backend(spec: str | ModelSpec = DEFAULT_SPEC, **options: Any) -> Backend:
    """Build the backend a spec names. Heavy imports (llama_cpp, torch, vllm) happen only here.

    `options` are backend-specific (e.g. `n_ctx`, `timeout`) and ignored by backends that do not
    take them, so one settings object can serve every backend.
    """
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    if parsed.kind == "embedded":
        from ledex.models.embedded import EmbeddedBackend

        return EmbeddedBackend.from_spec(parsed, **options)
    if parsed.kind == "openai":
        from ledex.models.openai_http import OpenAIBackend

        return OpenAIBackend.from_spec(parsed, **options)
    if parsed.kind == "hf":
        from ledex.models.hf import HFBackend

        return HFBackend.from_spec(parsed, **options)
    from ledex.models.vllm_engine import VLLMBackend

    return VLLMBackend.from_spec(parsed, **options)
