"""The embedded backend: a GGUF model run in-process by llama.cpp (llama-cpp-python).

This is the default because it needs no server, no GPU and no network: the weights (and the
shipped LoRA adapters, `embedded:0.5b-ledex`) come from `ledex.weights`, verified. The chat
template is the one stored in the GGUF, so a model fine-tuned here and exported to GGUF is
prompted exactly as it was trained.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from ledex import weights
from ledex.errors import BackendResponseError, BackendUnavailable, ContextOverflow, WeightsError
from ledex.models.base import Backend, BackendInfo, Completion, Conversation, Sampling
from ledex.models.spec import ModelSpec, is_gguf_path

DEFAULT_N_CTX = 8192


def resolve_model_file(target: str) -> tuple[Path, int | None]:
    """(GGUF path, training context length if known) for an embedded name or a .gguf path."""
    if is_gguf_path(target):
        path = Path(target).expanduser()
        if not path.is_file():
            raise WeightsError(f"GGUF file not found: {path}")
        return path, None
    model = weights.resolve(target)
    return weights.locate(model.name), model.context_window


def resolve_files(spec: ModelSpec) -> tuple[Path, int | None, Path | None]:
    """(base GGUF, its training context length if known, LoRA adapter or None) for a spec.

    A shipped adapter's name (`embedded:0.5b-ledex`) stands for its verified base model with the
    verified adapter; otherwise the adapter is the user's own file after '+'.
    """
    shipped = weights.shipped_adapter(spec)
    if shipped is None:
        path, trained_ctx = resolve_model_file(spec.target)
        return path, trained_ctx, Path(spec.adapter).expanduser() if spec.adapter else None
    adapter = weights.locate_adapter(shipped)  # its base binding first: nothing to install if wrong
    base = weights.MODELS[shipped.base]
    return weights.locate(base.name), base.context_window, adapter


class EmbeddedBackend(Backend):
    def __init__(
        self,
        model_path: Path,
        *,
        spec: str,
        adapter: Path | None = None,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
    ) -> None:
        try:
            import llama_cpp
        except ImportError as error:  # the core dependency is missing or built wrong
            raise BackendUnavailable(
                f"the embedded backend needs llama-cpp-python ({error}); run `make` or "
                "`pip install llama-cpp-python`"
            ) from error
        if adapter is not None and not adapter.is_file():
            raise WeightsError(f"LoRA adapter not found: {adapter}")
        with _quiet_stderr():  # llama.cpp prints its load log on fd 2 even with verbose=False
            try:
                self._llama: llama_cpp.Llama | None = llama_cpp.Llama(
                    model_path=str(model_path),
                    n_ctx=n_ctx,
                    n_threads=n_threads or os.cpu_count(),
                    n_gpu_layers=n_gpu_layers,
                    lora_path=str(adapter) if adapter else None,
                    verbose=False,
                )
            except (ValueError, RuntimeError) as error:
                raise WeightsError(f"llama.cpp could not load {model_path}: {error}") from error
        # One llama.cpp context is not thread-safe; callers may share a backend across threads.
        self._lock = threading.Lock()
        self.info = BackendInfo(
            spec=spec,
            # "base.gguf + adapter.gguf": the server's "model ready" says the adapter too
            model=model_path.name + (f" + {adapter.name}" if adapter else ""),
            context_window=n_ctx,
            details={"path": str(model_path), "adapter": str(adapter or "")},
            sequential=True,
        )

    @classmethod
    def from_spec(
        cls,
        spec: ModelSpec,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        **_ignored: object,
    ) -> EmbeddedBackend:
        path, trained_ctx, adapter = resolve_files(spec)
        ctx = n_ctx or min(trained_ctx or DEFAULT_N_CTX, DEFAULT_N_CTX)
        return cls(
            path, spec=str(spec), adapter=adapter, n_ctx=ctx,
            n_threads=n_threads, n_gpu_layers=n_gpu_layers,
        )  # fmt: skip

    def generate(
        self, conversations: Sequence[Conversation], sampling: Sampling = Sampling()
    ) -> list[list[Completion]]:
        return [
            [self._complete(conv, sampling, index) for index in range(sampling.n)]
            for conv in conversations
        ]

    def stream(self, conversation: Conversation, sampling: Sampling = Sampling()) -> Generator[str, None, None]:
        with self._lock, self._context_errors():
            for chunk in self._call(conversation, sampling, 0, stream=True):
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` in this model's vocabulary (benchmarks report reply lengths in them)."""
        if self._llama is None:
            raise BackendUnavailable("the embedded model was closed; load it again")
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def close(self) -> None:
        llama = getattr(self, "_llama", None)
        if llama is not None:
            llama.close()
            self._llama = None

    # -- internals --------------------------------------------------------------------------------

    def _complete(self, conversation: Conversation, sampling: Sampling, index: int) -> Completion:
        with self._lock, self._context_errors():
            response = self._call(conversation, sampling, index, stream=False)
        try:
            choice = response["choices"][0]
            usage = response.get("usage") or {}
            return Completion(
                text=choice["message"]["content"] or "",
                finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
                prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens"),
            )
        except (KeyError, IndexError, TypeError) as error:
            raise BackendResponseError(f"llama.cpp returned an unexpected result: {error}") from error

    def _call(self, conversation: Conversation, sampling: Sampling, index: int, *, stream: bool) -> Any:
        seed = sampling.seed_for(index)
        if seed is None:  # llama.cpp would reuse one fixed seed: make unseeded candidates differ
            seed = random.randrange(2**31)
        if self._llama is None:
            raise BackendUnavailable("the embedded model was closed; load it again")
        return self._llama.create_chat_completion(
            # our messages are the chat shape llama.cpp takes; its TypedDicts name each role's
            messages=cast(Any, conversation),
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            stop=list(sampling.stop) or None,
            seed=seed,
            stream=stream,
        )

    @contextlib.contextmanager
    def _context_errors(self) -> Iterator[None]:
        """llama.cpp says "Requested tokens (N) exceed context window of M" as a ValueError."""
        try:
            yield
        except ValueError as error:
            if "context window" not in str(error):
                raise
            raise ContextOverflow(
                f"the conversation does not fit the model's context window of "
                f"{self.info.context_window} tokens ({error}); shorten it or raise n_ctx"
            ) from error


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence llama.cpp's C-level log lines during model load (they would garble a TTY or LSP log)."""
    if os.environ.get("LEDEX_LLAMA_VERBOSE"):
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
