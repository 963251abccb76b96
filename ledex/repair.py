"""The self-debugging loop: failure -> candidates -> verify -> next round on the best candidate.

One loop serves both targets. A *verifier* knows how to run a candidate: a benchmark problem runs
the code against its asserts in the sandbox (`ProblemVerifier`); a project puts the fixed
function back into its file and re-runs pytest on a shadow workspace (`ledex.project_repair`).
Every round, candidate and verdict is recorded in the result, so the CLI's `--json`, the
language server and the trainer's evaluation all see the same facts.
"""

from __future__ import annotations

import ast
import contextlib
import re
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from ledex import dialogue, patching
from ledex.models.base import Backend, Sampling

if TYPE_CHECKING:
    from ledex.sandbox.programs import Test


@dataclass(frozen=True)
class RepairConfig:
    n: int = 4  # candidates per round
    rounds: int = 3
    style: dialogue.Style = dialogue.DEFAULT_STYLE
    temperature: float = 0.6  # the first round's; later rounds add temperature_step each
    temperature_step: float = 0.2
    max_temperature: float = 1.0
    max_tokens: int = 1024
    seed: int | None = 0
    stop_at_first: bool = True  # stop at the first verified fix


@dataclass(frozen=True)
class Verdict:
    passed: int
    total: int
    status: str  # "passed", "failed", "error", "timeout", "killed", "rejected" (could not be applied)
    feedback: str
    failing: tuple[str, ...] = ()  # the tests that did not pass (where the verifier names them)

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
    redrawn: int = 0  # replies drawn again: their explanation gave a line as its own fix, or their code changed nothing


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

    def unchanged(self, code: str) -> bool:
        """The candidate changes nothing that `verify` would run: it is rejected without a run.
        Cheap (no run), so the loop asks it of every reply it may draw again."""
        ...

    def diff(self, code: str) -> str:
        """The change the candidate makes, for display."""
        ...


#: progress callback: (event, details) with events "round", "generated" (with the reply's
#: explanation, before its code is verified), "verified", "done"
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
    seen: dict[str, Candidate] = {}
    notify = progress or (lambda event, details: None)
    current, current_feedback = code, feedback  # what this round repairs
    base: Candidate | None = None  # the candidate `current` came from (None: the original code)
    for round_index in range(config.rounds):
        if cancel is not None and cancel.is_set():
            result.cancelled = True
            break
        record = RoundRecord(round_index + 1, current_feedback)
        result.rounds.append(record)
        notify("round", {"round": record.index, "rounds": config.rounds})
        conversation = dialogue.build_conversation(task, current, current_feedback, style=config.style)
        replies = _replies(backend, conversation, config, round_index, record, current, verifier.unchanged, cancel)
        for index, reply in enumerate(replies):
            candidate = _candidate(reply, record.index, len(result.candidates), config.style)
            # the explanation is shown while the code is verified (marked as not yet verified)
            notify("generated", {"round": record.index, "candidate": index + 1, "candidates": config.n,
                                 "explanation": candidate.explanation})  # fmt: skip
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                break
            record.candidates.append(candidate)
            _verify(candidate, verifier, seen, record)
            notify("verified", {"round": record.index, "candidate": index + 1, "verdict": candidate.verdict})
            if candidate.verified and result.fix is None:
                result.fix = candidate
                if config.stop_at_first:
                    break
        replies.close()  # a reply still being generated is not needed
        if result.fix is not None and config.stop_at_first or result.cancelled:
            break
        # The next round repairs the most promising candidate, in a conversation of its own: with
        # the earlier reply kept as a turn, small models mostly write that reply again (measured:
        # 24 of 24 later candidates on three unfixed tests of the 1.5B model were duplicates), and
        # a trained model has only seen one-round conversations (trainer/collect).
        # When no candidate ran, or all did worse than the one this round started from, the next
        # round samples the same conversation again (hotter).
        step = _next_step(record)
        if step is not None and step.verdict is not None and (base is None or step.score >= base.score):
            base, current, current_feedback = step, step.code or current, step.verdict.feedback
    result.seconds = time.perf_counter() - started
    notify("done", {"verified": result.verified, "seconds": result.seconds})
    return result


