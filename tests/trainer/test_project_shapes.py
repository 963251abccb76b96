"""An MBPP reference in the shapes of the editor's projects (a method, a coroutine, a helper in
another module): each shape's tests pass in a real sandboxed pytest run, a bug injected into it is
caught and makes a consistent case, and a shape that does not fit a reference is refused rather
than written wrong."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks.cases.check_cases import check_case, load_case
from ledex.sandbox.pytest_runner import run_pytest
from trainer.buggy_projects import generate, mbpp_project, mbpp_projects
from trainer.data import mbpp
from trainer.project_shapes import SHAPES, check_shapes

MBPP_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "mbpp"

REFERENCE = """\
import math


def digits(n):
    return [int(c) for c in str(n)]


def digit_sum(n):
    if n < 10:
        return n
    return digit_sum(sum(digits(n)))
"""
ASSERTS = ["assert digit_sum(38) == 2", "assert digit_sum(5) == 5", "assert digit_sum(999) == 9"]


def project(shape: str, code: str = REFERENCE, asserts: list[str] = ASSERTS):
    return mbpp_project("mbpp/1", code, asserts, "", "digit_sum", shape)


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_passes_its_tests_and_a_bug_in_it_makes_a_consistent_case(tmp_path, shape):
    source = project(shape)
    assert source is not None
    run = run_pytest(source.write(tmp_path / "clean"), ["tests"], python=sys.executable, timeout=60)
    assert run.outcomes and run.passes() and not run.collection_errors, run.message
    (bug,) = generate([source], per_project=1, seed=0)
    report = check_case(load_case(bug.write(tmp_path / bug.name)))
    assert report.ok, report.problems
    if shape == "method":
        assert bug.mutation.function.startswith("DigitSumTools.")


def test_what_each_shape_writes():
    method = project("method")
    assert method is not None and method.name == "mbpp1_digit_sum_method"
    code, tests = method.files["digit_sum.py"], method.files["tests/test_digit_sum.py"]
    assert "class DigitSumTools:\n    def digits(self, n):" in code
    assert "return self.digit_sum(sum(self.digits(n)))" in code
    assert code.startswith("import math\n")  # module-level code stays above the class
    assert "from digit_sum import DigitSumTools" in tests
    assert "assert DigitSumTools().digit_sum(38) == 2" in tests

    coroutine = project("async")
    assert coroutine is not None
    code, tests = coroutine.files["digit_sum.py"], coroutine.files["tests/test_digit_sum.py"]
    assert "async def digit_sum(n):" in code and "def digits(n):" in code  # helpers stay sync
    assert "return await digit_sum(sum(digits(n)))" in code
    assert "import asyncio\nfrom digit_sum import digits, digit_sum" in tests
    assert "assert asyncio.run(digit_sum(38)) == 2" in tests

    split = project("helper-module")
    assert split is not None and sorted(split.code_files) == ["digit_sum.py", "helpers.py"]
    assert "from helpers import digits" in split.files["digit_sum.py"]
    assert "def digits(n):" in split.files["helpers.py"]
    assert "def digits" not in split.files["digit_sum.py"]

    plain = project("function")
    assert plain is not None and plain.name == "mbpp1_digit_sum"
    assert plain.files["digit_sum.py"] == REFERENCE  # untouched, as before shapes existed


@pytest.mark.parametrize(
    ("shape", "code", "asserts"),
    [
        ("async", REFERENCE, ["assert list(map(digit_sum, [38])) == [2]"]),  # passed as a value
        ("async", REFERENCE.replace("digit_sum(sum", "(lambda m: digit_sum(m))(sum"), ASSERTS),
        ("async", REFERENCE.replace("return n", "yield n"), ASSERTS),  # a generator
        ("helper-module", REFERENCE.split("\n\n\ndef digits")[0] + "\n\n\ndef digit_sum(n):\n    return n % 9\n", ASSERTS),
        ("method", REFERENCE + "\n\nclass Other:\n    pass\n", ASSERTS),  # a class already
        ("method", REFERENCE.replace("def digits(n):", "def digits(self):").replace("str(n)", "str(self)"), ASSERTS),
        ("method", REFERENCE + "\nTABLE = [digit_sum(i) for i in range(3)]\n", ASSERTS),
        # a name bound inside a function is not the module's function: `self.` would be wrong
        ("method", REFERENCE.replace("return [int(c) for c in str(n)]", "return sorted(str(n), key=lambda digit_sum: digit_sum)"), ASSERTS),
        ("method", REFERENCE.replace("    return [int(c)", "    try:\n        pass\n    except ValueError as digits:\n        pass\n    return [int(c)"), ASSERTS),
        ("method", REFERENCE.replace("    return [int(c)", "    from math import sqrt as digit_sum\n    return [int(c)"), ASSERTS),
        ("async", "import functools\n\n@functools.lru_cache\n" + REFERENCE.split("\n\n\n")[2], ASSERTS),  # wraps a coroutine
    ],
)  # fmt: skip
def test_a_shape_that_does_not_fit_the_reference_is_refused(shape, code, asserts):
    assert project(shape, code, asserts) is None


def test_mbpp_problems_take_the_shapes_in_turn():
    shaped = mbpp_projects("train", str(MBPP_DIR), shapes=("method", "async"))[:6]
    assert [p.name.rsplit("_", 1)[-1] for p in shaped] == ["method", "async"] * 3
    plain = mbpp_projects("train", str(MBPP_DIR))[:7]
    assert "mbpp/601" in {p.origin for p in plain}  # it defines a class already: no other shape
    assert "mbpp/601" not in {p.origin for p in shaped}
    with pytest.raises(ValueError, match="shapes must be among"):
        check_shapes(["class"])


def test_a_shape_few_problems_fit_is_not_crowded_out():
    shaped = mbpp_projects("train", str(MBPP_DIR), shapes=("method", "async", "helper-module"))
    counts = {shape: sum(p.name.endswith("_" + shape.replace("-", "_")) for p in shaped) for shape in ("method", "async", "helper-module")}  # fmt: skip
    tasks = mbpp.load("train", str(MBPP_DIR))
    fit = [t for t in tasks if mbpp_project(t.id, t.reference, t.tests, t.setup, t.entry_point, "helper-module")]  # fmt: skip
    assert counts["helper-module"] == len(fit) >= 10  # every problem it fits takes it
    assert abs(counts["method"] - counts["async"]) <= 1


CONSTANT_BETWEEN = """\
def first(x):
    return x + 1


