"""Fix a project's failing tests: the one use case behind `ledex fix` and the language server's
Explain and fix (both are front ends that render its events and deliver its result).

Given the project, a pytest run, the failing tests to fix, a model and a `FixConfig`, `fix_tests`

1. locates the function under repair for each failure and groups the failures that exercise the
   same function (the other cases of a parametrized test, the other failing tests of the same
   function): a candidate is judged against all of them, and the one that fixes most wins;
2. reuses an earlier fix where one still verifies (a result the caller already has, or the fix of
   a test handled before in this call), else runs the repair loop (`project_repair.repair_test`);
3. offers a fix that leaves some of those tests failing only when nothing fixed them all, as a
   *partial* fix that says which still fail;
4. combines the fixes into one new text per file and verifies them together (the fixed tests and
   every test that passed in `run`, in one run), leaving out a fix that breaks the combination.
   A candidate is judged by the failing test's files alone (cheap, many times); this last run is
   what keeps a fix from breaking a test in another file, once per call;
5. repairs once more each fix left out because it made such a test fail: from that fix, shown the
   failure it caused, with that test's file checked too; the fixes found are combined again.

Progress comes as typed events (`Event`) to a callback, on the calling thread; a set `cancel`
event stops the work at the next candidate (mid-reply on a streaming backend). Nothing here
writes a user's file: `FixResult.files` holds the verified texts and `source_text.write_all` the
safe way to write them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ledex import patching, project_repair
from ledex.fix_cache import FixCache
from ledex.models.base import Backend
from ledex.project_repair import ProjectTask, ProjectVerifier
from ledex.repair import Candidate, RepairConfig, RepairResult, RoundRecord, Verdict
from ledex.sandbox.pytest_runner import PytestRun, TestOutcome, node_file, run_pytest

DEFAULT_TIMEOUT = 60.0  # seconds per test run
_MAX_LOCATED = 200  # failures located to find the ones that share a function under repair


@dataclass(frozen=True)
class FixConfig:
    """Every knob of a fix, with its one default: the repair loop's and the test runs'."""

    repair: RepairConfig = field(default_factory=RepairConfig)
    python: str | None = (
        None  # the interpreter that runs the tests (None: the project's .venv, else python3)
    )
    timeout: float = DEFAULT_TIMEOUT
    #: extra pytest arguments of the run that found the failures (the language server's setting):
    #: every verification run gets them too, so it collects the same tests
    pytest_args: tuple[str, ...] = ()
    #: show the model what the project's functions returned in the failing test (a traced run of
    #: it, once per test the model is asked about): where a wrong value first appears, often in a
    #: helper the test never calls
    trace_calls: bool = False


# --- events --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepairStarted:
    test: str
    index: int  # 0-based among the tests repaired in this call
    count: int
    rounds: int
    candidates: int  # per round

    def describe(self) -> str:
        return f"{self.test}: asking the model"


@dataclass(frozen=True)
class RoundStarted:
    test: str
    round: int
    rounds: int
    candidates: int

    def describe(self) -> str:
        return f"{self.test}: round {self.round}/{self.rounds}, asking the model for {self.candidates} candidate(s)"


@dataclass(frozen=True)
class CandidateWritten:
    """The model finished a reply; its explanation is known, its code not yet verified."""

    test: str
    round: int
    rounds: int
    candidate: int  # 1-based in the round
    candidates: int
    explanation: str | None

    def describe(self) -> str:
        return f"{self.test}: round {self.round}/{self.rounds}, verifying candidate {self.candidate}/{self.candidates}"


@dataclass(frozen=True)
class CandidateVerified:
    test: str
    round: int
    rounds: int
    candidate: int
    candidates: int
    verdict: Verdict | None  # None: the reply held no usable code

    def describe(self) -> str:
        outcome = (
            f"{self.verdict.passed}/{self.verdict.total} tests pass"
            if self.verdict
            else "no usable code"
        )
        return f"{self.test}: round {self.round}/{self.rounds}, candidate {self.candidate}/{self.candidates}: {outcome}"


@dataclass(frozen=True)
class CheckingEarlierFix:
    test: str

    def describe(self) -> str:
        return f"{self.test}: checking whether an earlier fix also fixes it"


@dataclass(frozen=True)
class CheckingCachedFix:
    test: str

    def describe(self) -> str:
        return f"{self.test}: verifying the fix found before (cached)"


@dataclass(frozen=True)
class VerifyingTogether:
    tests: tuple[str, ...]

    def describe(self) -> str:
        if len(self.tests) == 1:
            return "running every test that passed before with the fix"
        return f"verifying the fixes of {len(self.tests)} tests together"


@dataclass(frozen=True)
class RepairingAgain:
    """A fix verified by its own tests made a test of another file fail: the model is asked again,
    from that fix, with that test checked too."""

    test: str
    broken: str  # the first test, passing before, that the fix made fail

    def describe(self) -> str:
        return f"{self.test}: its fix makes {self.broken} fail, asking the model again"


@dataclass(frozen=True)
class TestDone:
    test: str
    status: str  # TestFix.status

    def describe(self) -> str:
        return f"{self.test}: {self.status.replace('_', ' ')}"


Event = (
    RepairStarted
    | RoundStarted
    | CandidateWritten
    | CandidateVerified
    | CheckingEarlierFix
    | CheckingCachedFix
    | VerifyingTogether
    | RepairingAgain
    | TestDone
)
OnEvent = Callable[[Event], None]


# --- results -------------------------------------------------------------------------------------

Status = Literal["verified", "partial", "fixed_by", "unverified", "skipped", "cancelled"]


@dataclass
class TestFix:
    """What became of one failing test."""

    test: str
    message: str
    task: ProjectTask | None = None
    result: RepairResult | None = None
    skipped: str = ""  # why no repair was attempted
    fixed_by: str = ""  # the test whose fix also fixes this one
    partial: Candidate | None = (
        None  # when nothing fixed every test of the group: the best that fixed some
    )
    still_failing: tuple[str, ...] = ()  # the group's tests the partial fix leaves failing
    cached: bool = False  # the fix came from the on-disk cache (verified again here)
    #: earlier repairs of this test in the same call whose fix was left out for breaking another
    #: test, and repaired again into `result` (their candidates and seconds count too)
    superseded: list[RepairResult] = field(default_factory=list)

    @property
    def status(self) -> Status:
        if self.skipped:
            return "skipped"
        if self.fixed_by:
            return "fixed_by"
        if self.result is None:
            return "skipped"
        if self.result.verified:
            return "verified"
        if self.result.cancelled:
            return "cancelled"
        return "partial" if self.partial is not None else "unverified"

    @property
    def repairs(self) -> list[RepairResult]:
        """Every repair of this test in the call, the superseded ones first, `result` last."""
        return [*self.superseded, *([self.result] if self.result is not None else [])]

    @property
    def fix(self) -> Candidate | None:
        """The candidate offered: the verified fix, else the partial one."""
        if self.result is not None and self.result.fix is not None:
            return self.result.fix
        return self.partial

    @property
    def fixed(self) -> list[str]:
        """The failing tests this test's fix makes pass (it and the others of its group)."""
        if self.task is None or self.fix is None:
            return []
        return [
            node for node in [self.test, *self.task.also_failing] if node not in self.still_failing
        ]


