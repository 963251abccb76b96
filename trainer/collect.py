"""`ledex-train collect`: execution-verified explanation and refinement data (LeDex §2.1).

    ledex-train collect --source mbpp --split train --model embedded:0.5b --samples 20 \\
        --refinements 10 --output_dir runs/mbpp-0.5b
    ledex-train collect --config collect.yaml          # the same options from a YAML file

1. Sample `samples` (k) solutions per problem at `temperature` (chat prompt; `--no_chat` gives base
   models `shots` worked examples from MBPP's prompt split), read the code out of each reply, drop
   duplicates by normalised code (AST), run every unique solution against the problem's tests in
   the sandbox (parallel warm workers) and write it as a `Sample` (correct and wrong).
2. For every wrong solution ask the teacher (default: the same model, LeDex's self-bootstrap) for
   `refinements` (m) replies per style at `refine_temperature`, through `ledex.dialogue`; run each
   refinement and write it as a `Trajectory`, verified or not, with its per-test results.

`--model mutants` makes the wrong solutions without a model: each problem's reference solution with
one bug injected by `trainer.mutants` (operators spread as `trainer.buggy_projects` spreads them),
kept when an assert fails or the code raises (no hang, no sandbox event), `samples` per problem. `--teacher gold` answers
those with the reference solution after an explanation written from the feedback and the mutation
(`trainer.gold`), verified like any reply. Together they give LeDex-format data (`problem_task`)
on a CPU, in minutes:

    ledex-train collect --model mutants --teacher gold --samples 2 --refinements 1 \\
        --output_dir runs/mbpp-mutants-gold

`--teacher gold` answers a model's own wrong programs too (LeDex's student samples): the reference
solution after the failing test and what it returned, quoting the change only when the program is
one line away from the reference (a wrong algorithm gets no invented slip).

`--shape signature` asks MBPP's problems in HumanEval's shape (`mbpp.as_signature`: the signature,
a docstring with one example, the asserts hidden from prompts and feedback), so data from MBPP
train meets the prompt that HumanEval's protocol and a code-first editor send.

`--hint reference` is a rationalisation pass for a model teacher: its last turn also shows the
problem's reference solution (`prompts.reference_hint`), the record keeps the prompt without it
(`Trajectory.hint` keeps the hint), and its replies are verified like any others; SFT leaves out
a reply whose explanation talks about the hint (`prompts.mentions_hint`). It is for LeDex
data from the student's own wrong programs (wrong algorithms, not one-line slips), which a small
teacher explains badly on its own.

Problems go in batches of `batch_size`: sampled, verified, written (fsync), refined, verified,
written. The output folder is append-only: a rerun with the same settings skips what is there, so a
kill -9 loses at most the batch in flight. The run ends with LeDex's Table 1 (stdout, `table.json`,
`table.md`) and the share of wall time spent verifying.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ledex import dialogue
from ledex.errors import LedexError
from ledex.models.base import Backend, Completion, Conversation, Sampling
from ledex.repair import normalise_code
from ledex.sandbox import isolation
from ledex.sandbox.programs import Program, ProgramPool, ProgramResult
from trainer import gold, prompts
from trainer.buggy_projects import spread
from trainer.data import SOURCES, Task, load_tasks, mbpp
from trainer.mutants import mutations
from trainer.records import (
    SAMPLES_FILE,
    TRAJECTORIES_FILE,
    Sample,
    Snapshots,
    Trajectory,
    append_jsonl,
    claim_settings,
    finished_keys,
    one_writer,
    read_records,
)
from trainer.solve import program_for

PROBLEMS_FILE = "problems.jsonl"  # one line per problem whose sampling step is done
CONFIG_FILE = "config.json"
TABLE_JSON = "table.json"
TABLE_MD = "table.md"
# what a snapshot holds; PROBLEMS_FILE, the marker of what is written, comes last (Snapshots)
SNAPSHOT_FILES = (CONFIG_FILE, TABLE_MD, SAMPLES_FILE, TRAJECTORIES_FILE, PROBLEMS_FILE)
UNPARSED = "unparsed"  # Trajectory.status when the teacher's reply had no usable code
MUTANTS = "mutants"  # --model: wrong solutions are mutants of the reference, not a model's samples
MUTANT_TRIES = 3  # mutants run per wanted wrong solution (some are equivalent, some hang)

# Settings that change what is written: a rerun into the same folder must use the same ones.
# (limit, batch_size, workers, styles and progress only change how much is done, or how fast.)
_RECORD_SETTINGS = (
    "source", "split", "model", "samples", "temperature", "top_p", "chat", "shots", "teacher",
    "refinements", "refine_temperature", "max_tokens", "seed", "timeout", "shown_tests", "hint",
    "shape",
)  # fmt: skip
HINTS = ("", "reference")
SHAPES = ("text", "signature")  # --shape: MBPP's own prompt, or HumanEval's (mbpp.as_signature)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class CollectConfig:
    """Options of `ledex-train collect` (flags or a YAML file via --config)."""

    source: str = field(default="mbpp", metadata=_help(f"data source: {', '.join(SOURCES)}"))
    split: str | None = field(default=None, metadata=_help("split of the source (mbpp: prompt, test, validation, train); default: its training split; 'all': every problem"))  # fmt: skip
    path: str | None = field(default=None, metadata=_help("local copy of the data (file or folder), or a hub id"))  # fmt: skip
    limit: int | None = field(default=None, metadata=_help("use only the first N problems"))
    model: str = field(default="embedded", metadata=_help(f"model spec that samples solutions (embedded, openai:URL#MODEL, hf:PATH, vllm:PATH), or '{MUTANTS}': the reference solution with one injected bug"))  # fmt: skip
    samples: int = field(default=20, metadata=_help("k: solutions sampled per problem"))
    temperature: float = field(default=1.0, metadata=_help("sampling temperature for solutions"))
    top_p: float = field(default=0.95, metadata=_help("nucleus sampling for all generation"))
    chat: bool = field(default=True, metadata=_help("instruct model: ask zero-shot; --no_chat gives base models few-shot examples"))  # fmt: skip
    shots: int = field(default=3, metadata=_help("few-shot examples (MBPP prompt split) with --no_chat"))  # fmt: skip
    teacher: str | None = field(default=None, metadata=_help(f"model spec that explains and refines (default: --model, self-bootstrap), or '{gold.TEACHER}': the reference solution after an explanation from the feedback (and, for --model {MUTANTS}, the mutation)"))  # fmt: skip
    hint: str = field(default="", metadata=_help("rationalisation: 'reference' shows a model teacher the problem's reference solution (the recorded prompt is without it, `Trajectory.hint` keeps it; SFT skips a reply whose explanation mentions it); its replies are still verified"))  # fmt: skip
    refinements: int = field(default=10, metadata=_help("m: teacher replies per wrong solution and style"))  # fmt: skip
    refine_temperature: float = field(default=0.8, metadata=_help("temperature of the teacher"))
    styles: list[str] = field(default_factory=lambda: ["explain+refine"], metadata=_help("dialogue styles: explain+refine and/or refine"))  # fmt: skip
    max_tokens: int = field(default=1024, metadata=_help("token budget of every reply"))
    seed: int = field(default=0, metadata=_help("sampling seed (each candidate gets seed + index)"))
    output_dir: str = field(default="runs/collect", metadata=_help("folder for samples.jsonl, trajectories.jsonl and the table"))  # fmt: skip
    data_dir: str | None = field(default=None, metadata=_help("folder for gzip snapshots to commit (after every batch, at most every 10 minutes, and at the end); seeds an empty output_dir"))  # fmt: skip
    batch_size: int = field(default=8, metadata=_help("problems per batch (a kill loses at most one)"))  # fmt: skip
    workers: int | None = field(default=None, metadata=_help("sandbox workers (default: CPU count)"))  # fmt: skip
    timeout: float = field(default=5.0, metadata=_help("seconds for one program and all its tests"))
    shown_tests: int | None = field(default=3, metadata=_help("tests shown in the prompt (all still judge)"))  # fmt: skip
    shape: str = field(default="text", metadata=_help("MBPP's prompt: 'text' (its description and asserts) or 'signature' (HumanEval's shape: the signature, a docstring with one example, the asserts hidden, also in feedback)"))  # fmt: skip
    n_ctx: int | None = field(default=None, metadata=_help("context window of an embedded model"))
    n_threads: int | None = field(default=None, metadata=_help("CPU threads of an embedded model (default: all; fewer leaves room for the sandbox)"))  # fmt: skip
    progress: bool = field(default=True, metadata=_help("show a progress bar (--no_progress hides it)"))  # fmt: skip

    def check(self) -> None:
        """Raise ValueError for settings that cannot work (a usage error, exit code 2)."""
        for name in ("samples", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1")
        if self.refinements < 0 or self.shots < 0:
            raise ValueError("--refinements and --shots cannot be negative")
        if self.workers is not None and self.workers < 1:
            raise ValueError("--workers must be at least 1")
        bad = [style for style in self.styles if style not in dialogue.STYLES]
        if bad or not self.styles:
            raise ValueError(f"--styles must be among {', '.join(dialogue.STYLES)}, got {bad or 'none'}")  # fmt: skip
        if self.timeout <= 0 or self.max_tokens < 1:
            raise ValueError("--timeout and --max_tokens must be positive")
        if self.model == MUTANTS and self.teacher in (None, "", MUTANTS):
            raise ValueError(f"--model {MUTANTS} makes wrong solutions, it cannot refine them: name a --teacher ({gold.TEACHER} or a model)")  # fmt: skip
        if self.hint not in HINTS:
            raise ValueError(f"--hint must be 'reference' or empty, got {self.hint!r}")
        if self.hint and self.teacher_spec in (gold.TEACHER, MUTANTS):
            raise ValueError(f"--hint is for a model teacher: --teacher {gold.TEACHER} knows the fix already")  # fmt: skip
        if self.shape not in SHAPES:
            raise ValueError(f"--shape must be one of {', '.join(SHAPES)}, got {self.shape!r}")
        if self.shape == "signature" and self.source != "mbpp":
            raise ValueError("--shape signature rewrites MBPP problems: use it with --source mbpp")
        if self.teacher == gold.TEACHER and self.refinements > 1:
            raise ValueError(f"--teacher {gold.TEACHER} has one answer per wrong solution: use --refinements 1")  # fmt: skip

    @property
    def teacher_spec(self) -> str:
        return self.teacher or self.model


# --- the run -------------------------------------------------------------------------------------


@dataclass
class Timing:
    wall: float = 0.0
    generation: float = 0.0
    verification: float = 0.0
    programs: int = 0  # programs run in the sandbox by this invocation

    def as_dict(self, problems: int) -> dict[str, float]:
        return {
            "wall_seconds": round(self.wall, 3),
            "generation_seconds": round(self.generation, 3),
            "verification_seconds": round(self.verification, 3),
            "verification_share": round(self.verification / self.wall, 4) if self.wall else 0.0,
            "programs_verified": self.programs,
            "problems_per_minute": round(60 * problems / self.wall, 2) if self.wall else 0.0,
        }


class Collector:
    """One `collect` run over an output folder; see the module docstring."""

    def __init__(self, config: CollectConfig) -> None:
        self.config = config
        self.out = Path(config.output_dir)
        self.timing = Timing()
        self._backends: dict[str, Backend] = {}
        self._pool: ProgramPool | None = None
        self._shots: list[Task] | None = None
        self.stats = {"correct": 0, "wrong": 0, "refinements": 0, "verified": 0}  # this invocation
        self.snapshots = Snapshots(self.out, config.data_dir, SNAPSHOT_FILES)

    # -- the pipeline

    def run(self, tasks: Sequence[Task]) -> dict[str, Any]:
        with one_writer(self.out, "ledex-train collect"):  # two runs would interleave records
            return self._run(tasks)

    def _run(self, tasks: Sequence[Task]) -> dict[str, Any]:
        started = time.perf_counter()
        _check_unique(tasks)
        self._claim_folder()
        sampled = finished_keys(self.out / PROBLEMS_FILE)
        done = finished_keys(self.out / TRAJECTORIES_FILE)
        samples = _by_problem(read_records(self.out / SAMPLES_FILE, Sample))
        todo_at_start = sum(task.id not in sampled for task in tasks)
        try:
            with self.snapshots.on_interrupt(), _progress(len(tasks), self.config.progress) as bar:
                for batch in _chunks(list(tasks), self.config.batch_size):
                    fresh = [task for task in batch if task.id not in sampled]
                    if fresh:
                        self._sample(fresh, samples)
                        sampled.update(task.id for task in fresh)
                    self._refine(batch, samples, done)
                    bar.set_postfix(self.stats, refresh=False)
                    bar.update(len(batch))
                    self.snapshots.when_due()
        finally:
            self.close()
            self.timing.wall = time.perf_counter() - started
        table = table_1(tasks, self.out, self.config.styles)
        table["timing"] = self.timing.as_dict(todo_at_start)
        table["settings"] = asdict(self.config)
        table["sandbox"] = isolation.status().to_dict()  # what "verified" was checked in
        write_table(table, self.out)
        self.snapshots.write()
        return table

    def _sample(self, tasks: list[Task], samples: dict[str, list[Sample]]) -> None:
        """Step 1 for one batch: sample, dedupe, verify, write Samples, mark the problems done."""
        cfg = self.config
        if cfg.model == MUTANTS:
            self._mutate(tasks, samples)
            return
        shots = self._few_shot()
        conversations = [
            prompts.solve_conversation(t, shots, shown_tests=self._shown(t)) for t in tasks
        ]
        sampling = Sampling(
            n=cfg.samples, temperature=cfg.temperature, top_p=cfg.top_p,
            max_tokens=cfg.max_tokens, seed=cfg.seed,
        )  # fmt: skip
        replies = self._generate(cfg.model, conversations, sampling)
        unique: list[tuple[Task, str, str]] = []  # (task, key, code)
        marks = []
        for task, completions in zip(tasks, replies, strict=True):
            seen: set[str] = set()
            unparsed = 0
            for completion in completions:
                parsed = dialogue.parse_reply(completion.text)
                if isinstance(parsed, dialogue.ParseError):
                    unparsed += 1
                    continue
                # HumanEval: a bare body or a whole function both become the program that runs.
                code = program_for(task, parsed.code)
                key = f"{task.id}/{_digest(code)}"
                if key not in seen:
                    seen.add(key)
                    unique.append((task, key, code))
            marks.append(_ProblemMark(task.id, cfg.samples, len(seen), unparsed))
        results = self._verify([Program(code, t.tests, t.setup, cfg.timeout) for t, _, code in unique])
        settings = {
            "n": cfg.samples, "temperature": cfg.temperature, "top_p": cfg.top_p,
            "max_tokens": cfg.max_tokens, "chat": cfg.chat, "shots": len(shots),
        }  # fmt: skip
        known = {s.key for task in tasks for s in samples.get(task.id, ())}
        new = [
            Sample(
                key=key, problem_id=task.id, source=task.source, code=code,
                passed=result.passed, status=result.status, feedback=self._feedback(task, result),
                model=cfg.model, sampling={**settings, "shown_tests": self._shown(task)}, seed=cfg.seed,
            )  # fmt: skip
            for (task, key, code), result in zip(unique, results, strict=True)
            if key not in known  # a rerun after a kill between the two appends below
        ]
        append_jsonl(self.out / SAMPLES_FILE, new)
        self.stats["correct"] += sum(sample.correct for sample in new)
        self.stats["wrong"] += sum(not sample.correct for sample in new)
        append_jsonl(self.out / PROBLEMS_FILE, marks)  # after the samples: a mark means "all written"
        for sample in new:
            samples.setdefault(sample.problem_id, []).append(sample)

    def _mutate(self, tasks: list[Task], samples: dict[str, list[Sample]]) -> None:
        """Step 1 with `--model mutants`: per problem, mutants of its reference solution in an
        operator-spreading order, verified; the first `samples` that fail a test the way a bug does
        are written (`_teachable`: an equivalent mutant is not a wrong solution, a hang or a
        sandbox event is not a bug to teach)."""
        cfg = self.config
        batch = {task.id for task in tasks}
        # The operators kept by the problems before this batch (a resumed run's too), then by each
        # problem of it in order: each problem tries the least-kept operators first, so none
        # dominates, and the choice depends neither on --batch_size nor on a kill and a rerun.
        kept = Counter(
            str(s.sampling.get("operator"))
            for problem, group in samples.items() if problem not in batch for s in group
        )  # fmt: skip
        new: list[Sample] = []
        marks: list[_ProblemMark] = []
        for task in tasks:
            reference = gold.reference(task)
            rng = random.Random(f"{cfg.seed}/{task.id}")
            order = spread([("", m) for m in mutations(reference)], rng, kept)
            tried = [(m, m.apply(reference)) for _, m in order[: cfg.samples * MUTANT_TRIES]]
            results = self._verify([Program(code, task.tests, task.setup, cfg.timeout) for _, code in tried])  # fmt: skip
            known = {s.key for s in samples.get(task.id, ())}  # a rerun after a kill
            found = 0
            for (mutation, code), result in zip(tried, results, strict=True):
                if found == cfg.samples or not _teachable(result):
                    continue
                found += 1
                kept[mutation.operator] += 1
                key = f"{task.id}/{_digest(code)}"
                if key in known:
                    continue
                known.add(key)  # two mutants with the same normalised code are one sample
                settings = {"n": cfg.samples, "operator": mutation.operator, "function": mutation.function}  # fmt: skip
                new.append(Sample(
                    key=key, problem_id=task.id, source=task.source, code=code,
                    passed=result.passed, status=result.status, feedback=self._feedback(task, result),
                    model=MUTANTS, sampling=settings, seed=cfg.seed,
                ))  # fmt: skip
            marks.append(_ProblemMark(task.id, len(tried), found, 0))
        append_jsonl(self.out / SAMPLES_FILE, new)
        self.stats["wrong"] += len(new)
        append_jsonl(self.out / PROBLEMS_FILE, marks)  # after the samples: a mark means "all written"
        for sample in new:
            samples.setdefault(sample.problem_id, []).append(sample)

    def _refine(self, tasks: list[Task], samples: dict[str, list[Sample]], done: set[str]) -> None:
        """Step 2 for one batch: m teacher replies per wrong solution and style, verified, written."""
        cfg = self.config
        if cfg.refinements == 0:
            return
        jobs: list[tuple[Task, Sample, dialogue.Style, list[int]]] = []  # (task, wrong, style, indices)
        for task in tasks:
            for sample in samples.get(task.id, ()):
                if sample.correct:
                    continue
                for style in map(dialogue.check_style, cfg.styles):
                    missing = [
                        j for j in range(cfg.refinements)
                        if f"{sample.key}/{style}/{j}" not in done
                    ]  # fmt: skip
                    if missing:
                        jobs.append((task, sample, style, missing))
        if not jobs:
            return
        texts = {task.id: prompts.task_text(task, self._shown(task)) for task in tasks}
        hints = [prompts.reference_hint(t, style) if cfg.hint else "" for t, _, style, _ in jobs]
        conversations = [
            prompts.with_hint(
                dialogue.build_conversation(texts[t.id], s.code, s.feedback, style=style), hint
            )
            for (t, s, style, _), hint in zip(jobs, hints, strict=True)
        ]
        sampling = Sampling(
            n=cfg.refinements, temperature=cfg.refine_temperature, top_p=cfg.top_p,
            max_tokens=cfg.max_tokens, seed=cfg.seed,
        )  # fmt: skip
        if cfg.teacher_spec == gold.TEACHER:  # the known fix: no model runs
            replies = [[Completion(gold.problem_reply(t, s, style))] * cfg.refinements for t, s, style, _ in jobs]  # fmt: skip
        else:
            replies = self._generate(cfg.teacher_spec, conversations, sampling)
        pending: list[tuple[Task, Sample, dialogue.Style, int, str, dialogue.Reply | dialogue.ParseError, str]] = []  # fmt: skip
        for (task, sample, style, missing), completions, hint in zip(jobs, replies, hints, strict=True):  # fmt: skip
            for j in missing:
                text = completions[j].text
                pending.append((task, sample, style, j, text, dialogue.parse_reply(text, style=style), hint))  # fmt: skip
        # Identical refinements of the same problem are run once.
        programs: dict[str, Program] = {}
        for task, _, _, _, _, parsed, _ in pending:
            if isinstance(parsed, dialogue.Reply):
                code = program_for(task, parsed.code)
                programs.setdefault(
                    f"{task.id}/{_digest(code)}", Program(code, task.tests, task.setup, cfg.timeout)
                )
        verdicts = dict(zip(programs, self._verify(list(programs.values())), strict=True))
        settings = {
            "n": cfg.refinements, "temperature": cfg.refine_temperature, "top_p": cfg.top_p,
            "max_tokens": cfg.max_tokens,
        }  # fmt: skip
        records = []
        for task, sample, style, j, text, parsed, hint in pending:
            common: dict[str, Any] = {
                "key": f"{sample.key}/{style}/{j}", "problem_id": task.id, "source": task.source,
                "task": texts[task.id], "wrong_code": sample.code, "feedback": sample.feedback,
                "style": style, "reply": text, "teacher": cfg.teacher_spec,
                "sampling": {**settings, "shown_tests": self._shown(task)}, "seed": cfg.seed, "hint": hint,
            }  # fmt: skip
            if isinstance(parsed, dialogue.ParseError):
                records.append(Trajectory(
                    **common, explanation="", refinement="", passed=[False] * len(task.tests),
                    status=UNPARSED, parse_error=parsed.message,
                ))  # fmt: skip
                continue
            code = program_for(task, parsed.code)
            result = verdicts[f"{task.id}/{_digest(code)}"]
            records.append(Trajectory(
                **common, explanation=parsed.explanation, refinement=code,
                passed=result.passed, status=result.status,
            ))  # fmt: skip
        append_jsonl(self.out / TRAJECTORIES_FILE, records)
        self.stats["refinements"] += len(records)
        self.stats["verified"] += sum(record.verified for record in records)
        done.update(record.key for record in records)

    # -- the machinery

    def _shown(self, task: Task) -> int | None:
        """Tests the prompts about `task` show: none for a task that starts from code (HumanEval,
        APPS's starter code, `--shape signature`), as `eval` asks it; else `--shown_tests`."""
        return 0 if prompts.hides_tests(task) else self.config.shown_tests

    def _feedback(self, task: Task, result: ProgramResult) -> str:
        """What the refinement turn shows about a wrong solution (`Sample.feedback`), by the rule
        `eval` follows (`prompts.refinement_feedback`)."""
        return prompts.refinement_feedback(result, self._shown(task))

    def _generate(
        self, spec: str, conversations: list[Conversation], sampling: Sampling
    ) -> list[list[Any]]:
        backend = self._backend(spec)
        started = time.perf_counter()
        try:
            # One call per batch: vLLM's engine and batching servers schedule it as a whole.
            replies = backend.generate(conversations, sampling)
        finally:
            self.timing.generation += time.perf_counter() - started
        if len(replies) != len(conversations) or any(len(r) < sampling.n for r in replies):
            raise LedexError(f"the model {spec} returned fewer completions than asked for")
        return replies

    def _verify(self, programs: list[Program]) -> list[ProgramResult]:
        if not programs:
            return []
        if self._pool is None:
            self._pool = ProgramPool(self.config.workers or os.cpu_count() or 1)
        started = time.perf_counter()
        try:
            return self._pool.run_many(programs)
        except RuntimeError as error:  # a worker that cannot start: the sandbox itself is broken
            raise LedexError(f"the sandbox could not run the programs: {error}") from error
        finally:
            self.timing.verification += time.perf_counter() - started
            self.timing.programs += len(programs)

    def _backend(self, spec: str) -> Backend:
        if spec not in self._backends:  # the teacher is the same object when it is the model
            from ledex.models import load_backend

            # Options a backend does not take are ignored by it (load_backend's contract).
            options = {"n_ctx": self.config.n_ctx, "n_threads": self.config.n_threads}
            self._backends[spec] = load_backend(
                spec, **{k: v for k, v in options.items() if v is not None}
            )
        return self._backends[spec]

    def _few_shot(self) -> list[Task]:
        if self.config.chat or self.config.shots == 0:
            return []
        if self._shots is None:
            self._shots = prompts.mbpp_shots(self.config.shots)
        return self._shots

    def _claim_folder(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.snapshots.seed()
        settings = {n: getattr(self.config, n) for n in _RECORD_SETTINGS}
        claim_settings(self.out / CONFIG_FILE, settings, defaults={"hint": "", "shape": "text"})  # older folders: none

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()


@dataclass(frozen=True)
class _ProblemMark:
    """problems.jsonl: a problem whose sampling step is written (it may have no usable solution)."""

    key: str  # the problem id
    asked: int  # completions asked for
    unique: int  # unique parsed solutions
    unparsed: int  # replies without usable code


def _teachable(result: ProgramResult) -> bool:
    """A mutant fails the way a bug does: a test's assert fails, or the code raises. Not a pass (an
    equivalent mutant), a hang, a memory blow-up, or the harness killed or left (the gold teacher
    would blame the mutation for what the sandbox did)."""
    if result.status == "failed":
        return True
    failure = result.failure
    return (
        result.status == "error" and failure is not None and failure.kind == "exception"
        and failure.exception != "MemoryError"
    )  # fmt: skip


def _digest(code: str) -> str:
    return hashlib.sha256(normalise_code(code).encode()).hexdigest()[:16]


def _check_unique(tasks: Sequence[Task]) -> None:
    seen: set[str] = set()
    for task in tasks:
        if task.id in seen:
            raise LedexError(f"problem id {task.id!r} appears twice; ids must be unique")
        seen.add(task.id)


def _by_problem(records: Iterator[Sample]) -> dict[str, list[Sample]]:
    grouped: dict[str, list[Sample]] = {}
    keys: set[str] = set()
    for sample in records:
        if sample.key not in keys:  # a duplicate line never counts twice
            keys.add(sample.key)
            grouped.setdefault(sample.problem_id, []).append(sample)
    return grouped


def _chunks(items: list[Task], size: int) -> Iterator[list[Task]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    # tqdm shows the rate (problems/s) and the ETA; on stderr, so stdout keeps only the table.
    return tqdm(total=total, unit="problem", desc="collect", disable=not enabled, file=sys.stderr)


# --- Table 1 -------------------------------------------------------------------------------------


def table_1(tasks: Sequence[Task], out: Path, styles: Sequence[str]) -> dict[str, Any]:
    """LeDex's Table 1 for the problems of this run, counted from the files (so a resumed run and an
    uninterrupted one give the same numbers)."""
    ids = {task.id for task in tasks}
    samples = {s.key: s for s in read_records(out / SAMPLES_FILE, Sample) if s.problem_id in ids}
    verified_by_style: dict[str, set[str]] = {style: set() for style in styles}
    counts = {style: {"refinements": 0, "verified": 0} for style in styles}
    seen: set[str] = set()
    for trajectory in read_records(out / TRAJECTORIES_FILE, Trajectory):
        if trajectory.problem_id not in ids or trajectory.style not in counts:
            continue
        if trajectory.key in seen:
            continue
        seen.add(trajectory.key)
        counts[trajectory.style]["refinements"] += 1
        if trajectory.verified:
            counts[trajectory.style]["verified"] += 1
            verified_by_style[trajectory.style].add(trajectory.key.rsplit("/", 2)[0])
    wrong = [key for key, s in samples.items() if not s.correct]
    fixed = set().union(*verified_by_style.values()) & set(wrong)
    return {
        "problems": len(ids),
        "problems_with_samples": len({s.problem_id for s in samples.values()}),
        "unique_solutions": len(samples),
        "correct": len(samples) - len(wrong),
        "wrong": len(wrong),
        "wrong_refined": len(fixed),
        "refinement_rate": round(len(fixed) / len(wrong), 4) if wrong else 0.0,
        "styles": {
            style: {
                **counts[style],
                "wrong_refined": len(verified_by_style[style] & set(wrong)),
                "refinement_rate": round(len(verified_by_style[style] & set(wrong)) / len(wrong), 4) if wrong else 0.0,  # fmt: skip
            }
            for style in styles
        },
    }


def table_markdown(table: dict[str, Any]) -> str:
    rate = f"{100 * table['refinement_rate']:.1f}%"
    lines = [
        "| Problems | Unique solutions | Correct | Wrong | Wrong with >= 1 verified refinement | Rate |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {table['problems']} | {table['unique_solutions']} | {table['correct']} | "
        f"{table['wrong']} | {table['wrong_refined']} | {rate} |",
        "",
        "| Style | Refinements | Verified | Wrong refined | Rate |",
        "|---|---:|---:|---:|---:|",
    ]
    for style, row in table["styles"].items():
        lines.append(
            f"| {style} | {row['refinements']} | {row['verified']} | {row['wrong_refined']} | "
            f"{100 * row['refinement_rate']:.1f}% |"
        )
    if table.get("sandbox"):
        lines += ["", f"Verified in the sandbox: {table['sandbox']['summary']}."]
    timing = table.get("timing")
    if timing:
        lines += [
            "",
            f"This invocation: {timing['wall_seconds']:.1f} s wall, "
            f"{timing['generation_seconds']:.1f} s generating, "
            f"{timing['verification_seconds']:.1f} s verifying "
            f"({100 * timing['verification_share']:.1f}% of wall time, "
            f"{timing['programs_verified']} programs), "
            f"{timing['problems_per_minute']:.2f} new problems/min.",
        ]
    return "\n".join(lines) + "\n"


def write_table(table: dict[str, Any], out: Path) -> None:
    (out / TABLE_JSON).write_text(json.dumps(table, indent=2) + "\n")
    (out / TABLE_MD).write_text(table_markdown(table))


# --- the command ---------------------------------------------------------------------------------


def parse_config(argv: Sequence[str]) -> CollectConfig:
    from trl import TrlParser  # argparse over the dataclass, plus --config FILE.yaml

    parser = TrlParser((CollectConfig,), prog="ledex-train collect", description=__doc__.splitlines()[0])  # fmt: skip
    (config,) = parser.parse_args_and_config(list(argv))
    return config


# LeDex collects from training splits; a user's own file has none unless its lines say so.
DEFAULT_SPLITS = {"mbpp": "train", "apps": "train", "codecontests": "train"}


def split_of(config: CollectConfig) -> str | None:
    if config.split in (None, ""):
        return DEFAULT_SPLITS.get(config.source)
    return None if config.split == "all" else config.split


def collect(config: CollectConfig) -> dict[str, Any]:
    """Run `collect` with `config`; returns Table 1 (also written to the output folder)."""
    config.check()
    tasks = load_tasks(config.source, split=split_of(config), path=config.path, limit=config.limit)
    if config.shape == "signature":
        shaped = [mbpp.as_signature(task) for task in tasks]
        if dropped := [t.id for t, s in zip(tasks, shaped, strict=True) if s is None]:
            print(f"--shape signature: {len(dropped)} problems have no function to take a signature "
                  f"from and are left out ({', '.join(dropped[:5])}{', ...' if len(dropped) > 5 else ''})",
                  file=sys.stderr)  # fmt: skip
        tasks = [task for task in shaped if task is not None]
    if not tasks:
        raise LedexError(f"no problems in {config.source} (split {split_of(config)!r})")
    if config.teacher_spec == gold.TEACHER and (missing := [t.id for t in tasks if not t.reference.strip()]):  # fmt: skip
        raise ValueError(
            f"--teacher {gold.TEACHER} answers with a problem's reference solution, and {len(missing)} of "
            f"{len(tasks)} problems have none ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})"
        )
    return Collector(config).run(tasks)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(sys.argv[1:] if argv is None else argv)
    try:
        table = collect(config)
    except ValueError as error:  # bad settings: a usage error
        print(f"ledex-train collect: error: {error}", file=sys.stderr)
        return 2
    except LedexError as error:
        print(
            f"ledex-train collect: error: {error}\n"
            f"(what was written is kept in {config.output_dir}; rerun the same command to resume)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(f"ledex-train collect: interrupted; rerun to resume from {config.output_dir}", file=sys.stderr)  # fmt: skip
        return 130
    print(table_markdown(table), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
