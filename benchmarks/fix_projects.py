"""`ledex fix` measured per project: how many buggy projects the whole fix workflow leaves with
every test passing, and how long a project takes.

    python benchmarks/fix_projects.py [--models embedded:0.5b-ledex ...] [-n 4] [--rounds 3]
                                      [--seed 0] [--suite generated --suite-size 48 ...]
                                      [--limit N] [--out FILE] [--report] [--baseline MODEL]

benchmarks/repair.py measures the repair loop on each failing test alone. A user runs `ledex fix
PROJECT`, and `ledex.fix.fix_tests` does more than the loop: it groups the failing tests that
exercise one function, judges each candidate against all of them, counts a test as fixed by
another test's fix, and verifies the fixes together. This benchmark runs exactly that workflow,
once per project with all its failing tests, with `ledex fix`'s settings unless told otherwise
(4 candidates a round, 3 rounds; no fix cache, as `ledex fix --no-cache`). Then it checks the
outcome itself, without the workflow's word for it: the files the workflow offers are laid over
the project and **every** test of the project runs again in the sandbox. A project is fixed when
that run passes; a project the workflow called fixed that this run does not pass is reported as a
disagreement (there should be none).

One JSON line per (model, n, rounds, seed, project) goes to `--out` as soon as it is measured;
rerunning with the same `--out` skips the projects already there. The cases, the suites and their
options are benchmarks/repair.py's, so both benchmarks measure the same projects.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make `ledex` and `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.repair import (
    RESULTS_DIR,
    PreparedCase,
    _clip,
    _prepare_output,
    add_case_selection,
    chosen_cases,
    discordant,
    mcnemar_p,
    percentile,
    prepare_case,
    read_records,
)

KEY_FIELDS = ("model", "n", "rounds", "seed", "project")
HEADER = (
    "model", "n x rounds", "fixed projects", "tests fixed", "p50 s/project", "p90 s/project",
    "p50 s/fixed", "candidates/project", "tokens/reply", "gen", "errors", "disagreements",
)  # fmt: skip


def record_key(record: dict[str, Any]) -> tuple:
    return tuple(record.get(name) for name in KEY_FIELDS)


def latest(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per key, the last written: a project that failed with an error (the model's
    server gone, say) is run again on resume, and its new record replaces the old one."""
    return list({record_key(r): r for r in records}.values())


# --- measuring -----------------------------------------------------------------------------------


def fix_project(prepared: PreparedCase, backend: Any, config: Any) -> dict[str, Any]:
    """`ledex fix` on one prepared project, then every test of it run again with the offered
    files laid over it; the measurements, as a JSONL record (without the key fields)."""
    from ledex import fix
    from ledex.sandbox.pytest_runner import run_pytest

    failing = [o.node_id for o in prepared.failing]
    count_tokens = getattr(backend, "count_tokens", None)  # the embedded backend's
    record: dict[str, Any] = {"failing": failing, "claimed": False, "fixed": False,
                              "tests_fixed": 0, "error": None}  # fmt: skip
    started = time.perf_counter()
    try:
        result = fix.fix_tests(prepared.project, prepared.run, prepared.failing, backend, config)
    except Exception as error:  # noqa: BLE001 - one broken project must not end a long run
        record |= {
            "error": f"fix_tests raised {error!r}",
            "seconds": round(time.perf_counter() - started, 3),
        }
        return record
    seconds = time.perf_counter() - started
    overlay = {relpath: file.new for relpath, file in result.files.items()}
    # the check: every test of the project, not only the ones the workflow verified
    check = (
        run_pytest(
            prepared.project, (), overlay=overlay, python=config.python, timeout=config.timeout
        )
        if overlay
        else None
    )
    # every repair the workflow ran: one left out and repaired again counts both times
    results = [r for t in result.tests for r in t.repairs]
    tests_fixed = sum(1 for node in failing if check and check.passes([node]))
    record |= {
        "claimed": result.all_fixed,
        "fixed": check is not None and check.passes() and tests_fixed == len(failing),
        "tests_fixed": tests_fixed,
        "statuses": {t.test: t.status for t in result.tests},
        "included": result.included,
        "notes": result.notes,
        "check": _outcome(check),
        "seconds": round(seconds, 3),
        "check_seconds": round(time.perf_counter() - started - seconds, 3),
        "generation_seconds": round(sum(r.generation_seconds for r in results), 3),
        "verification_seconds": round(sum(r.verification_seconds for r in results), 3),
        "candidates": sum(len(r.candidates) for r in results),
        "rounds_used": max((len(r.rounds) for r in results), default=0),
        "diff": _clip(result.diff()),
        "tried": {t.test: [c for r in t.repairs for c in _tried(r, count_tokens)]
                  for t in result.tests if t.repairs},  # fmt: skip
    }
    return record