@dataclass(frozen=True)
class FileFix:
    relpath: str
    original: str  # the text the fixes were computed from (`\n` line endings)
    new: str

    def diff(self) -> str:
        return patching.unified_diff(self.original, self.new, self.relpath)


@dataclass
class FixResult:
    project: Path
    tests: list[TestFix]
    files: dict[str, FileFix] = field(
        default_factory=dict
    )  # the fixes, combined and verified together
    included: list[str] = field(default_factory=list)  # the tests whose fixes are in `files`
    notes: list[str] = field(default_factory=list)  # fixes left out of `files`, and why
    cancelled: bool = False
    seconds: float = 0.0

    @property
    def fixed_tests(self) -> list[str]:
        """The failing tests that pass with `files`: their own verified fix, or the fix of the
        test that fixes them, is in the combination verified together (a verified fix left out of
        it fixes nothing the user gets)."""
        included = set(self.included)
        return [
            t.test
            for t in self.tests
            if (t.status == "verified" and t.test in included)
            or (t.status == "fixed_by" and t.fixed_by in included)
        ]

    @property
    def all_fixed(self) -> bool:
        return bool(self.tests) and len(self.fixed_tests) == len(self.tests)

    def diff(self) -> str:
        return "".join(f.diff() for _, f in sorted(self.files.items()))


