"""The repair loop measured on the buggy projects of `benchmarks/cases/`: how many failing tests get
a verified fix, how long it takes, and how much of the time goes outside the model and pytest.

    python benchmarks/repair.py [--models embedded:0.5b embedded] [--styles explain+refine refine]
                                [--rounds-list 1 3] [-n 4] [--seed 0] [--cases NAME ...] [--limit N]
                                [--out benchmarks/results/repair-TIMESTAMP.jsonl]

Every case is copied to a temporary folder (without its case.json) and its tests are run once with
this interpreter; then, for every configuration (model x style x rounds, same cases, same seeds),
each failing test is repaired on its own, as `ledex fix` would (`project_repair.prepare` then
`project_repair.repair_test`; no reuse of another test's fix). Each model is loaded once.

One JSON line per (configuration, test) goes to `--out` as soon as it is measured: the verdict,
total seconds, model generation seconds, verification seconds (patching + the sandboxed pytest
runs), the pytest runs' own wall time, "other" seconds (total - generation - verification:
locating the function, building the prompt, parsing replies, the loop itself), the function that
was located, and every candidate. Rerunning with the same `--out` skips the (model, style, rounds,
n, seed, case, test) keys already there, so a long run can be resumed; the table always covers
every record in the file that matches the current selection.

Fewer rounds are a prefix of more rounds (same seed, same prompts: round 1 of a 3-round run is
exactly a 1-round run), so by default only the largest of `--rounds-list` is run and the smaller
ones are derived from its per-round records (marked `derived_from`; the seconds are those of the
rounds kept). `--no-derive` runs every configuration for real.

Per configuration the table shows: verified-fix rate (verified failing tests / failing tests),
fixed cases (every failing test of the case verified) / cases, p50/p90 seconds per failing test,
p50 seconds per verified fix, the share of repair wall time outside generation and pytest (goal
<= 5%), and how often the located function is the case's buggy one. Model load time and the
initial test runs are shown apart (they are one-off costs shared by the configurations).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make `ledex` and `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.anchor import STYLE as ANCHOR
from benchmarks.anchor import naive_anchor
from benchmarks.cases.check_cases import CASES_ROOT, Case, copy_case, load_cases
from trainer.buggy_projects import BUG_PLACES, GENERATOR_VERSION, heldout_suite
from trainer.project_shapes import SHAPES

RESULTS_DIR = Path(__file__).resolve().parent / "results"
GOAL = (
    "goals: default model >= 65% of failing tests verified, p50 <= 15 s per verified fix; "
    "0.5B > 0; other <= 5%"
)
KEY_FIELDS = ("model", "style", "rounds", "n", "seed", "case", "test")
_TEXT_LIMIT = 4000  # characters of a reply / code / feedback kept per candidate in the JSONL


# --- pure helpers (tested in tests/benchmarks/test_repair_benchmark.py) -------------------------


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks (numpy's
    default); None for no values."""
    data = sorted(values)
    if not data:
        return None
    position = (len(data) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return data[low] + (data[high] - data[low]) * (position - low)


def select_cases(
    cases: Sequence[Case], patterns: Sequence[str] = (), limit: int | None = None
) -> list[Case]:
    """The cases whose name is or contains one of `patterns` (all without), the first `limit`."""
    chosen = [c for c in cases if not patterns or any(p == c.name or p in c.name for p in patterns)]
    return chosen[:limit] if limit is not None else chosen


def record_key(record: dict[str, Any]) -> tuple:
    return tuple(record.get(name) for name in KEY_FIELDS)


def read_records(path: Path, kind: str = "test") -> list[dict[str, Any]]:
    """The records of a JSONL file (none if it does not exist): the objects with a `kind` field
    (a test's, or a project's in benchmarks/fix_projects.py); a torn last line is ignored."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # e.g. the last line of a run killed mid-write
        if isinstance(record, dict) and kind in record:
            records.append(record)
    return records


def prefix_record(record: dict[str, Any], rounds: int) -> dict[str, Any]:
    """The record a `rounds`-round run would have written, from a run with more rounds: its first
    `rounds` rounds (candidates, verdict and seconds); the time of the dropped rounds is removed."""
    if rounds >= record["rounds"]:
        raise ValueError(f"a {rounds}-round prefix of a {record['rounds']}-round run is no prefix")
    derived = dict(record, rounds=rounds, derived_from=record["rounds"])
    candidates = [c for c in record.get("candidates", []) if c["round"] <= rounds]
    per_round = record.get("round_seconds", [])
    dropped = per_round[rounds:]
    generation = sum(g for g, _ in dropped)
    verification = sum(v for _, v in dropped)
    kept_verification = record["verification_seconds"] - verification
    share = kept_verification / record["verification_seconds"] if record["verification_seconds"] else 1
    derived |= {
        "candidates": candidates,
        "candidates_count": len(candidates),
        "rounds_used": min(record.get("rounds_used", 0), rounds),
        "round_seconds": per_round[:rounds],
        "redrawn": record.get("redrawn", [])[:rounds],
        "verified": any(c.get("status") == "passed" and c.get("passed") == c.get("total")
                        and c.get("duplicate_of") is None for c in candidates),  # fmt: skip
        "seconds": round(record["seconds"] - generation - verification, 3),
        "generation_seconds": round(record["generation_seconds"] - generation, 3),
        "verification_seconds": round(kept_verification, 3),
        "pytest_seconds": round(record.get("pytest_seconds", 0.0) * share, 3),
    }
    if dropped and not derived["verified"]:
        # the best attempt shown is the last kept round's, not the dropped rounds'
        last = [c for c in candidates if c["round"] == rounds] or candidates
        best = max(last, key=lambda c: (c.get("passed") or -1), default=None)
        derived["diff"] = best.get("diff") if best else None
        derived["explanation"] = best.get("explanation") if best else None
    return derived


@dataclass
class Row:
    model: str
    style: str
    rounds: int
    tests: int = 0
    verified: int = 0
    cases: int = 0
    fixed_cases: int = 0
    errors: int = 0  # tests that could not be repaired at all (no function located, ...)
    located: int = 0  # tests whose located function is the case's buggy function
    in_prompt: int = (
        0  # ... or the buggy function is among the called functions shown in the prompt
    )
    p50: float | None = None
    p90: float | None = None
    p50_fix: float | None = None
    p50_tokens: float | None = None  # tokens per reply (candidates that were generated)
    seconds: float = 0.0
    generation: float = 0.0
    verification: float = 0.0
    pytest: float = 0.0
    other: float = 0.0
    # candidate verdicts, by status, and "redrawn": replies drawn again (no candidates)
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.verified / self.tests if self.tests else 0.0

    @property
    def other_share(self) -> float:
        return self.other / self.seconds if self.seconds else 0.0


def summarize(records: Iterable[dict[str, Any]]) -> list[Row]:
    """One row per (model, style, rounds), in the order the configurations first appear."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["model"], record["style"], record["rounds"]), []).append(record)
    rows = []
    for (model, style, rounds), group in groups.items():
        row = Row(model, style, rounds, tests=len(group))
        row.verified = sum(1 for r in group if r["verified"])
        row.errors = sum(1 for r in group if r.get("error"))
        row.located = sum(1 for r in group if r.get("located_bug"))
        row.in_prompt = sum(1 for r in group if r.get("located_bug") or r.get("bug_in_prompt"))
        by_case: dict[str, list[bool]] = {}
        for r in group:
            by_case.setdefault(r["case"], []).append(bool(r["verified"]))
        row.cases = len(by_case)
        row.fixed_cases = sum(1 for verdicts in by_case.values() if all(verdicts))
        seconds = [r["seconds"] for r in group]
        row.p50, row.p90 = percentile(seconds, 50), percentile(seconds, 90)
        row.p50_fix = percentile((r["seconds"] for r in group if r["verified"]), 50)
        tokens = [c["tokens"] for r in group for c in r.get("candidates", []) if c.get("tokens") is not None]
        row.p50_tokens = percentile(tokens, 50)
        row.seconds = sum(seconds)
        row.generation = sum(r["generation_seconds"] for r in group)
        row.verification = sum(r["verification_seconds"] for r in group)
        row.pytest = sum(r.get("pytest_seconds", 0.0) for r in group)
        row.other = sum(r["other_seconds"] for r in group)
        for r in group:
            for candidate in r.get("candidates", []):
                status = candidate_status(candidate)
                row.statuses[status] = row.statuses.get(status, 0) + 1
        redrawn = sum(sum(r.get("redrawn", [])) for r in group)  # not candidates: drawn again
        if redrawn:
            row.statuses["redrawn"] = redrawn
        rows.append(row)
    return rows


def candidate_status(candidate: dict[str, Any]) -> str:
    """no-code (the reply did not parse), duplicate, or the verdict's status (the table shortens
    them: pass, fail, rej = the fix could not be applied, dup, err = the tests no longer load)."""
    if candidate.get("parse_error"):
        return "no-code"
    if candidate.get("duplicate_of") is not None:
        return "duplicate"
    return candidate.get("status") or "unverified"


def _fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


_SHORT = {
    "passed": "pass",
    "failed": "fail",
    "rejected": "rej",
    "duplicate": "dup",
    "error": "err",
    "redrawn": "redraw",  # replies drawn again: an echoed explanation, or code unchanged
}


def table_rows(rows: Sequence[Row]) -> list[list[str]]:
    """The table's cells, one list per row (the header is `TABLE_HEADER`)."""
    cells = []
    for row in rows:
        statuses = " ".join(
            f"{_SHORT.get(name, name)} {count}" for name, count in sorted(row.statuses.items())
        )
        cells.append(
            [
                row.model,
                row.style,
                str(row.rounds),
                f"{row.verified}/{row.tests} ({row.rate:.0%})",
                f"{row.fixed_cases}/{row.cases}",
                _fmt_seconds(row.p50),
                _fmt_seconds(row.p90),
                _fmt_seconds(row.p50_fix),
                "-" if row.p50_tokens is None else f"{row.p50_tokens:.0f}",
                f"{row.generation / row.seconds:.0%}" if row.seconds else "-",
                f"{row.verification / row.seconds:.0%}" if row.seconds else "-",
                f"{row.other_share:.1%}" if row.seconds else "-",
                f"{row.located}/{row.in_prompt}/{row.tests}",
                statuses or "-",
            ]
        )
    return cells


TABLE_HEADER = [
    "model",
    "style",
    "rounds",
    "verified tests",
    "fixed cases",
    "p50 s/test",
    "p90 s/test",
    "p50 s/fix",
    "tokens/reply",
    "gen",
    "verify",
    "other",
    "bug located/in prompt",
    "candidate verdicts",
]


# --- measuring ------------------------------------------------------------------------------------


class PytestClock:
    """Wall time of the sandboxed pytest runs made through `ledex.project_repair.run_pytest`, so the
    verification time can be split into pytest and patching/diffing."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.runs = 0

    @contextlib.contextmanager
    def installed(self) -> Iterator[PytestClock]:
        from ledex import project_repair

        original = project_repair.run_pytest

        def timed(*args: Any, **kwargs: Any):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.runs += 1

        project_repair.run_pytest = timed
        try:
            yield self
        finally:
            project_repair.run_pytest = original

    def reset(self) -> None:
        self.seconds, self.runs = 0.0, 0


@dataclass
class PreparedCase:
    case: Case
    project: Path
    run: Any  # PytestRun of the initial test run
    failing: list[Any]  # its failing TestOutcomes
    seconds: float
    problem: str = ""  # why the initial run cannot be used


def prepare_case(case: Case, workdir: Path, timeout: float) -> PreparedCase:
    from ledex.sandbox.pytest_runner import run_pytest

    project = copy_case(case, workdir / case.name)
    started = time.perf_counter()
    run = run_pytest(project, (), python=sys.executable, timeout=timeout)
    seconds = time.perf_counter() - started
    problem = ""
    if run.status != "ok" and not run.outcomes:
        problem = f"the tests could not run: {run.message or run.status}"
    elif run.collection_errors:
        problem = f"collection error: {run.collection_errors[0].message}"
    failing = [] if problem else run.failed
    if not problem:
        got = {o.node_id for o in failing}
        if got != set(case.failing):
            problem = (
                f"failing tests {sorted(got)} differ from case.json's {sorted(case.failing)} "
                "(measured anyway)"
            )
    return PreparedCase(case, project, run, failing, seconds, problem)


def _clip(text: str | None, limit: int = _TEXT_LIMIT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters]"


def candidate_records(result: Any, count_tokens: Any = None) -> list[dict[str, Any]]:
    """The candidates of a repair, clipped for the JSONL; `count_tokens(text)` (the embedded
    backend's) adds each reply's length in tokens."""
    records = []
    for candidate in result.candidates:
        verdict = candidate.verdict
        records.append(
            {
                "round": candidate.round,
                "index": candidate.index,
                "status": verdict.status if verdict else None,
                "passed": verdict.passed if verdict else None,
                "total": verdict.total if verdict else None,
                "parse_error": candidate.parse_error,
                "duplicate_of": candidate.duplicate_of,
                "feedback": _clip(verdict.feedback, 1500) if verdict and not verdict.ok else None,
                "explanation": _clip(candidate.explanation, 1500),
                "diff": _clip(candidate.diff),
                "reply": _clip(candidate.reply),
                "tokens": count_tokens(candidate.reply) if count_tokens else None,
            }
        )
    return records


def repair_one(
    prepared: PreparedCase,
    outcome: Any,
    backend: Any,
    config: Any,
    clock: PytestClock,
    timeout: float,
    progress: Any = None,
) -> dict[str, Any]:
    """Repair one failing test; the measurements, as a JSONL record (without the key fields)."""
    from ledex import project_repair

    case = prepared.case
    clock.reset()
    started = time.perf_counter()
    task = project_repair.prepare(
        prepared.project, prepared.run, outcome, python=sys.executable, timeout=timeout
    )
    prepare_seconds = time.perf_counter() - started
    record: dict[str, Any] = {
        "message": outcome.message,
        "verified": False,
        "error": None,
        "function": None,
        "located_bug": False,
        "rounds_used": 0,
        "candidates_count": 0,
    }
    result = None
    if isinstance(task, str):
        record["error"] = task
    else:
        site = task.site
        record["function"] = f"{site.relpath}::{site.symbol.qualname}"
        record["located_bug"] = (
            site.relpath == case.bug_file and site.symbol.qualname == case.bug_function
        )
        record["related"] = [f"{s.relpath}::{s.symbol.qualname}" for s in task.related]
        try:
            if config.style == ANCHOR:
                result = naive_anchor(task, backend, max_tokens=config.max_tokens, seed=config.seed)
            else:
                result = project_repair.repair_test(task, backend, config, progress=progress)
        except Exception as error:  # noqa: BLE001 - one broken test must not end a long run
            record["error"] = f"repair_test raised {error!r}"
        # conversation_parts drops related functions from the end, noting each one it drops
        dropped = sum(1 for note in task.truncated if note.endswith(" functions"))
        shown = record["related"][: len(record["related"]) - dropped]
        bug = f"{case.bug_file}::{case.bug_function}"
        record["bug_in_prompt"] = record["function"] == bug or bug in shown
        if task.truncated:
            record["truncated"] = list(dict.fromkeys(task.truncated))
    seconds = time.perf_counter() - started
    generation = result.generation_seconds if result else 0.0
    verification = result.verification_seconds if result else 0.0
    if result is not None:
        best = result.best
        record |= {
            "verified": result.verified,
            "rounds_used": len(result.rounds),
            "candidates_count": len(result.candidates),
            "loop_seconds": round(result.seconds, 3),
            "round_seconds": [
                [round(r.generation_seconds, 3), round(r.verification_seconds, 3)]
                for r in result.rounds
            ],
            "redrawn": [r.redrawn for r in result.rounds],
            "explanation": _clip(best.explanation, 1500) if best else None,
            "diff": _clip(best.diff) if best else None,
            "candidates": candidate_records(result, getattr(backend, "count_tokens", None)),
        }
    record |= {
        "seconds": round(seconds, 3),
        "prepare_seconds": round(prepare_seconds, 3),
        "generation_seconds": round(generation, 3),
        "verification_seconds": round(verification, 3),
        "pytest_seconds": round(clock.seconds, 3),
        "pytest_runs": clock.runs,
        "other_seconds": round(seconds - generation - verification, 3),
    }
    return record


# --- the command ----------------------------------------------------------------------------------


def add_case_selection(parser: argparse.ArgumentParser) -> None:
    """The options that pick the cases (a suite, names, a limit) and time their test runs; shared
    with benchmarks/fix_projects.py, so that both measure the same projects."""
    add = parser.add_argument
    add(
        "--cases",
        nargs="+",
        default=[],
        metavar="NAME",
        help="only the cases whose name is or contains one of these",
    )
    add("--limit", type=int, help="only the first N (selected) cases")
    add(
        "--suite",
        choices=["cases", "generated"],
        default="cases",
        help="cases: the hand-made projects of benchmarks/cases (the loop was tuned on them); "
        "generated: the held-out suite of buggy projects that trainer.buggy_projects makes from "
        "MBPP's validation and test splits (never trained or tuned on), built once into the cache",
    )
    add("--suite-size", type=int, default=240, help="projects in the generated suite")
    add(
        "--suite-shapes",
        nargs="+",
        default=["function"],
        choices=SHAPES,
        metavar="SHAPE",
        help="shapes of the generated suite's projects, one per problem, the fitting one used least "
        f"(trainer/project_shapes.py: {', '.join(SHAPES)}); another set of shapes is another "
        "suite",
    )
    add(
        "--suite-bugs",
        default="anywhere",
        choices=BUG_PLACES,
        help="where the generated suite's bugs are: anywhere, or only in helpers (functions the "
        "tests do not call themselves, as in several hand-made cases); another place is another "
        "suite, with as many projects as MBPP's held-out problems with a helper give",
    )
    add("--cases-root", type=Path, default=None, help=argparse.SUPPRESS)
    add("--timeout", type=float, default=60.0, help="seconds per pytest run")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--models", nargs="+", default=["embedded:0.5b", "embedded"], help="model specs")
    add(
        "--styles",
        nargs="+",
        default=["explain+refine", "refine"],
        choices=["explain+refine", "refine", "anchor"],
        help="the loop's prompt styles; anchor: one plain prompt with pytest's report and the "
        "project's files, one greedy reply pasted back, no loop (benchmarks/anchor.py); it always "
        "runs as 1 round",
    )
    add("--rounds-list", nargs="+", type=int, default=[1, 3], help="rounds per configuration")
    add("-n", type=int, default=4, help="candidates per round (default: %(default)s, as `ledex fix`)")
    add("--seed", type=int, default=0)
    add("--temperature", type=float, default=0.6)
    add("--max-tokens", type=int, default=1024)
    add_case_selection(parser)
    add(
        "--report",
        action="store_true",
        help="run nothing: print the table of every configuration in --out (any model and style, "
        "this -n and --seed) on the selected cases",
    )
    add("--markdown", action="store_true", help="with --report: print the table as Markdown")
    add(
        "--baseline",
        metavar="'MODEL STYLE'",
        help="also print each configuration's ratios to this one (measured in the same file): "
        "verified tests, fixed cases, p50 seconds per fix, e.g. --baseline 'embedded anchor'",
    )
    add(
        "--no-derive",
        dest="derive",
        action="store_false",
        help="run every rounds configuration instead of deriving the smaller ones as prefixes",
    )
    add(
        "--out",
        type=Path,
        help="JSONL results (default: benchmarks/results/repair-TIMESTAMP.jsonl); resumed if it "
        "exists",
    )
    args = parser.parse_args(argv)
    if args.n < 1 or min(args.rounds_list) < 1 or (args.limit is not None and args.limit < 1):
        parser.error("-n, --rounds-list and --limit must be positive")
    if args.report and (args.out is None or not args.out.exists()):
        parser.error("--report needs the --out file of earlier runs")
    if args.out is None:
        args.out = RESULTS_DIR / f"repair-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    return args


def suite_root(args: argparse.Namespace, err: Any) -> Path:
    """The folder of cases to run: --cases-root, the hand-made cases, or the generated held-out
    suite (written into the cache on first use, reused after)."""
    if args.cases_root is not None:
        return args.cases_root
    if args.suite == "cases":
        return CASES_ROOT
    from ledex.weights import cache_dir

    shapes = "" if args.suite_shapes == ["function"] else "-" + "-".join(args.suite_shapes)
    bugs = "" if args.suite_bugs == "anywhere" else f"-bugs-in-{args.suite_bugs}"
    root = cache_dir() / "suites" / f"heldout-v{GENERATOR_VERSION}-{args.suite_size}{shapes}{bugs}"
    err.print(f"generated held-out suite: {root} (built on first use: about 2 pytest runs per project)")
    heldout_suite(root, size=args.suite_size, python=sys.executable, progress=True,
                  shapes=args.suite_shapes, bugs=args.suite_bugs)  # fmt: skip
    return root


def chosen_cases(args: argparse.Namespace, err: Any) -> list[Case]:
    """The cases that `add_case_selection`'s options pick; says so on `err` when none does."""
    cases = select_cases(load_cases(suite_root(args, err)), args.cases, args.limit)
    if not cases:
        err.print("no case matches --cases/--limit")
    return cases


def _prepare_output(out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    ignore = RESULTS_DIR / ".gitignore"
    if out.resolve().parent == RESULTS_DIR and not ignore.exists():
        ignore.write_text("# benchmark results are local\n*\n", encoding="utf-8")


def discordant(ours: dict[Any, bool], theirs: dict[Any, bool]) -> tuple[int, int, int]:
    """Paired verdicts (key -> passed) of two configurations: the keys both have, those only
    `ours` passed, and those only `theirs` passed (McNemar's discordant pairs)."""
    both = ours.keys() & theirs.keys()
    only_ours = sum(ours[k] and not theirs[k] for k in both)
    only_theirs = sum(theirs[k] and not ours[k] for k in both)
    return len(both), only_ours, only_theirs


def mcnemar_p(only_ours: int, only_theirs: int) -> float:
    """McNemar's exact two-sided p-value: the discordant pairs against a fair coin."""
    n = only_ours + only_theirs
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_ours, only_theirs) + 1)) / 2**n
    return min(1.0, 2 * tail)