def _tried(result: Any, count_tokens: Callable[[str], int] | None = None) -> list[dict[str, Any]]:
    """Each candidate of a test's repair in brief: its verdict and what it changed (to see where
    the model looked: the function under repair, or the helper with the bug), and with the
    embedded backend's `count_tokens` its reply's length (decoding is most of the time)."""
    return [
        {
            "round": c.round,
            "status": c.verdict.status if c.verdict else None,
            "passed": c.verdict.passed if c.verdict else None,
            "total": c.verdict.total if c.verdict else None,
            "diff": _clip(c.diff, 800) or None,
            "tokens": count_tokens(c.reply) if count_tokens else None,
        }
        for c in result.candidates
    ]


def _outcome(check: Any) -> str:
    """The check's run in a few words: "no fix offered", "2 failed", or why it did not complete."""
    if check is None:
        return "no fix offered"
    return f"{len(check.failed)} failed" if check.status == "ok" else check.status


# --- the report ----------------------------------------------------------------------------------


@dataclass
class Row:
    model: str
    n: int
    rounds: int
    projects: int
    fixed: int
    tests: int
    tests_fixed: int
    p50: float | None
    p90: float | None
    p50_fixed: float | None
    p50_candidates: float | None
    p50_tokens: float | None  # tokens per reply, over every candidate (records that counted them)
    generation_share: float
    errors: int  # projects the workflow raised on (counted as not fixed)
    disagreements: int  # claimed fixed by the workflow, not passing the check (or the reverse)


def summarize(records: Sequence[dict[str, Any]]) -> list[Row]:
    """One row per (model, n, rounds), in the order the configurations first appear."""
    groups: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["model"], record["n"], record["rounds"]), []).append(record)
    rows = []
    for (model, n, rounds), group in groups.items():
        seconds = [r["seconds"] for r in group]
        total = sum(seconds)
        rows.append(Row(
            model, n, rounds,
            projects=len(group),
            fixed=sum(1 for r in group if r["fixed"]),
            tests=sum(len(r["failing"]) for r in group),
            tests_fixed=sum(r["tests_fixed"] for r in group),
            p50=percentile(seconds, 50),
            p90=percentile(seconds, 90),
            p50_fixed=percentile((r["seconds"] for r in group if r["fixed"]), 50),
            p50_candidates=percentile((r.get("candidates", 0) for r in group), 50),
            p50_tokens=percentile(_reply_tokens(group), 50),
            generation_share=sum(r.get("generation_seconds", 0.0) for r in group) / total if total else 0.0,
            errors=sum(1 for r in group if r["error"]),
            disagreements=sum(1 for r in group if bool(r["claimed"]) != bool(r["fixed"])),
        ))  # fmt: skip
    return rows


def _reply_tokens(records: Sequence[dict[str, Any]]) -> list[int]:
    return [c["tokens"] for r in records for cs in (r.get("tried") or {}).values() for c in cs
            if c.get("tokens") is not None]  # fmt: skip


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table_rows(rows: Sequence[Row]) -> list[list[str]]:
    return [
        [
            row.model,
            f"{row.n} x {row.rounds}",
            f"{row.fixed}/{row.projects} ({row.fixed / row.projects:.0%})",
            f"{row.tests_fixed}/{row.tests}",
            _seconds(row.p50),
            _seconds(row.p90),
            _seconds(row.p50_fixed),
            _seconds(row.p50_candidates),
            "-" if row.p50_tokens is None else f"{row.p50_tokens:.0f}",
            f"{row.generation_share:.0%}",
            str(row.errors),
            str(row.disagreements),
        ]
        for row in rows
    ]