# --- the use case --------------------------------------------------------------------------------

BackendSource = Backend | Callable[[], Backend]


def fix_tests(
    project: Path,
    run: PytestRun,
    tests: Sequence[TestOutcome],
    backend: BackendSource,
    config: FixConfig = FixConfig(),  # noqa: B008 -- frozen
    *,
    on_event: OnEvent | None = None,
    cancel: threading.Event | None = None,
    earlier: Sequence[TestFix] = (),
    cache: FixCache | None = None,
) -> FixResult:
    """Fix the failing `tests` of the `run` of `project`; see the module's docstring.

    `backend` may be a callable that loads the model: it is called only when a repair needs it
    (an earlier fix that still verifies needs none). `earlier` are results the caller kept (of
    these tests or others in the project): one for the same test computed from the same file
    texts is taken as it is; the verified fixes of the others are tried before asking the model.
    `cache` (on disk) is looked up before the model is asked, its fix verified again, and keeps
    every new verified or partial fix.
    Runs pytest and the model: call it off any event loop. Raises LedexError when the model
    cannot be loaded or reached.
    """
    started = time.perf_counter()
    project = project.resolve()
    notify = on_event or (lambda event: None)
    stopped = cancel.is_set if cancel is not None else (lambda: False)
    get_backend = _loader(backend)
    located = _locate_failures(project, run)
    result = FixResult(project, [])
    covered: dict[str, str] = {}  # test -> the test whose fix fixes it
    wanted = list(dict.fromkeys(o.node_id for o in tests))
    outcomes = {o.node_id: o for o in tests}
    for node_id in wanted:
        outcome = outcomes[node_id]
        if stopped():
            result.cancelled = True
            break
        if node_id in covered:
            result.tests.append(TestFix(node_id, outcome.message, fixed_by=covered[node_id]))
            notify(TestDone(node_id, "fixed_by"))
            continue
        done = _fix_one(project, run, outcome, located, get_backend, config, notify, cancel,
                        earlier, result.tests, len(result.tests), len(wanted), cache)  # fmt: skip
        result.tests.append(done)
        if done.result is not None and done.result.cancelled:
            result.cancelled = True
            break
        for other in done.fixed:
            # the fix that is offered: a test that reused another's fix points to that one
            covered.setdefault(other, done.fixed_by or node_id)
        notify(TestDone(node_id, done.status))
        if done.status in ("verified", "fixed_by"):
            _credit_earlier(result.tests, done)
    if not result.cancelled:
        breaking = _combine(result, run, config, notify, stopped, cache)
        if breaking and not stopped():
            _repair_again(result, breaking, run, get_backend, config, notify, cancel, cache)
    result.seconds = time.perf_counter() - started
    return result


def _credit_earlier(tests: Sequence[TestFix], done: TestFix) -> None:
    """The tests handled before `done` whose own repair found no fix, or a partial one, and that
    `done`'s verified fix also fixes (they are in its group): fixed by that fix, so the partial
    fix is not offered and the test counts as fixed. So are the tests that such a partial fix
    had covered, where `done`'s fix fixes them too."""
    fixed = set(done.fixed)
    superseded = {t.test for t in tests if t is not done and t.status in ("unverified", "partial")
                  and t.test in fixed}  # fmt: skip
    for before in tests:
        if before is not done and before.test in fixed and (
            before.test in superseded or before.fixed_by in superseded
        ):
            before.fixed_by = done.fixed_by or done.test