def ratio_lines(
    rows: Sequence[Row], baseline: str, records: Sequence[dict[str, Any]] = ()
) -> list[str]:
    """Each configuration against the baseline configuration ("MODEL STYLE"), same records; with
    the records, also the tests only one of the two verified and McNemar's exact p on them (the
    tests of one case are not independent: read it as a guide, not a proof)."""
    model, _, style = baseline.rpartition(" ")
    base = next((r for r in rows if (r.model, r.style) == (model, style)), None)
    if base is None:
        return [f"baseline {baseline!r}: no such configuration in these records"]
    verdicts: dict[tuple[str, str, int], dict[tuple[str, str], bool]] = {}
    for record in records:
        config = (record["model"], record["style"], record["rounds"])
        verdicts.setdefault(config, {})[(record["case"], record["test"])] = bool(record["verified"])
    theirs = verdicts.get((base.model, base.style, base.rounds), {})

    def ratio(ours: float | None, theirs: float | None) -> str:
        return "-" if ours is None or not theirs else f"{ours / theirs:.2f}x"

    lines = [f"ratios to the baseline {base.model} {base.style} r{base.rounds} (same cases, same file):"]
    for row in rows:
        if row is base:
            continue
        ours = verdicts.get((row.model, row.style, row.rounds), {})
        both, only_ours, only_theirs = discordant(ours, theirs)
        paired = (
            f"; paired on {both} tests: {only_ours} verified only here, {only_theirs} only by "
            f"the baseline, McNemar exact p={mcnemar_p(only_ours, only_theirs):.3f}"
            if both
            else ""
        )
        lines.append(
            f"  {row.model} {row.style} r{row.rounds}: verified tests {ratio(row.verified, base.verified)}, "
            f"fixed cases {ratio(row.fixed_cases, base.fixed_cases)}, "
            f"p50 s/fix {ratio(row.p50_fix, base.p50_fix)}{paired}"
        )
    return lines