def _replies(backend: Backend, conversation: list, config: RepairConfig, round_index: int,
             record: RoundRecord, code: str, unchanged: Callable[[str], bool],
             cancel: threading.Event | None = None) -> Generator[str, None, None]:  # fmt: skip
    """The round's n replies, in order, each generated only when the loop asks for it.

    A backend that decodes one completion after another (llama.cpp on a laptop) is asked for one
    at a time, so a fix verified early saves the rest, and each reply is cut off once its code
    block is complete (the recap models write after it is never read), or at once when `cancel`
    is set. Other backends get the whole round as one request, which they batch. The first
    draws' seeds are the same either way. A reply that cannot fix anything is drawn again with
    other seeds: one whose explanation gives a line as its own fix (a streamed one is stopped
    there) and one whose code the verifier would reject as unchanged (`unchanged`, given the
    reply's code); a batch's are drawn again together, once (`_batched`).
    """
    seed = None if config.seed is None else config.seed + round_index * config.n
    sampling = Sampling(n=config.n, temperature=_temperature(config, round_index),
                        max_tokens=config.max_tokens, seed=seed)  # fmt: skip
    current = _definitions(code)
    shown = normalise_code(code)
    # the round's own code sent back is no fix either: after round 1 it is an earlier candidate's
    # code (its verdict known), which the verifier, comparing with the project, would run again
    unchanged = _or_shown(unchanged, shown)
    if not backend.info.sequential:
        yield from _batched(backend, conversation, sampling, unchanged, config.style, record, cancel)
        return
    redraws = 0
    for index in range(config.n):
        seed = sampling.seed_for(index)
        one = replace(sampling, n=1, seed=seed)
        # An explanation that gives a line as its own fix is followed by the code unchanged: that
        # reply is stopped before its code. It, and a reply whose code came back unchanged anyway
        # (a third to a half of the 0.5B models' candidates on the generated suites, trained or
        # not), is drawn again (other seeds), at most n times a round; the last draws, and every
        # greedy one (another seed would change nothing), are kept and judged as usual.
        while True:
            watch = one.temperature > 0 and redraws < config.n
            text, echoed = _stream_one(backend, conversation, one, current, config.style, record, cancel,
                                       watch_echo=watch and config.style == "explain+refine")  # fmt: skip
            if cancel is not None and cancel.is_set():
                break
            if not (echoed or watch and _unchanged(text, config.style, unchanged)):
                break
            redraws += 1
            record.redrawn += 1
            one = replace(one, seed=None if seed is None else seed + _REDRAW_SEED_STEP * redraws)
        yield text


_REDRAW_SEED_STEP = 10_007  # redraws' seeds stay clear of every round's own (seed + round * n + i)


def _batched(backend: Backend, conversation: list, sampling: Sampling, unchanged: Callable[[str], bool],
             style: dialogue.Style, record: RoundRecord, cancel: threading.Event | None,
             ) -> Generator[str, None, None]:  # fmt: skip
    """The round as one request, its replies given in order. A batch cannot be stopped while it
    is written, so its replies that cannot fix anything (`_wasted`) are drawn again afterwards,
    once, in one more request (other seeds) made only when the loop reaches the first of them (a
    fix verified before needs none) and not once cancelled; a redrawn reply wasted again is kept
    and judged as usual. Greedy rounds are not redrawn: another seed would change nothing."""
    started = time.perf_counter()
    (completions,) = backend.generate([conversation], sampling)
    record.generation_seconds += time.perf_counter() - started
    texts = [c.text for c in completions]
    watch = sampling.temperature > 0
    for index in range(len(texts)):
        if watch and _wasted(texts[index], style, unchanged) and not (cancel is not None and cancel.is_set()):
            watch = False  # once a round
            wasted = [i for i in range(index, len(texts)) if _wasted(texts[i], style, unchanged)]
            seed = None if sampling.seed is None else sampling.seed + _REDRAW_SEED_STEP
            started = time.perf_counter()
            (redrawn,) = backend.generate([conversation], replace(sampling, n=len(wasted), seed=seed))
            record.generation_seconds += time.perf_counter() - started
            for i, completion in zip(wasted, redrawn, strict=False):  # a backend may return fewer
                texts[i] = completion.text
                record.redrawn += 1
        yield texts[index]


def _or_shown(unchanged: Callable[[str], bool], shown: str) -> Callable[[str], bool]:
    return lambda code: normalise_code(code) == shown or unchanged(code)


def _wasted(reply: str, style: dialogue.Style, unchanged: Callable[[str], bool]) -> bool:
    """The reply cannot fix anything: its explanation gives a line as its own fix, or the
    verifier would reject its code as unchanged."""
    echoes = style == "explain+refine" and dialogue.echoes_a_change(dialogue.before_code(reply)[0])
    return echoes or _unchanged(reply, style, unchanged)


def _unchanged(reply: str, style: dialogue.Style, unchanged: Callable[[str], bool]) -> bool:
    """The reply's code is complete and the verifier would reject it as unchanged. A reply cut
    off or without code is not: its verdict says more."""
    parsed = dialogue.parse_reply(reply, style=style)
    if isinstance(parsed, dialogue.ParseError) or parsed.truncated:
        return False
    return unchanged(parsed.code)


def _stream_one(backend: Backend, conversation: list, sampling: Sampling, current: dict[str, str],
                style: dialogue.Style, record: RoundRecord, cancel: threading.Event | None,
                *, watch_echo: bool = False) -> tuple[str, bool]:  # fmt: skip
    """One streamed reply, cut once its answer is complete, its repeats, or cancelled; and, with
    `watch_echo`, whether it was stopped because the explanation before its code gives a line as
    its own fix (`dialogue.echoes_a_change`)."""
    started = time.perf_counter()
    text, checked, echoed = "", 0, False
    with contextlib.closing(backend.stream(conversation, sampling)) as pieces:
        for piece in pieces:
            text += piece
            if cancel is not None and cancel.is_set():
                break
            if _ends_a_fence(piece, text) and _answer_complete(text, current, style):
                break
            if watch_echo:
                head, coding = dialogue.before_code(text)
                watch_echo = not coding  # the explanation before the code is complete: last check
                if dialogue.echoes_a_change(head, complete=coding):
                    echoed = True
                    break
            if len(text) - checked >= _LOOP_CHECK_EVERY:
                checked = len(text)
                if (cut := _loop_cut(text)) is not None:
                    text = text[:cut]  # one copy of the repeated unit stays
                    break
    record.generation_seconds += time.perf_counter() - started
    return text, echoed


