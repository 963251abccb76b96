"""LeDex's rewards (§2.3) as TRL reward functions: `f(prompts, completions, **columns) -> list`.

Each reward is a callable object with a `__name__` (TRL logs it as `rewards/<name>/mean`), built
with its settings and handed to `GRPOTrainer(reward_funcs=[...])` with `reward_weights`. The columns
come from the RL dataset (`trainer/rl.py`): `style`, `tests` (JSON), `setup`,
`reference_refinements`, `reference_explanations`, `task`, `wrong_code`, `feedback`. Replies are
read only with `ledex.dialogue.parse_reply`; code runs only in the sandbox (`run_many`).

refinement_reward = 5 * (CodeBLEU(refinement, references) + pass_fraction) - 5,  in [-5, 5]
    `pass_fraction`: the share of the problem's tests the refinement passes, run in the sandbox.
    CodeBLEU against several verified refinements of the same wrong code: the **maximum** over the
    references, one CodeBLEU per reference. codebleu's own multi-reference mode pools the syntax and
    data-flow matches over all references, so a refinement identical to one verified fix scores
    well below 1 whenever the verified fixes differ (0.65 instead of 1.0 on a two-reference case);
    any correct fix is a good target, so closeness to the nearest one is what is rewarded.
    Guard: an empty reply or one `parse_reply` finds no code in scores the minimum, -5 (codebleu
    gives an empty prediction 0.25). Without references the code term is the test term again:
    10 * pass_fraction - 5, on the same scale.

explanation_reward = (50 * cos(e, references) - 35) / 3,  in [-35/3, 5]
    `cos`: cosine similarity of sentence embeddings (all-roberta-large-v1 in the paper, and here by
    default) between the explanation and the verified explanations of the same wrong code; the
    **maximum** over references, for the same reason as above (identical text scores 5). The
    cosine is clipped to [0, 1]: a negative similarity means "unrelated" as much as 0 does, and
    the clip makes -35/3 the true minimum. A reply to an explain+refine prompt without an
    explanation (or without usable code: `parse_reply` cannot tell where the explanation ends)
    gets that minimum; a refine-style prompt asks for no explanation, so its completions are not
    scored (`None`: TRL leaves them out of this reward's sum and mean). A wrong code without
    verified explanations is not scored either.

outcome_explanation_reward (CTRL-style, optional) = 10 * pass_rate - 5,  in [-5, 5]
    The explanation is judged by what it leads to: `samples` refinements are generated with the
    explanation given to a generator (the policy being trained, or any ledex model spec, e.g.
    `embedded:0.5b` or `openai:http://host/v1#m`) as part of the feedback turn, and the reward is
    the share of them that pass all tests. Missing explanations get -5, refine prompts `None`.

Sequence-level rewards versus LeDex's token-level credit. LeDex trains with PPO and a value model,
and assigns the explanation reward to the explanation's tokens and the code reward to the code's
tokens. GRPO and RLOO have no value model: every reward function gives one number per completion,
the weighted sum is normalised within the group of `num_generations` completions of the same
prompt, and that single advantage multiplies the log-probability of *every* token of the
completion. So a good explanation followed by bad code is pushed down as a whole, and a weak
explanation rides along with good code. The group baseline makes this unbiased, but noisier per
token than LeDex's split; more generations per prompt reduce the noise. The outcome-grounded
reward narrows the gap from the other side: it rewards the explanation for the refinements it
causes, which is what an explanation is for, instead of for its wording.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ledex.dialogue import (
    DEFAULT_STYLE,
    STYLES,
    Reply,
    build_conversation,
    check_style,
    parse_reply,
)
from ledex.models.base import Backend, Sampling
from ledex.sandbox.programs import IOTest, Program, ProgramResult, Test, run_many

REFINEMENT_MIN, REFINEMENT_MAX = -5.0, 5.0
EXPLANATION_MIN, EXPLANATION_MAX = -35.0 / 3.0, 5.0
OUTCOME_MIN, OUTCOME_MAX = -5.0, 5.0

Rewards = list[float | None]


# --- the formulas -------------------------------------------------------------------------------


def refinement_score(codebleu: float, pass_fraction: float) -> float:
    """LeDex's code reward: 5 * (CodeBLEU + unit-test pass fraction) - 5."""
    return 5.0 * (codebleu + pass_fraction) - 5.0