def markdown_table(records: Sequence[dict[str, Any]]) -> str:
    """The table as Markdown (for a model card or a README), every cell as the console shows it."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(summarize(records))]
    return "\n".join(lines)


def print_report(console: Any, records: list[dict[str, Any]], extra: Sequence[str] = ()) -> None:
    from rich import box
    from rich.table import Table

    if not records:
        console.print("no results for this selection")
        return
    table = Table(
        title="repair loop (same cases, same seeds)", box=box.SIMPLE_HEAD
    )
    for name in TABLE_HEADER:
        left = name in ("model", "style", "candidate verdicts")
        wide = 30 if name == "candidate verdicts" else None
        table.add_column(name, justify="left" if left else "right", overflow="fold", min_width=wide)
    for cells in table_rows(summarize(records)):
        table.add_row(*cells)
    console.print(table)
    for line in (
        "gen / verify / other: shares of the repair wall time; other = outside generation and the "
        "verification's patching + pytest (goal <= 5%)",
        "bug located/in prompt: tests whose repaired function is the case's buggy one / whose "
        "prompt shows the buggy one at all (as the target or a called function)",
        *extra,
        GOAL,
        f"style {ANCHOR}: one plain prompt (pytest's report + the project's files), one greedy "
        "reply pasted back, no loop (benchmarks/anchor.py): what the loop must beat",
    ):
        console.print(line, highlight=False)


@dataclass
class Job:
    model: str
    style: str
    rounds: int
    case: PreparedCase
    outcome: Any  # the failing TestOutcome

    def key(self, n: int, seed: int) -> tuple:
        """The record key (see KEY_FIELDS) of this job's result."""
        name, test = self.case.case.name, self.outcome.node_id
        return (self.model, self.style, self.rounds, n, seed, name, test)

    @property
    def label(self) -> str:
        test = self.outcome.node_id.split("::", 1)[-1]
        return f"{self.model} {self.style} r{self.rounds} {self.case.case.name}::{test}"