def _loader(backend: BackendSource) -> Callable[[], Backend]:
    if isinstance(backend, Backend):
        return lambda: backend
    loaded: list[Backend] = []

    def load() -> Backend:
        if not loaded:
            loaded.append(backend())
        return loaded[0]

    return load


def _locate_failures(project: Path, run: PytestRun) -> dict[str, tuple[str, str]]:
    """node id -> (file, qualname) of the function under repair, for the run's failures."""
    index = project_repair.definitions(project)
    found: dict[str, tuple[str, str]] = {}
    for outcome in run.failed[:_MAX_LOCATED]:
        site = project_repair.locate_site(project, outcome, index)
        if site is not None:
            found[outcome.node_id] = (site.relpath, site.symbol.qualname)
    return found


def group_of(task: ProjectTask, run: PytestRun, located: dict[str, tuple[str, str]]) -> list[str]:
    """The other failing tests of the run that exercise the function under repair: those located
    at the same function, and the other cases of the same (parametrized) test."""
    site = (task.site.relpath, task.site.symbol.qualname)
    base = task.node_id.split("[", 1)[0]
    return [o.node_id for o in run.failed if o.node_id != task.node_id
            and (located.get(o.node_id) == site or o.node_id.split("[", 1)[0] == base)]  # fmt: skip


def task_for(project: Path, run: PytestRun, outcome: TestOutcome, *, python: str | None = None,
             timeout: float = 60.0, pytest_args: Sequence[str] = ()) -> ProjectTask | str:  # fmt: skip
    """The task this workflow repairs for one failing test: `project_repair.prepare`, verified
    against the other failing tests of its function too. The trainer collects its data with it,
    so a "verified" training fix means what it means in the editor."""
    task = project_repair.prepare(project, run, outcome, python=python, timeout=timeout,
                                  pytest_args=pytest_args)  # fmt: skip
    if isinstance(task, str):
        return task
    return widen(task, run, group_of(task, run, _locate_failures(project, run)))


def widen(task: ProjectTask, run: PytestRun, also_failing: list[str]) -> ProjectTask:
    """The task verified against `also_failing` too: their test files run, and the tests that
    passed there must keep passing."""
    return guard(replace(task, also_failing=list(also_failing)), run, also_failing)


def guard(task: ProjectTask, run: PytestRun, tests: Sequence[str]) -> ProjectTask:
    """The task with the test files of `tests` run too, and every test of those files that passed
    in `run` required to keep passing."""
    files = list(dict.fromkeys([*task.check_nodes, *(node_file(node) for node in tests)]))
    passing = [
        o.node_id
        for o in run.outcomes.values()
        if o.passed and node_file(o.node_id) in files
    ]
    return replace(task, check_nodes=files,
                   previously_passing=list(dict.fromkeys([*task.previously_passing, *passing])))  # fmt: skip


def _fix_one(project: Path, run: PytestRun, outcome: TestOutcome, located: dict[str, tuple[str, str]],
             get_backend: Callable[[], Backend], config: FixConfig, notify: OnEvent,
             cancel: threading.Event | None, earlier: Sequence[TestFix], done: Sequence[TestFix],
             index: int, count: int, cache: FixCache | None) -> TestFix:  # fmt: skip
    fixing = TestFix(outcome.node_id, outcome.message)
    task = project_repair.prepare(project, run, outcome, python=config.python, timeout=config.timeout,
                                  pytest_args=config.pytest_args)  # fmt: skip
    if isinstance(task, str):
        fixing.skipped = task
        return fixing
    task = widen(task, run, group_of(task, run, located))
    fixing.task = task
    same = _same_task(task, earlier)
    if same is not None:
        fixing.result, fixing.partial, fixing.still_failing = (
            same.result,
            same.partial,
            same.still_failing,
        )
        return fixing
    sources = [
        t
        for t in [*done, *earlier]
        if t.task is not None and t.result is not None and t.result.verified
    ]
    if sources:
        notify(CheckingEarlierFix(task.node_id))
        reused = project_repair.reuse_earlier_fix(task, [(t.task, t.result) for t in sources])  # type: ignore[misc]
        if reused is not None:
            fixing.result = reused[0]
            source = sources[reused[1]]
            if any(source is t for t in done):  # that fix is offered in this call already
                fixing.fixed_by = source.test
            return fixing
    if cache is not None and _from_cache(fixing, task, cache, notify):
        return fixing
    notify(RepairStarted(task.node_id, index, count, config.repair.rounds, config.repair.n))
    if config.trace_calls:
        task = fixing.task = project_repair.with_calls(task)
    backend = get_backend()
    progress = _progress(task.node_id, config, notify)
    fixing.result = project_repair.repair_test(
        task, backend, config.repair, progress=progress, cancel=cancel
    )
    if not fixing.result.verified:
        _judge_partial(fixing)
    if cache is not None and fixing.fix is not None:
        cache.put(task, fixing.fix, partial=fixing.partial is not None)
    return fixing


