"""The "extracted-helper" shape: an expression of the entry point moved into a helper behaves as it
did (run before and after on the same inputs), the expressions whose meaning depends on where they
run are never moved, and a bug put in the helper by the generator makes a consistent case whose
failing test never calls the buggy function."""

from __future__ import annotations

import ast
import sys
from typing import Any

import pytest

from benchmarks.cases.check_cases import check_case, load_case
from ledex.sandbox.pytest_runner import run_pytest
from trainer.buggy_projects import called_by_tests, generate, mbpp_project
from trainer.extracted_helper import extract_helper

BISECT = """\
def find(xs, target):
    lo, hi = 0, len(xs)
    while lo < hi:
        mid = (lo + hi) // 2
        if xs[mid] < target:
            lo = mid + 1
        else:
            hi = mid
    return lo
"""


def rewritten(code: str, entry: str) -> tuple[str, str] | None:
    done = extract_helper(ast.parse(code), entry)
    return None if done is None else (ast.unparse(done[0]), done[1])


def call(code: str, entry: str, *args: Any) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(code, "<reference>", "exec"), namespace)  # noqa: S102 - our own fixed snippets
    return namespace[entry](*args)


@pytest.mark.parametrize(
    ("code", "entry", "inputs"),
    [
        (BISECT, "find", [([1, 3, 5, 7], 5), ([1, 3, 5, 7], 0), ([], 2), ([2, 2, 2], 2)]),
        # the comprehension binds its own `x`; the `x` read after it is the parameter
        ("def f(x, ys):\n    return [x for x in ys if x] + [x * 2] + [len(ys)]\n", "f", [(3, [0, 1, 2]), (-1, [])]),
        # the second generator's iterable runs inside the comprehension, where `row` is bound
        ("def g(m, k):\n    total = 0\n    total += sum(v * k for row in m for v in row if v > k)\n    return total\n", "g", [([[1, 5], [7]], 2), ([], 0)]),
        ("def h(s):\n    out = []\n    for i in range(len(s) - 1, -1, -1):\n        out.append(s[i])\n    return ''.join(out)\n", "h", [("abc",), ("",)]),
        # the generator expression runs after `k` changed: it stays where it reads `k` late
        ("def f(xs):\n    k = 1\n    g = (x + k for x in xs)\n    k = 10\n    return list(g)\n", "f", [([1, 2],)]),
        ("def f(xs):\n    return [*xs[1:], len(xs)]\n", "f", [([1, 2, 3],), ([],)]),
    ],
)  # fmt: skip
def test_the_moved_expression_computes_what_it_did(code, entry, inputs):
    result = rewritten(code, entry)
    assert result is not None
    new, helper = result
    assert f"def {helper}(" in new and f"{helper}(" in new.split(f"def {entry}(")[1]
    for args in inputs:
        assert call(new, entry, *args) == call(code, entry, *args)


def test_the_richest_expression_moves_and_the_helper_is_named_for_it():
    new, helper = rewritten(BISECT, "find") or ("", "")
    # `xs[mid] < target` and `(lo + hi) // 2` have two sites each, more than `lo < hi`; the first
    # is the larger tree
    assert helper == "_find_condition"
    assert "def _find_condition(xs, mid, target):\n    return xs[mid] < target" in new
    assert "if _find_condition(xs, mid, target):" in new
    assert new.index("def _find_condition") < new.index("def find")  # defined above its caller
    taken = "def _find_condition():\n    return 0\n\n" + BISECT
    assert (rewritten(taken, "find") or ("", ""))[1] == "_find_condition_2"
    counter = "def count(xs):\n    n = 0\n    for x in xs:\n        n += x % 3\n    return n\n"
    assert "return x % 3" in (rewritten(counter, "count") or ("", ""))[0]


@pytest.mark.parametrize(
    "code",
    [
        "def f(xs):\n    global N\n    return len(xs) + N\n",
        "def f(xs):\n    return (n := len(xs)) + n\n",
        "def f(xs):\n    return sorted(xs, key=lambda x: -x)\n",
        # `b` is bound only when `c` is: passed as an argument it would be read when it is not
        "def f(xs, c):\n    if c:\n        b = 5\n    return len(xs) + 1 if not c else b * 2\n",
        "def f(n):\n    return 0 if n == 0 else f(n - 1) + 1\n",  # recursion: two frames a level
        "def f(xs):\n    return len(xs) + 1\n\n\ndef f(xs):\n    return len(xs) + 2\n",  # which one?
        "import sys\n\n\ndef f(xs):\n    return sys._getframe().f_code.co_name + str(len(xs))\n",
        "def f(xs):\n    del xs\n    return len(xs) + 1\n",  # unbound by then: it must raise where it did
        "def f(xs):\n    return len(locals()) + len(xs)\n",
        "def f(xs):\n    def inner():\n        return len(xs) + 1\n    return inner\n",  # only a nested scope
        "def f():\n    return len('abc') + 1\n",  # nothing local to pass: a constant, not a helper
    ],
)  # fmt: skip
def test_an_expression_whose_meaning_depends_on_where_it_runs_is_not_moved(code):
    assert rewritten(code, "f") is None


def test_a_single_return_moves_only_when_nothing_else_can():
    new, helper = rewritten('def f(s):\n    """Doc."""\n    return s.strip().upper()\n', "f") or ("", "")
    assert helper == "_f_result" and "return _f_result(s)" in new
    two = "def f(s):\n    t = s.strip() + s[:1]\n    return t.upper()\n"
    assert (rewritten(two, "f") or ("", ""))[1] == "_compute_t"


def test_a_bug_in_the_extracted_helper_makes_a_case_the_failing_test_is_one_call_from(tmp_path):
    asserts = ["assert find([1, 3, 5, 7], 5) == 2", "assert find([1, 3, 5, 7], 8) == 4",
               "assert find([2, 4], 3) == 1", "assert find([], 1) == 0"]  # fmt: skip
    source = mbpp_project("mbpp/9", BISECT, asserts, "", "find", "extracted-helper")
    assert source is not None and source.name == "mbpp9_find_extracted_helper"
    tests = source.files["tests/test_find.py"]
    assert "from find import find\n" in tests  # the helper is not the tests' business
    run = run_pytest(source.write(tmp_path / "clean"), ["tests"], python=sys.executable, timeout=60)
    assert run.outcomes and run.passes(), run.message
    bugs = list(generate([source], per_project=1, seed=0, bugs="helpers"))
    assert bugs, "no bug in the helper was caught by the tests"
    (bug,) = bugs
    assert bug.mutation.function == "_find_condition"
    assert "_find_condition" not in called_by_tests(source)
    report = check_case(load_case(bug.write(tmp_path / bug.name)))
    assert report.ok, report.problems