def explanation_score(cosine: float) -> float:
    """LeDex's explanation reward: (50 * cos - 35) / 3, with cos clipped to [0, 1]."""
    return (50.0 * min(1.0, max(0.0, cosine)) - 35.0) / 3.0


def outcome_score(pass_rate: float) -> float:
    return 10.0 * pass_rate - 5.0


# --- helpers ------------------------------------------------------------------------------------


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or (conversational) the last message's content."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return str(completion.get("content") or "")
    if isinstance(completion, Sequence) and completion:
        return completion_text(completion[-1])
    return ""


def encode_tests(tests: Sequence[Test]) -> str:
    """Tests as one JSON string (a dataset column): asserts as strings, IOTests as objects."""
    return json.dumps(
        [t if isinstance(t, str) else {"input": t.input, "output": t.output} for t in tests]
    )


def decode_tests(text: str | Sequence[Any]) -> tuple[Test, ...]:
    items = json.loads(text) if isinstance(text, str) else text
    return tuple(t if isinstance(t, str) else IOTest(t["input"], t["output"]) for t in items)


def _parsed(text: str, style: str) -> Reply | None:
    reply = parse_reply(text, style=check_style(style) if style in STYLES else DEFAULT_STYLE)
    return reply if isinstance(reply, Reply) and reply.code.strip() else None


def _program(code: str, prompt_code: str, entry_point: str) -> str:
    """What runs: the code, or for HumanEval-style tasks the prompt completed with it."""
    if prompt_code and entry_point:
        from trainer.data.humaneval import assemble

        return assemble(prompt_code, entry_point, code)
    return code


def _column(columns: Mapping[str, Any], name: str, size: int, default: Any) -> list[Any]:
    values = columns.get(name)
    return list(values) if values is not None else [default] * size


def _pass_fraction(result: ProgramResult) -> float:
    return sum(result.passed) / len(result.passed) if result.passed else 0.0


def _log(columns: Mapping[str, Any], name: str, values: Sequence[float | None]) -> None:
    log_metric = columns.get("log_metric")
    present = [v for v in values if v is not None]
    if callable(log_metric) and present:
        log_metric(name, sum(present) / len(present))


class _CodeBLEU:
    """Max-over-references CodeBLEU for Python, with codebleu's per-call warnings silenced."""

    def __init__(self, max_references: int) -> None:
        self.max_references = max_references

    def __call__(self, code: str, references: Sequence[str]) -> float:
        from codebleu import calc_codebleu

        refs = [r for r in dict.fromkeys(references) if r.strip()][: self.max_references]
        if not refs:
            return math.nan
        root = logging.getLogger()
        level = root.level
        # codebleu warns on the root logger for every reference without data flow (tiny functions)
        root.setLevel(max(level, logging.ERROR))
        try:
            return max(calc_codebleu([ref], [code], "python")["codebleu"] for ref in refs)
        finally:
            root.setLevel(level)


# --- refinement ---------------------------------------------------------------------------------