def _judge_partial(fixing: TestFix) -> None:
    assert fixing.task is not None and fixing.result is not None
    fixing.partial = partial_fix(fixing.task, fixing.result)
    if fixing.partial is not None and fixing.partial.verdict is not None:
        fixing.still_failing = fixing.partial.verdict.failing


def _from_cache(fixing: TestFix, task: ProjectTask, cache: FixCache, notify: OnEvent) -> bool:
    """The cached fix for this task, verified again: True if it is offered (verified or partial)."""
    entry = cache.get(task)
    if entry is None:
        return False
    notify(CheckingCachedFix(task.node_id))
    verifier = ProjectVerifier(task)
    verdict = verifier.verify(entry.code)
    candidate = Candidate(1, 0, "", explanation=entry.explanation, code=entry.code, verdict=verdict,
                          diff=verifier.diff(entry.code))  # fmt: skip
    result = RepairResult(
        task.node_id,
        rounds=[RoundRecord(1, "", [candidate])],
        fix=candidate if verdict.ok else None,
    )
    fixing.result, fixing.cached = result, True
    if not verdict.ok:
        _judge_partial(fixing)
    if fixing.fix is None:
        fixing.result, fixing.cached = None, False
        return False
    return True


def _same_task(task: ProjectTask, earlier: Sequence[TestFix]) -> TestFix | None:
    """An earlier result for this very task: same test, same file texts, same group."""
    for before in earlier:
        if (before.test == task.node_id and before.task is not None and before.result is not None
                and not before.result.cancelled and before.task.project == task.project
                and before.task.sources == task.sources
                and sorted(before.task.also_failing) == sorted(task.also_failing)):  # fmt: skip
            return before
    return None


def partial_fix(task: ProjectTask, result: RepairResult) -> Candidate | None:
    """The candidate that makes the test pass and keeps every test that passed before passing,
    with the most of the group's other failing tests fixed, when none fixed them all."""
    group = set(task.also_failing)
    usable = [c for c in result.candidates
              if c.duplicate_of is None and c.code and c.verdict is not None and c.verdict.status == "failed"
              and c.verdict.failing and set(c.verdict.failing) <= group]  # fmt: skip
    return max(usable, key=lambda c: c.verdict.passed if c.verdict else 0, default=None)


def _progress(
    test: str, config: FixConfig, notify: OnEvent
) -> Callable[[str, dict[str, Any]], None]:
    """The repair loop's progress callback, as typed events."""
    rounds, n = config.repair.rounds, config.repair.n

    def progress(event: str, details: dict[str, Any]) -> None:
        round_ = details.get("round", 1)
        if event == "round":
            notify(RoundStarted(test, round_, rounds, n))
        elif event == "generated":
            notify(
                CandidateWritten(
                    test, round_, rounds, details.get("candidate", 1), n, details.get("explanation")
                )
            )
        elif event == "verified":
            notify(
                CandidateVerified(
                    test, round_, rounds, details.get("candidate", 1), n, details.get("verdict")
                )
            )

    return progress


# --- combining ------------------------------------------------------------------------------------


