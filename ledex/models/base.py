"""The one interface every generation backend implements.

A conversation is a list of chat messages (`{"role": ..., "content": ...}`) exactly as
`ledex.dialogue` builds it; each backend applies its model's own chat template. Callers ask for
`n` completions per conversation and always get back a list of `n` `Completion`s per conversation,
in order, whatever the backend can do natively.
"""

from __future__ import annotations

import abc
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Self

Message = dict[str, str]
Conversation = list[Message]

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class Sampling:
    """How to sample. `temperature == 0` means greedy decoding."""

    n: int = 1
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 1024
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")

    def seed_for(self, index: int) -> int | None:
        """A distinct, reproducible seed for the index-th candidate of a request."""
        return None if self.seed is None else self.seed + index


@dataclass(frozen=True)
class Completion:
    """One generated reply. `finish_reason == "length"` means the token budget cut it short."""

    text: str
    finish_reason: FinishReason = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


@dataclass
class BackendInfo:
    """What a backend says about itself, for logs, `ledex model`, and training provenance."""

    spec: str
    model: str
    context_window: int | None = None
    details: dict[str, str] = field(default_factory=dict)
    #: decodes the n completions of a request one after another rather than as a batch, so a
    #: caller that may not need them all is better off asking for one at a time
    sequential: bool = False


class Backend(abc.ABC):
    """A text generator for chat conversations."""

    info: BackendInfo

    @abc.abstractmethod
    def generate(
        self, conversations: Sequence[Conversation], sampling: Sampling = Sampling()
    ) -> list[list[Completion]]:
        """`sampling.n` completions for each conversation, in the order given."""

    @abc.abstractmethod
    def stream(self, conversation: Conversation, sampling: Sampling = Sampling()) -> Generator[str, None, None]:
        """Yield the text of one completion as it is generated (`sampling.n` is ignored); closing
        the generator stops the generation (the repair loop does, once a reply is complete)."""

    def close(self) -> None:  # noqa: B027 - a hook: a backend that holds nothing keeps this one
        """Release the model or connection; the backend is unusable afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