class RefinementReward:
    """5 * (CodeBLEU + pass fraction) - 5 for the code of each completion (see the module doc)."""

    __name__ = "refinement_reward"

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        memory_mb: int = 1024,
        workers: int | None = None,
        max_references: int = 8,
    ) -> None:
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.workers = workers
        self.codebleu = _CodeBLEU(max_references)

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
    ) -> Rewards:
        size = len(completions)
        styles = _column(columns, "style", size, "explain+refine")
        tests = [decode_tests(t) for t in _column(columns, "tests", size, "[]")]
        setups = _column(columns, "setup", size, "")
        prompt_codes = _column(columns, "prompt_code", size, "")
        entry_points = _column(columns, "entry_point", size, "")
        references = _column(columns, "reference_refinements", size, [])
        replies = [_parsed(completion_text(c), s) for c, s in zip(completions, styles, strict=True)]
        todo = [i for i, reply in enumerate(replies) if reply is not None]
        jobs = [
            Program(
                _program(replies[i].code, prompt_codes[i] or "", entry_points[i] or ""),  # type: ignore[union-attr]
                tests[i],
                setups[i] or "",
                self.timeout,
                self.memory_mb,
            )
            for i in todo
        ]
        results = run_many(jobs, workers=self.workers) if jobs else []
        rewards: Rewards = [REFINEMENT_MIN] * size
        fractions: list[float | None] = [None] * size
        bleus: list[float | None] = [None] * size
        for i, result in zip(todo, results, strict=True):
            fraction = _pass_fraction(result)
            bleu = self.codebleu(replies[i].code, references[i] or [])  # type: ignore[union-attr]
            fractions[i] = fraction
            if math.isnan(bleu):
                rewards[i] = outcome_score(fraction)
            else:
                bleus[i] = bleu
                rewards[i] = refinement_score(bleu, fraction)
        _log(columns, "refinement/pass_fraction", [f if f is not None else 0.0 for f in fractions])
        _log(columns, "refinement/codebleu", bleus)
        _log(columns, "refinement/parsed", [1.0 if r is not None else 0.0 for r in replies])
        return rewards


# --- explanation --------------------------------------------------------------------------------


class ExplanationReward:
    """(50 * cos - 35) / 3 against the verified explanations (see the module doc)."""

    __name__ = "explanation_reward"

    def __init__(self, embedder: Any = None, *, model: str | None = None) -> None:
        if embedder is None:
            from trainer.embeddings import DEFAULT_EMBEDDING_MODEL, SentenceEmbedder

            embedder = SentenceEmbedder(model or DEFAULT_EMBEDDING_MODEL)
        self.embedder = embedder

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
    ) -> Rewards:
        size = len(completions)
        styles = _column(columns, "style", size, "explain+refine")
        references = _column(columns, "reference_explanations", size, [])
        rewards: Rewards = []
        for completion, style, refs in zip(completions, styles, references, strict=True):
            refs = [r for r in (refs or []) if r.strip()]
            if style == "refine" or not refs:
                rewards.append(None)
                continue
            reply = _parsed(completion_text(completion), style)
            if reply is None or not reply.explanation.strip():
                rewards.append(EXPLANATION_MIN)
                continue
            rewards.append(
                explanation_score(max(self.embedder.similarity(reply.explanation, refs)))
            )
        return rewards


# --- outcome-grounded explanation (CTRL-style) ---------------------------------------------------

EXPLANATION_HEADER = "An explanation of why the code is wrong:"


def conditioned_conversation(
    task: str, wrong_code: str, feedback: str, explanation: str
) -> list[dict[str, str]]:
    """The refine-style prompt with the explanation added to the feedback turn (the generator
    writes code only, conditioned on the explanation it is given)."""
    text = f"{feedback.strip()}\n\n{EXPLANATION_HEADER}\n{explanation.strip()}"
    return build_conversation(task, wrong_code, text, style="refine")


_DEFAULT_SAMPLING = Sampling()


class PolicyBackend(Backend):
    """Generates with the model being trained (after `attach`), keeping its train/eval mode."""

    def __init__(self) -> None:
        self._backend: Any = None
        self._model: Any = None
        self._lock = threading.Lock()

    def attach(self, model: Any, tokenizer: Any) -> None:
        from ledex.models.hf import HFBackend

        was_training = model.training
        self._model = model
        self._backend = HFBackend(model, tokenizer, spec="policy", name="policy")
        model.train(was_training)
        self.info = self._backend.info

    def generate(
        self, conversations: Sequence[Any], sampling: Sampling = _DEFAULT_SAMPLING
    ) -> list[list[Any]]:
        if self._backend is None:
            raise RuntimeError("the policy backend has no model yet: call attach(model, tokenizer)")
        with self._lock:
            was_training = self._model.training
            self._model.eval()
            try:
                return self._backend.generate(conversations, sampling)
            finally:
                self._model.train(was_training)

    def stream(self, conversation: Any, sampling: Sampling = _DEFAULT_SAMPLING) -> Any:
        yield self.generate([conversation], Sampling(**{**sampling.__dict__, "n": 1}))[0][0].text