STEP = 3


def jump(x, step=STEP):
    return first(x) * step
"""

RECURSIVE_COMPREHENSION = """\
def flat(xs):
    return [y for x in xs for y in (flat(x) if isinstance(x, list) else [x])]
"""


def test_rewrites_keep_what_the_code_needs(tmp_path):
    method = mbpp_project("mbpp/2", CONSTANT_BETWEEN, ["assert jump(1) == 6"], "", "jump", "method")
    assert method is not None  # the class comes after STEP, which a default needs
    coroutine = mbpp_project("mbpp/3", RECURSIVE_COMPREHENSION, ["assert flat([1, [2, [3]]]) == [1, 2, 3]"], "", "flat", "async")  # fmt: skip
    assert coroutine is not None and "await flat(x)" in coroutine.files["flat.py"]
    for project in (method, coroutine):
        run = run_pytest(project.write(tmp_path / project.name), ["tests"], python=sys.executable, timeout=60)  # fmt: skip
        assert run.outcomes and run.passes(), run.message


def test_a_held_out_suite_in_other_shapes_is_another_suite(tmp_path):
    from benchmarks.cases.check_cases import load_cases
    from ledex.errors import LedexError
    from trainer.buggy_projects import heldout_suite

    folder = tmp_path / "suite"
    cases = heldout_suite(folder, size=2, path=str(MBPP_DIR), shapes=("method", "async"))
    assert len(cases) == 2
    assert all("_method_" in case.name or "_async_" in case.name for case in cases)
    for case in load_cases(folder):
        report = check_case(case)
        assert report.ok, report.problems
    with pytest.raises(LedexError, match="other settings"):
        heldout_suite(folder, size=2, path=str(MBPP_DIR))  # the plain suite is not this one


def test_a_held_out_suite_of_helper_bugs_is_another_suite(tmp_path):
    from benchmarks.cases.check_cases import load_cases
    from ledex.errors import LedexError
    from trainer.buggy_projects import heldout_suite

    folder = tmp_path / "suite"
    cases = heldout_suite(folder, size=1, path=str(MBPP_DIR), shapes=("helper-module",), bugs="helpers")
    assert len(cases) == 1
    (case,) = load_cases(folder)
    assert check_case(case).ok
    tests = (case.path / "tests").glob("test_*.py")
    assert all(f"{case.bug_function.rsplit('.', 1)[-1]}(" not in t.read_text() for t in tests)
    with pytest.raises(LedexError, match="other settings"):
        heldout_suite(folder, size=1, path=str(MBPP_DIR), shapes=("helper-module",))