class Runner:
    """Runs the pending jobs of one model with a shared progress bar and output file."""

    def __init__(self, args: argparse.Namespace, bar: Any, task_id: Any, out: Any) -> None:
        self.args, self.bar, self.task_id, self.out = args, bar, task_id, out
        self.clock = PytestClock()
        self.records: list[dict[str, Any]] = []
        self.notes: list[str] = []

    def run_model(self, model: str, jobs: list[Job]) -> None:
        from ledex.errors import LedexError
        from ledex.models import load_backend

        self.bar.update(self.task_id, description=f"loading {model}")
        started = time.perf_counter()
        try:
            backend = load_backend(model)
        except LedexError as error:
            self.bar.console.print(f"[red]{model} skipped: {error}[/red]")
            self.bar.advance(self.task_id, len(jobs))
            return
        self.notes.append(
            f"{model}: loaded in {time.perf_counter() - started:.1f} s (not counted above)"
        )
        with backend, self.clock.installed():
            for job in jobs:
                self.run_job(job, backend)

    def run_job(self, job: Job, backend: Any) -> None:
        from ledex.repair import RepairConfig

        args = self.args
        config = RepairConfig(
            n=args.n,
            rounds=job.rounds,
            style=job.style,  # type: ignore[arg-type]  # also "anchor": repair_one routes it first
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            seed=args.seed,
        )

        def progress(event: str, details: dict) -> None:
            if event in ("round", "generated"):
                doing = "generating" if event == "round" else f"verifying {details['candidate']}/{args.n}"
                where = f"round {details['round']}/{job.rounds} {doing}"
                self.bar.update(self.task_id, description=f"{job.label}: {where}")

        self.bar.update(self.task_id, description=job.label)
        record: dict[str, Any] = dict(zip(KEY_FIELDS, job.key(args.n, args.seed), strict=True))
        record["temperature"] = args.temperature
        record |= repair_one(
            job.case, job.outcome, backend, config, self.clock, args.timeout, progress
        )
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()
        self.records.append(record)
        self.bar.console.print(describe(job.label, record))
        self.bar.advance(self.task_id)


