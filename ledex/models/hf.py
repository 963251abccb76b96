"""The transformers backend (`hf:PATH[+ADAPTER]`): any causal LM, optionally with a PEFT adapter.

This is the backend of the trainer's own checkpoints before export. PATH is a folder, a hub id
(where the hub is reachable) or a `.gguf` file, which transformers dequantises into a trainable
model. torch is imported only when this backend is built.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

from ledex.errors import BackendUnavailable, ContextOverflow, WeightsError
from ledex.models.base import Backend, BackendInfo, Completion, Conversation, Sampling
from ledex.models.spec import ModelSpec


def load_pretrained(target: str, *, dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) for a folder, hub id or .gguf file. Shared with the trainer.

    `dtype` defaults to bfloat16 on a GPU and float32 on a CPU.
    """
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as error:
        raise BackendUnavailable(
            f"the hf backend needs the training extras ({error}); run: pip install 'ledex[train]'"
        ) from error
    location, options = _pretrained_location(target)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **options)
        model = AutoModelForCausalLM.from_pretrained(location, **options, dtype=dtype or _dtype())
    except (OSError, ValueError) as error:  # no such folder/hub id, or not a model folder
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"could not load {target!r} with transformers: {first_line}") from error
    return model, tokenizer


def _pretrained_location(target: str) -> tuple[str, dict[str, str]]:
    path = Path(target).expanduser()
    if target.endswith(".gguf"):
        if not path.is_file():
            raise WeightsError(f"GGUF file not found: {path}")
        return str(path.parent), {"gguf_file": path.name}
    return (str(path) if path.exists() else target), {}


def _dtype() -> Any:
    import torch

    return torch.bfloat16 if torch.cuda.is_available() else torch.float32


class HFBackend(Backend):
    def __init__(
        self, model: Any, tokenizer: Any, *, spec: str, name: str = "", max_context: int | None = None
    ) -> None:
        import torch

        self._torch = torch
        self.model = model.eval()
        self.tokenizer = tokenizer
        if torch.cuda.is_available() and self.model.device.type == "cpu":
            self.model.to("cuda")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._lock = threading.Lock()
        self.max_context = max_context or getattr(model.config, "max_position_embeddings", None)
        self.info = BackendInfo(
            spec=spec,
            model=name or getattr(model.config, "_name_or_path", "") or spec,
            context_window=self.max_context,
        )

    @classmethod
    def from_spec(cls, spec: ModelSpec, **_ignored: object) -> HFBackend:
        model, tokenizer = load_pretrained(spec.target)
        if spec.adapter:
            model = _with_adapter(model, spec.adapter)
        return cls(model, tokenizer, spec=str(spec), name=spec.target)

    def generate(
        self, conversations: Sequence[Conversation], sampling: Sampling = Sampling()
    ) -> list[list[Completion]]:
        return [self._generate_one(conv, sampling) for conv in conversations]

    def stream(self, conversation: Conversation, sampling: Sampling = Sampling()) -> Generator[str, None, None]:
        from transformers import TextIteratorStreamer

        inputs = self._encode(conversation)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = self._generation_kwargs(sampling, n=1) | {"streamer": streamer}
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with self._lock, self._torch.no_grad():
                    self._seed(sampling.seed_for(0))
                    self.model.generate(**inputs, **kwargs)
            except BaseException as error:  # surface it in the caller's thread
                errors.append(error)
                streamer.on_finalized_text("", stream_end=True)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        yield from (piece for piece in streamer if piece)
        worker.join()
        if errors:
            raise errors[0]

    # -- internals --------------------------------------------------------------------------------

    def _encode(self, conversation: Conversation) -> dict[str, Any]:
        encoded = self.tokenizer.apply_chat_template(
            conversation, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        length = encoded["input_ids"].shape[-1]
        if self.max_context and length >= self.max_context:
            raise ContextOverflow(
                f"the conversation has {length} tokens, more than the model's context of "
                f"{self.max_context}"
            )
        return {key: value.to(self.model.device) for key, value in encoded.items()}

    def _generation_kwargs(self, sampling: Sampling, n: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens,
            "num_return_sequences": n,
            "pad_token_id": self.tokenizer.pad_token_id,
            "do_sample": sampling.temperature > 0,
        }
        if sampling.temperature > 0:
            kwargs |= {"temperature": sampling.temperature, "top_p": sampling.top_p}
        if sampling.stop:
            kwargs |= {"stop_strings": list(sampling.stop), "tokenizer": self.tokenizer}
        return kwargs

    def _seed(self, seed: int | None) -> None:
        if seed is not None:
            from transformers import set_seed

            set_seed(seed)

    def _generate_one(self, conversation: Conversation, sampling: Sampling) -> list[Completion]:
        inputs = self._encode(conversation)
        prompt_length = inputs["input_ids"].shape[-1]
        with self._lock, self._torch.no_grad():
            self._seed(sampling.seed)
            output = self.model.generate(**inputs, **self._generation_kwargs(sampling, sampling.n))
        return [self._completion(row[prompt_length:], prompt_length, sampling) for row in output]

    def _completion(self, generated: Any, prompt_length: int, sampling: Sampling) -> Completion:
        ids = generated.tolist()
        eos = set(_as_list(self.model.generation_config.eos_token_id))
        eos.add(self.tokenizer.eos_token_id)
        # With pad == eos (common), padding after a finished sequence looks like more eos tokens.
        end = next((i for i, token in enumerate(ids) if token in eos), None)
        tokens = ids[:end] if end is not None else [t for t in ids if t != self.tokenizer.pad_token_id]
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        for stop in sampling.stop:  # generate() stops *after* the stop string; drop it
            if stop in text:
                text = text[: text.index(stop)]
        hit_budget = end is None and len(tokens) >= sampling.max_tokens
        return Completion(
            text=text,
            finish_reason="length" if hit_budget else "stop",
            prompt_tokens=prompt_length,
            completion_tokens=len(tokens),
        )


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _with_adapter(model: Any, adapter: str) -> Any:
    try:
        from peft import PeftModel
    except ImportError as error:
        raise BackendUnavailable(f"'+ADAPTER' needs peft ({error}); run: pip install 'ledex[train]'") from error
    if not Path(adapter).expanduser().exists():
        raise WeightsError(f"adapter not found: {adapter}")
    return PeftModel.from_pretrained(model, str(Path(adapter).expanduser()))