def markdown_table(records: Sequence[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(summarize(records))]
    return "\n".join(lines)


def ratio_lines(records: Sequence[dict[str, Any]], baseline: str) -> list[str]:
    """Each configuration against the baseline model's (same n and rounds when it has them):
    fixed projects, p50 seconds per fixed project, and McNemar's exact p on the projects."""
    rows = summarize(records)
    bases = [r for r in rows if r.model == baseline]
    if not bases:
        return [f"baseline {baseline!r}: no such model in these records"]
    verdicts: dict[tuple[str, int, int], dict[str, bool]] = {}
    for record in records:
        config = (record["model"], record["n"], record["rounds"])
        verdicts.setdefault(config, {})[record["project"]] = bool(record["fixed"])
    lines = [f"ratios to the baseline {baseline} (same projects, same file):"]
    for row in rows:
        if row.model == baseline:
            continue
        base = next((b for b in bases if (b.n, b.rounds) == (row.n, row.rounds)), bases[0])
        ours, theirs = (
            verdicts[(row.model, row.n, row.rounds)],
            verdicts[(base.model, base.n, base.rounds)],
        )
        both, only_ours, only_theirs = discordant(ours, theirs)
        fixed = f"{row.fixed / base.fixed:.2f}x" if base.fixed else "-"
        speed = (
            f"{row.p50_fixed / base.p50_fixed:.2f}x" if row.p50_fixed and base.p50_fixed else "-"
        )
        lines.append(
            f"  {row.model} {row.n} x {row.rounds} against {base.n} x {base.rounds}: fixed projects "
            f"{fixed}, p50 s/fixed {speed}; paired on {both} projects: {only_ours} fixed only "
            f"here, {only_theirs} only by the baseline, McNemar exact p={mcnemar_p(only_ours, only_theirs):.3f}"
        )
    return lines


def print_report(
    console: Any, records: Sequence[dict[str, Any]], extra: Sequence[str] = ()
) -> None:
    from rich import box
    from rich.table import Table

    if not records:
        console.print("no results for this selection")
        return
    table = Table(title="ledex fix, per project (same projects, same seeds)", box=box.SIMPLE_HEAD)
    for name in HEADER:
        table.add_column(name, justify="left" if name == "model" else "right", overflow="fold")
    for cells in table_rows(summarize(records)):
        table.add_row(*cells)
    console.print(table)
    for line in (
        "fixed: every test of the project passes with the offered files (a separate sandboxed run "
        "of all its tests); tests fixed: the failing tests that pass in that run",
        "s/project: the whole workflow (every repair, the joint verification), the model's load "
        "not counted; gen: the model's share of it",
        "disagreements: projects where the workflow's verdict and that run differ (should be 0)",
        *extra,
    ):
        console.print(line, highlight=False)


# --- the command ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--models", nargs="+", default=["embedded"], help="model specs")
    add(
        "-n",
        type=int,
        default=4,
        help="candidates per round (default: %(default)s, as `ledex fix`)",
    )
    add(
        "--rounds", type=int, default=3, help="repair rounds (default: %(default)s, as `ledex fix`)"
    )
    add("--seed", type=int, default=0)
    add(
        "--trace-calls",
        action="store_true",
        help="show the model what the project's functions returned in each failing test "
        "(FixConfig.trace_calls); its records name the model 'MODEL +calls'",
    )
    add_case_selection(parser)
    add("--report", action="store_true", help="run nothing: print the table of --out's records")
    add("--markdown", action="store_true", help="with --report: the table as Markdown")
    add("--baseline", metavar="MODEL", help="also print each model's ratios to this one's")
    add("--out", type=Path, help="JSONL results (default: benchmarks/results/fix-projects-TIMESTAMP"
        ".jsonl); resumed if it exists")  # fmt: skip
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1 or (args.limit is not None and args.limit < 1):
        parser.error("-n, --rounds and --limit must be positive")
    if args.report and (args.out is None or not args.out.exists()):
        parser.error("--report needs the --out file of earlier runs")
    if args.out is None:
        args.out = RESULTS_DIR / f"fix-projects-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    return args


def _describe(model: str, name: str, record: dict[str, Any]) -> str:
    verdict = "[green]fixed[/green]" if record["fixed"] else "[red]not fixed[/red]"
    text = (f"{model} {name}: {verdict}, {record['tests_fixed']}/{len(record['failing'])} failing "
            f"tests pass, {record['seconds']:.1f} s, {record.get('candidates', 0)} candidate(s)")  # fmt: skip
    if record["claimed"] != record["fixed"]:
        text += (
            f" [yellow]the workflow said {'fixed' if record['claimed'] else 'not fixed'}[/yellow]"
        )
    if record["error"]:
        text += f" [yellow]{record['error']}[/yellow]"
    return text


def _matching(
    records: Sequence[dict[str, Any]], selected: set[str], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """The records of the selected projects at this run's n, rounds and seed."""
    config = (args.n, args.rounds, args.seed)
    return [
        r
        for r in records
        if r["project"] in selected and (r["n"], r["rounds"], r["seed"]) == config
    ]


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    args = parse_args(argv)
    console = Console(highlight=False)
    console = Console(highlight=False, width=max(console.width, 160))
    err = Console(stderr=True, highlight=False)
    cases = chosen_cases(args, err)
    if not cases:
        return 2
    selected = {case.name for case in cases}
    records = latest(read_records(args.out, kind="project"))
    if args.report:
        shown = _matching(records, selected, args)
        extra = ratio_lines(shown, args.baseline) if args.baseline else []
        if args.markdown:
            print(markdown_table(shown))
            print("\n".join(extra))
        else:
            print_report(console, shown, extra)
        return 0
    _prepare_output(args.out)
    done = {record_key(r) for r in records if not r["error"]}  # errors are tried again
    err.print(f"{len(cases)} projects, models {' '.join(args.models)}, n={args.n}, rounds={args.rounds}, "
              f"seed={args.seed}; writing {args.out}")  # fmt: skip
    new = run_models(args, cases, done, err)
    labels = [label(model, args) for model in args.models]
    shown = [r for r in _matching(latest(records + new), selected, args) if r["model"] in labels]
    print_report(console, shown, ratio_lines(shown, args.baseline) if args.baseline else [])
    console.print(f"per-project results: {args.out}", highlight=False)
    return 0


def label(model: str, args: argparse.Namespace) -> str:
    """How a model's records name it: the spec, and what this run changes in the workflow."""
    return f"{model} +calls" if args.trace_calls else model


def run_models(
    args: argparse.Namespace, cases: Sequence[Any], done: set[tuple], err: Any
) -> list[dict[str, Any]]:
    """Each model loaded once, then `ledex fix` on each project it has no record for."""
    from ledex.errors import LedexError
    from ledex.fix import FixConfig
    from ledex.models import load_backend
    from ledex.repair import RepairConfig

    config = FixConfig(repair=RepairConfig(n=args.n, rounds=args.rounds, seed=args.seed),
                       python=sys.executable, timeout=args.timeout, trace_calls=args.trace_calls)  # fmt: skip
    new: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ledex-fix-bench-") as scratch, \
            args.out.open("a", encoding="utf-8") as out:  # fmt: skip
        for index, model in enumerate(args.models):
            name = label(model, args)
            todo = [c for c in cases if (name, args.n, args.rounds, args.seed, c.name) not in done]
            if not todo:
                continue
            try:
                backend = load_backend(model)
            except LedexError as error:
                err.print(f"[red]{model} skipped: {error}[/red]")
                continue
            with backend:
                for case in todo:
                    # a fresh copy per model: nothing of one model's run reaches the next
                    prepared = prepare_case(case, Path(scratch) / f"model-{index}", args.timeout)
                    if prepared.problem:
                        err.print(f"[yellow]{case.name}[/yellow]: {prepared.problem}")
                    if not prepared.failing:
                        continue
                    record = dict(zip(KEY_FIELDS, (name, args.n, args.rounds, args.seed, case.name),
                                      strict=True))  # fmt: skip
                    record |= fix_project(prepared, backend, config)
                    out.write(json.dumps(record) + "\n")
                    out.flush()
                    new.append(record)
                    err.print(_describe(name, case.name, record))
    return new


if __name__ == "__main__":
    sys.exit(main())