def describe(label: str, record: dict[str, Any]) -> str:
    """One progress line (rich markup) for a finished test."""
    verdict = "[green]verified[/green]" if record["verified"] else "[red]not fixed[/red]"
    text = (
        f"{label}: {verdict} in {record['seconds']:.1f} s (gen {record['generation_seconds']:.1f}, "
        f"verify {record['verification_seconds']:.1f}, other {record['other_seconds']:.2f}), "
        f"{record['rounds_used']} round(s), {record['candidates_count']} candidate(s)"
    )
    if not record.get("located_bug"):
        text += f" [yellow]located {record.get('function') or '-'}[/yellow]"
    if record.get("error"):
        text += f" [yellow]{record['error']}[/yellow]"
    return text


def derive_missing(records: list[dict[str, Any]], rounds_list: Sequence[int]) -> list[dict[str, Any]]:
    """The prefix records of `rounds_list` that the file lacks, from its largest-rounds records."""
    if not rounds_list:
        return []
    largest = max(rounds_list)
    have = {record_key(r) for r in records}
    derived = []
    for record in records:
        if record["rounds"] != largest or "derived_from" in record or "round_seconds" not in record:
            continue
        for rounds in rounds_list:
            if rounds < largest:
                candidate = prefix_record(record, rounds)
                if record_key(candidate) not in have:
                    have.add(record_key(candidate))
                    derived.append(candidate)
    return derived


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ledex.sandbox import isolation

    args = parse_args(argv)
    # The table has 14 columns: never fold it into 80 (a log file, a narrow terminal)
    console = Console(highlight=False)
    console = Console(highlight=False, width=max(console.width, 200))
    err = Console(stderr=True, highlight=False)
    cases = chosen_cases(args, err)
    if not cases:
        return 2
    if args.report:
        selected = {case.name for case in cases}
        shown = [
            r
            for r in read_records(args.out)
            if r["case"] in selected
            and (r.get("n"), r.get("seed")) == (args.n, args.seed)
        ]
        extra = ratio_lines(summarize(shown), args.baseline, shown) if args.baseline else []
        if args.markdown:
            print(markdown_table(shown))
            print("\n".join(extra))
        else:
            print_report(console, shown, extra)
        return 0
    _prepare_output(args.out)
    configs = [(style, rounds) for style in args.styles for rounds in args.rounds_list if style != ANCHOR]
    largest = max(args.rounds_list)
    run_configs = [(s, r) for s, r in configs if r == largest] if args.derive else configs
    if ANCHOR in args.styles:
        configs.append((ANCHOR, 1))
        run_configs.append((ANCHOR, 1))
    records = read_records(args.out)
    records += derive_missing(records, args.rounds_list if args.derive else [])
    done = {record_key(r) for r in records}
    if records:
        err.print(f"resuming {args.out}: {len(records)} records already there")
    err.print(
        f"{len(cases)} cases, models {' '.join(args.models)}, styles {' '.join(args.styles)}, "
        f"rounds {' '.join(map(str, args.rounds_list))}, n={args.n}, seed={args.seed}; "
        f"sandbox: {isolation.mode()}; writing {args.out}"
    )

    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ledex-repair-bench-") as scratch:
        started = time.perf_counter()
        with (
            err.status("running the cases' tests") if err.is_terminal else contextlib.nullcontext()
        ):
            prepared = [prepare_case(case, Path(scratch), args.timeout) for case in cases]
        failing = sum(len(p.failing) for p in prepared)
        notes.append(
            f"initial test runs: {time.perf_counter() - started:.1f} s for {len(prepared)} "
            f"cases ({failing} failing tests), not counted above"
        )
        for p in prepared:
            if p.problem:
                err.print(f"[yellow]{p.case.name}[/yellow]: {p.problem}")

        todo = {
            model: [
                job
                for p in prepared
                for style, rounds in run_configs
                for job in (Job(model, style, rounds, p, o) for o in p.failing)
                if job.key(args.n, args.seed) not in done
            ]
            for model in args.models
        }
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err) as bar, args.out.open("a", encoding="utf-8") as out:
            task_id = bar.add_task("repairing", total=sum(map(len, todo.values())))
            runner = Runner(args, bar, task_id, out)
            for model, jobs in todo.items():
                if jobs:
                    runner.run_model(model, jobs)
            bar.update(task_id, description="done")
        records += runner.records
        notes += runner.notes
    derived = derive_missing(records, args.rounds_list if args.derive else [])
    if derived:
        with args.out.open("a", encoding="utf-8") as out:
            out.writelines(json.dumps(r) + "\n" for r in derived)
        records += derived
        notes.append(f"rounds < {largest}: derived from the {largest}-round runs (their prefixes)")

    selected = {p.case.name for p in prepared}
    wanted = {(m, s, r) for m in args.models for s, r in configs}
    shown = [
        r
        for r in records
        if (r["model"], r["style"], r["rounds"]) in wanted
        and (r.get("n"), r.get("seed")) == (args.n, args.seed)
        and r["case"] in selected
    ]
    if args.baseline:
        notes += ratio_lines(summarize(shown), args.baseline, shown)
    print_report(console, shown, notes)
    console.print(f"per-test results: {args.out}", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
