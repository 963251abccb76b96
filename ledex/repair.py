"""The self-debugging loop: failure -> candidates -> verify -> next round with new feedback.

One loop serves both targets. A *verifier* knows how to run a candidate: a benchmark problem runs
the code against its asserts in the sandbox (`ProblemVerifier`); a project puts the fixed
function back into its file and re-runs pytest on a shadow workspace (`ledex.project_repair`).
Every round, candidate and verdict is recorded in the result, so the CLI's `--json`, the
language server and the trainer's evaluation all see the same facts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ledex import dialogue
from ledex.models.base import Backend, Sampling

if TYPE_CHECKING:
    from ledex.sandbox.programs import Test


@dataclass(frozen=True)
class RepairConfig:
    n: int = 4  # candidates per round
    rounds: int = 3
    style: dialogue.Style = dialogue.DEFAULT_STYLE
    temperature: float = 0.6
    max_tokens: int = 1024
    seed: int | None = 0
    stop_at_first: bool = True  # stop at the first verified fix


@dataclass(frozen=True)
class Verdict:
    passed: int
    total: int
    status: str  # "passed", "failed", "error", "timeout", "killed", "rejected" (could not be applied)
    feedback: str

    @property
    def ok(self) -> bool:
        return self.status == "passed" and self.passed == self.total


@dataclass
class Candidate:
    round: int
    index: int
    reply: str
    explanation: str | None = None
    code: str | None = None
    parse_error: str | None = None
    duplicate_of: int | None = None  # index (in the same result) of an identical candidate
    verdict: Verdict | None = None
    diff: str = ""

    @property
    def verified(self) -> bool:
        return self.verdict is not None and self.verdict.ok

    @property
    def score(self) -> tuple[int, int]:
        """Most tests passing first; a candidate that ran beats one that did not apply."""
        if self.verdict is None:
            return (-1, -1)
        return (self.verdict.passed, 0 if self.verdict.status == "rejected" else 1)


@dataclass
class RoundRecord:
    index: int
    feedback: str  # the feedback this round's candidates were asked to fix
    candidates: list[Candidate] = field(default_factory=list)
    generation_seconds: float = 0.0
    verification_seconds: float = 0.0


@dataclass
class RepairResult:
    target: str
    rounds: list[RoundRecord] = field(default_factory=list)
    fix: Candidate | None = None  # the first verified candidate
    seconds: float = 0.0
    cancelled: bool = False

    @property
    def verified(self) -> bool:
        return self.fix is not None

    @property
    def candidates(self) -> list[Candidate]:
        return [c for r in self.rounds for c in r.candidates]

    @property
    def best(self) -> Candidate | None:
        """The verified fix, else the unverified attempt that passed the most tests."""
        if self.fix is not None:
            return self.fix
        ran = [c for c in self.candidates if c.code is not None and c.duplicate_of is None]
        return max(ran, key=lambda c: c.score, default=None)

    @property
    def generation_seconds(self) -> float:
        return sum(r.generation_seconds for r in self.rounds)

    @property
    def verification_seconds(self) -> float:
        return sum(r.verification_seconds for r in self.rounds)

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {
            "test": self.target,
            "verified": self.verified,
            "explanation": (best.explanation or "") if best else "",
            "diff": best.diff if best else "",
            "rounds": len(self.rounds),
            "candidates": len(self.candidates),
            "seconds": round(self.seconds, 3),
            "cancelled": self.cancelled,
            "history": [asdict(r) for r in self.rounds],
        }


class Verifier(Protocol):
    def verify(self, code: str) -> Verdict:
        """Run a candidate's code and say how it did; never raises for bad code."""
        ...

    def diff(self, code: str) -> str:
        """The change the candidate makes, for display."""
        ...


#: progress callback: (event, details) with events "round", "generated", "verified", "done"
Progress = Callable[[str, dict[str, Any]], None]