def _combine(
    result: FixResult,
    run: PytestRun,
    config: FixConfig,
    notify: OnEvent,
    stopped: Callable[[], bool],
    cache: FixCache | None = None,
) -> dict[str, list[str]]:
    """`result.files`: the offered fixes applied one after the other, verified together with the
    tests they fix, those of other tests (`fixed_by`) included, and every test that passed in
    `run`. A fix that breaks the combination is left out (noted, and dropped from the `cache`, so
    that the model is asked again next time) and the rest kept.

    Returns the fixes left out because they made tests fail that passed in `run`: test -> those
    tests."""
    offered = [
        t for t in result.tests if t.fix is not None and t.task is not None and not t.fixed_by
    ]
    riders = [t for t in result.tests if t.fixed_by]
    if not offered:
        return {}
    passing = [o.node_id for o in run.passed]
    if len(offered) == 1 and not _elsewhere(offered, passing):
        # its own verification ran exactly this: the same files, the same tests required
        files = compose(offered)
        if files is not None:
            result.files, result.included = files, [offered[0].test]
        else:
            result.notes.append(f"the fix for {offered[0].test} no longer applies")
        return {}
    notify(VerifyingTogether(tuple(t.test for t in offered)))
    broken = _verify_together(offered, config, riders, passing)
    if broken == []:
        result.files, result.included = compose(offered) or {}, [t.test for t in offered]
        return {}
    kept: list[TestFix] = []
    breaking: dict[str, list[str]] = {}
    before = set(passing)
    for fixing in offered:  # the combination fails: keep the fixes that verify with those before
        if stopped():
            result.cancelled = True
            return {}
        if len(offered) > 1:  # one fix alone: `broken` is its run already
            broken = _verify_together([*kept, fixing], config, riders, passing)
        if broken == []:
            kept.append(fixing)
            continue
        was_passing = [node for node in broken or [] if node in before]
        result.notes.append(_left_out(fixing, kept, broken, was_passing))
        if was_passing:
            breaking[fixing.test] = was_passing
        if cache is not None and fixing.task is not None:
            cache.drop(fixing.task)
    result.files, result.included = compose(kept) or {}, [t.test for t in kept]
    return breaking


def _left_out(fixing: TestFix, kept: Sequence[TestFix], broken: list[str] | None,
              was_passing: Sequence[str]) -> str:  # fmt: skip
    """Why `fixing`'s fix is not offered: the test it makes fail, named where it passed before."""
    together = f" together with the fix for {kept[0].test}" if kept else ""
    if broken is None:
        return f"the fix for {fixing.test} no longer applies{together}, so it was left out"
    if was_passing:
        return (f"the fix for {fixing.test} makes {was_passing[0]} fail{together}, which passed "
                f"before, so it was left out")  # fmt: skip
    return f"the fix for {fixing.test} does not verify{together}, so it was left out"