class OutcomeExplanationReward:
    """10 * (share of `samples` explanation-conditioned refinements that pass) - 5."""

    __name__ = "outcome_explanation_reward"

    def __init__(
        self,
        backend: str | Backend = "policy",
        *,
        samples: int = 4,
        temperature: float = 0.8,
        max_tokens: int = 512,
        seed: int | None = None,
        timeout: float = 5.0,
        memory_mb: int = 1024,
        workers: int | None = None,
        load_backend: Callable[[str], Backend] | None = None,
    ) -> None:
        self.spec = backend if isinstance(backend, str) else None
        self._backend: Backend | None = None if isinstance(backend, str) else backend
        self._load = load_backend
        self.sampling = Sampling(
            n=samples, temperature=temperature, max_tokens=max_tokens, seed=seed
        )
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.workers = workers
        if self.spec == "policy":
            self._backend = PolicyBackend()

    def attach_policy(self, model: Any, tokenizer: Any) -> None:
        """Give the `policy` generator the model being trained (rl.py does this)."""
        if isinstance(self._backend, PolicyBackend):
            self._backend.attach(model, tokenizer)

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            if self._load is None:
                from ledex.models import load_backend

                self._load = load_backend
            self._backend = self._load(self.spec or "")
        return self._backend

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
    ) -> Rewards:
        size = len(completions)
        styles = _column(columns, "style", size, "explain+refine")
        tests = [decode_tests(t) for t in _column(columns, "tests", size, "[]")]
        setups = _column(columns, "setup", size, "")
        tasks = _column(columns, "task", size, "")
        wrongs = _column(columns, "wrong_code", size, "")
        feedbacks = _column(columns, "feedback", size, "")
        prompt_codes = _column(columns, "prompt_code", size, "")
        entry_points = _column(columns, "entry_point", size, "")
        rewards: Rewards = [None] * size
        todo: list[int] = []
        conversations = []
        for i, (completion, style) in enumerate(zip(completions, styles, strict=True)):
            if style == "refine":
                continue
            reply = _parsed(completion_text(completion), style)
            if reply is None or not reply.explanation.strip():
                rewards[i] = OUTCOME_MIN
                continue
            todo.append(i)
            conversations.append(
                conditioned_conversation(tasks[i], wrongs[i], feedbacks[i], reply.explanation)
            )
        if not todo:
            return rewards
        generated = self.backend.generate(conversations, self.sampling)
        jobs: list[Program] = []
        owners: list[int] = []
        unusable = dict.fromkeys(todo, 0)
        for i, candidates in zip(todo, generated, strict=True):
            for candidate in candidates:
                reply = _parsed(candidate.text, "refine")
                if reply is None:
                    unusable[i] += 1
                    continue
                code = _program(reply.code, prompt_codes[i] or "", entry_points[i] or "")
                jobs.append(Program(code, tests[i], setups[i] or "", self.timeout, self.memory_mb))
                owners.append(i)
        results = run_many(jobs, workers=self.workers) if jobs else []
        passes = dict.fromkeys(todo, 0)
        totals = {i: unusable[i] for i in todo}
        for i, result in zip(owners, results, strict=True):
            passes[i] += int(result.ok)
            totals[i] += 1
        for i in todo:
            rewards[i] = outcome_score(passes[i] / totals[i] if totals[i] else 0.0)
        _log(
            columns,
            "outcome/pass_rate",
            [passes[i] / totals[i] if totals[i] else 0.0 for i in todo],
        )
        return rewards


REWARDS = ("refinement", "explanation", "outcome_explanation")