def repair(
    task: str,
    code: str,
    feedback: str,
    *,
    verifier: Verifier,
    backend: Backend,
    config: RepairConfig = RepairConfig(),
    target: str = "",
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> RepairResult:
    """Iterative explain-and-refine until a candidate passes its verification or rounds run out."""
    started = time.perf_counter()
    result = RepairResult(target=target)
    history: list[dialogue.Attempt] = []
    seen: dict[str, Candidate] = {}
    notify = progress or (lambda event, details: None)
    round_feedback = feedback
    for round_index in range(config.rounds):
        if cancel is not None and cancel.is_set():
            result.cancelled = True
            break
        record = RoundRecord(round_index + 1, round_feedback)
        result.rounds.append(record)
        notify("round", {"round": record.index, "rounds": config.rounds})
        conversation = dialogue.build_conversation(task, code, feedback, style=config.style, history=history)
        replies = _generate(backend, conversation, config, round_index, record)
        notify("generated", {"round": record.index, "candidates": len(replies)})
        for index, reply in enumerate(replies):
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                break
            candidate = _candidate(reply, record.index, len(result.candidates), config.style)
            record.candidates.append(candidate)
            _verify(candidate, verifier, seen, record)
            notify("verified", {"round": record.index, "candidate": index + 1, "verdict": candidate.verdict})
            if candidate.verified and result.fix is None:
                result.fix = candidate
                if config.stop_at_first:
                    break
        if result.fix is not None and config.stop_at_first or result.cancelled:
            break
        step = _next_step(record)
        if step is not None:  # else nothing parsed: sample the same conversation again
            history.append(dialogue.Attempt(reply=step.reply, feedback=step.verdict.feedback))
            round_feedback = step.verdict.feedback
    result.seconds = time.perf_counter() - started
    notify("done", {"verified": result.verified, "seconds": result.seconds})
    return result


def _generate(backend: Backend, conversation: list, config: RepairConfig, round_index: int,
              record: RoundRecord) -> list[str]:  # fmt: skip
    seed = None if config.seed is None else config.seed + round_index * config.n
    sampling = Sampling(n=config.n, temperature=config.temperature, max_tokens=config.max_tokens, seed=seed)
    started = time.perf_counter()
    (completions,) = backend.generate([conversation], sampling)
    record.generation_seconds += time.perf_counter() - started
    return [c.text for c in completions]


def _candidate(reply: str, round_number: int, index: int, style: dialogue.Style) -> Candidate:
    parsed = dialogue.parse_reply(reply, style=style)
    if isinstance(parsed, dialogue.ParseError):
        return Candidate(round_number, index, reply, parse_error=parsed.message)
    return Candidate(round_number, index, reply, explanation=parsed.explanation, code=parsed.code)


def _verify(candidate: Candidate, verifier: Verifier, seen: dict[str, Candidate], record: RoundRecord) -> None:
    if candidate.code is None:
        return
    key = normalise_code(candidate.code)
    if key in seen:  # identical code is verified once
        original = seen[key]
        candidate.duplicate_of, candidate.verdict, candidate.diff = original.index, original.verdict, original.diff
        return
    started = time.perf_counter()
    candidate.verdict = verifier.verify(candidate.code)
    candidate.diff = verifier.diff(candidate.code)
    record.verification_seconds += time.perf_counter() - started
    seen[key] = candidate


def _next_step(record: RoundRecord) -> Candidate | None:
    """The most promising candidate of a round (most tests passing) seeds the next round."""
    ran = [c for c in record.candidates if c.verdict is not None and c.duplicate_of is None]
    return max(ran, key=lambda c: c.score, default=None)


def normalise_code(code: str) -> str:
    """Code compared by its AST (comments, blank lines and formatting do not count)."""
    import ast

    try:
        return ast.dump(ast.parse(code))
    except (SyntaxError, ValueError, RecursionError):
        return "\n".join(line.rstrip() for line in code.strip().splitlines())


# --- benchmark problems --------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A benchmark task (MBPP/HumanEval style) with a wrong solution to repair."""

    id: str
    description: str
    tests: tuple[Test, ...]  # asserts, or stdin/stdout cases (`ledex.sandbox.IOTest`)
    code: str
    entry_point: str | None = None
    setup: str = ""


class ProblemVerifier:
    """Runs a candidate against the problem's asserts in the sandbox."""

    def __init__(self, problem: Problem, *, timeout: float = 5.0) -> None:
        self.problem = problem
        self.timeout = timeout

    def verify(self, code: str) -> Verdict:
        from ledex.sandbox import run_program

        outcome = run_program(code, list(self.problem.tests), setup=self.problem.setup, timeout=self.timeout)
        return Verdict(sum(outcome.passed), len(self.problem.tests), outcome.status, outcome.feedback)

    def diff(self, code: str) -> str:
        from ledex.patching import unified_diff

        return unified_diff(self.problem.code, code, f"{self.problem.id}.py")


def repair_problem(
    problem: Problem, backend: Backend, config: RepairConfig = RepairConfig(), **kwargs: Any
) -> RepairResult:
    """Repair a wrong benchmark solution; its first feedback comes from running it."""
    verifier = ProblemVerifier(problem)
    first = verifier.verify(problem.code)
    result_target = problem.id
    if first.ok:
        return RepairResult(target=result_target)
    task = dialogue.problem_task(problem.description, problem.tests, problem.entry_point)
    return repair(task, problem.code, first.feedback, verifier=verifier, backend=backend, config=config,
                  target=result_target, **kwargs)  # fmt: skip