def _repair_again(result: FixResult, breaking: dict[str, list[str]], run: PytestRun,
                  get_backend: Callable[[], Backend], config: FixConfig, notify: OnEvent,
                  cancel: threading.Event | None, cache: FixCache | None) -> None:  # fmt: skip
    """Repair once more each fix that `_combine` left out for making tests fail that passed
    before (`breaking`: test -> those tests), then combine again.

    The loop starts from the left-out fix, with its failure as the feedback (what the model needs
    to see: its fix alone passed its own tests), and verification now runs those tests' files
    too, and every test the first fix was credited with (its group, and the tests it fixed that
    reused it: `fixed_by`). Only a fix of them all replaces the first, which is kept in
    `TestFix.superseded`. A fix that breaks those tests only together with the other fixes is not
    repaired: its own run shows the model nothing to mend."""
    stopped = cancel.is_set if cancel is not None else (lambda: False)
    redone = False
    unfixed: list[str] = []  # notes: the second combination rewrites those of the first
    for test, broken in breaking.items():
        fixing = next(t for t in result.tests if t.test == test)
        assert fixing.task is not None and fixing.fix is not None
        if stopped():
            result.cancelled = True
            break
        riders = [t.test for t in result.tests if t.fixed_by == test]
        task = guard(widen(fixing.task, run, list(dict.fromkeys([*fixing.task.also_failing, *riders]))),
                     run, broken)  # fmt: skip
        verdict = ProjectVerifier(task).verify(fixing.fix.code or "")
        if not set(broken) & set(verdict.failing):
            continue  # it breaks them only together with other fixes (a partial fix fails anyway)
        notify(RepairingAgain(test, broken[0]))
        start = replace(fixing.fix, verdict=verdict)  # refused now, and why: where the loop starts
        again = project_repair.repair_test(task, get_backend(), config.repair, start=start,
                                           progress=_progress(test, config, notify), cancel=cancel)  # fmt: skip
        if again.cancelled:
            result.cancelled = True
            break
        if again.verified:
            assert fixing.result is not None and again.fix is not None
            fixing.superseded.append(fixing.result)
            fixing.task, fixing.result, fixing.cached = task, again, False
            fixing.partial, fixing.still_failing = None, ()
            if cache is not None:
                cache.put(task, again.fix)
            redone = True
        else:
            unfixed.append(f"asked again with {broken[0]} checked, the model found no fix for "
                           f"{test} that keeps it passing")  # fmt: skip
        notify(TestDone(test, fixing.status))
    if redone and not result.cancelled:
        first = (result.files, result.included, result.notes)
        result.notes = []
        _combine(result, run, config, notify, stopped, cache)
        if result.cancelled:  # what the first combination verified still holds
            result.files, result.included, result.notes = first
    result.notes += unfixed


def _elsewhere(fixes: Sequence[TestFix], passing: Sequence[str]) -> list[str]:
    """The tests of `passing` in files that the fixes' own verification did not run."""
    ran = {node_file(node) for t in fixes if t.task for node in t.task.check_nodes}
    return [node for node in passing if node_file(node) not in ran]


def compose(fixes: Sequence[TestFix]) -> dict[str, FileFix] | None:
    """The fixes applied one after the other to the texts their tasks started from; None when one
    does not apply."""
    originals: dict[str, str] = {}
    texts: dict[str, str] = {}
    for fixing in fixes:
        task, candidate = fixing.task, fixing.fix
        assert task is not None and candidate is not None and candidate.code
        applied = False
        for relpath, source in task.sources.items():
            originals.setdefault(relpath, source)
            current = texts.get(relpath, originals[relpath])
            target = task.site.symbol.qualname if relpath == task.site.relpath else None
            patch = patching.apply_fix(current, candidate.code, target=target)
            if isinstance(patch, patching.Patch):
                texts[relpath], applied = patch.new_source, True
        if not applied:
            return None
    return {
        rel: FileFix(rel, originals[rel], text)
        for rel, text in sorted(texts.items())
        if text != originals[rel]
    }


def _verify_together(
    fixes: Sequence[TestFix],
    config: FixConfig,
    riders: Sequence[TestFix] = (),
    passing: Sequence[str] = (),
) -> list[str] | None:
    """The tests that the fixes, applied together, should make or keep passing and do not ([]:
    none, they verify): what each fixed alone, the `riders` (tests fixed by one of these fixes:
    their `fixed_by`) included, and every test that passed (`passing`, and those their own
    verification required). None when the fixes no longer apply together."""
    files = compose(fixes)
    if files is None:
        return None
    tasks = [t.task for t in fixes if t.task is not None]
    project = tasks[0].project
    offered = {t.test for t in fixes}
    riding = [t.test for t in riders if t.fixed_by in offered]
    nodes = sorted(
        {node for task in tasks for node in task.check_nodes}
        | {node_file(test) for test in [*riding, *passing]}
    )
    required = sorted(
        {node for t in fixes for node in [*t.fixed, *(t.task.previously_passing if t.task else [])]}
        | set(riding)
        | set(passing)
    )
    run = run_pytest(project, nodes, overlay={rel: f.new for rel, f in files.items()},
                     python=config.python, timeout=config.timeout,
                     pytest_args=config.pytest_args)  # fmt: skip
    return [node for node in required if not run.passes([node])]