def _temperature(config: RepairConfig, round_index: int) -> float:
    """Later rounds sample hotter: at the first round's temperature a round mostly repeats the
    candidates that already failed (LeDex samples refinements at 0.8)."""
    if config.temperature == 0:
        return 0.0
    return min(config.max_temperature, config.temperature + round_index * config.temperature_step)


def _ends_a_fence(piece: str, text: str) -> bool:
    """The piece completed a bare fence line: a code block may just have closed."""
    last_line = text.rstrip().rsplit("\n", 1)[-1].strip()
    return ("`" in piece or "~" in piece) and dialogue.FENCE_MARK.fullmatch(last_line) is not None


# Small models sometimes fall into a loop (`<--- <--- <--- ...`, one comment line again and
# again) and never close their code block; decoding that to max_tokens costs a minute on a laptop
# CPU for a reply that cannot be used. A unit (up to two lines' worth) repeated over the end of the
# reply stops it; the repeats are dropped, so the candidate is the reply before the loop, cut off
# inside its code block like one that hit max_tokens.
_LOOP = re.compile(r"(.{1,120}?)\1{5,}\Z", re.DOTALL)
_LOOP_MIN_CHARS = 240  # six repeats and at least this much: real code does not look like it
_LOOP_TAIL = 1500
_LOOP_CHECK_EVERY = 100  # characters between checks (one is a few ms)


def _loop_cut(text: str) -> int | None:
    """Where the repeats start when the reply ends in one unit repeated (at least six times and
    `_LOOP_MIN_CHARS`), else None."""
    found = _LOOP.search(text[-_LOOP_TAIL:])
    if found is None or found.end() - found.start() < _LOOP_MIN_CHARS:
        return None
    return len(text) - (found.end() - found.start()) + len(found.group(1))


def _answer_complete(text: str, current: dict[str, str], style: dialogue.Style) -> bool:
    """The reply holds a complete answer: a closed code block that changes a definition of the
    current code (`_definitions` of it; not a quote of the bug), after its explanation when one
    is asked for."""
    parsed = dialogue.parse_reply(text, style=style)
    if isinstance(parsed, dialogue.ParseError) or parsed.truncated:
        return False
    if style == "explain+refine" and not parsed.explanation:
        return False  # the explanation may follow the code
    return any(current.get(name) != body for name, body in _definitions(parsed.code).items())


def _definitions(code: str) -> dict[str, str]:
    """Functions and methods by qualified name, as their AST (formatting does not count)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):
        return {}
    return {name: ast.dump(node) for name, node in patching.definitions(tree.body)}


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
    """The most promising candidate of a round (most tests passing) seeds the next round.

    Only code that ran: a reply that could not be applied (the code unchanged, the test rewritten)
    tells the model nothing new, and small models copy what is in their context, so the next round
    samples the same conversation again, hotter.
    """
    ran = [c for c in record.candidates if c.verdict is not None and c.duplicate_of is None
           and c.verdict.status != "rejected"]  # fmt: skip
    return max(ran, key=lambda c: c.score, default=None)


def normalise_code(code: str) -> str:
    """Code compared by its AST (comments, blank lines and formatting do not count)."""
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
        if self.unchanged(code):  # as patching does for projects
            return Verdict(0, len(self.problem.tests), "rejected", "The code is unchanged: it still fails the tests.")
        return self.run(code)

    def unchanged(self, code: str) -> bool:
        return normalise_code(code) == normalise_code(self.problem.code)

    def run(self, code: str) -> Verdict:
        from ledex.sandbox import run_program

        outcome = run_program(code, list(self.problem.tests), setup=self.problem.setup, timeout=self.timeout)
        return Verdict(sum(outcome.passed), len(self.problem.tests), outcome.status, outcome.feedback)

    def diff(self, code: str) -> str:
        return patching.unified_diff(self.problem.code, code, f"{self.problem.id}.py")


def repair_problem(
    problem: Problem, backend: Backend, config: RepairConfig = RepairConfig(), **kwargs: Any
) -> RepairResult:
    """Repair a wrong benchmark solution; its first feedback comes from running it."""
    verifier = ProblemVerifier(problem)
    first = verifier.run(problem.code)
    result_target = problem.id
    if first.ok:
        return RepairResult(target=result_target)
    task = dialogue.problem_task(problem.description, problem.tests, problem.entry_point)
    return repair(task, problem.code, first.feedback, verifier=verifier, backend=backend, config=config,
                  target=result_target, **kwargs)  # fmt: skip
