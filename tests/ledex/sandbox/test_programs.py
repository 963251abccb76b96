"""run_program / run_many / ProgramPool: statuses, per-test results, the feedback the model is
trained on (ledex.feedback), and bad input. Hostile programs: test_hostile_programs.py."""

from __future__ import annotations

import threading
import time

import pytest

from ledex import demo
from ledex.feedback import FailureInfo, Frame, describe, format_feedback, format_traceback, shorten
from ledex.sandbox import IOTest, Program, ProgramPool, ProgramResult, run_many, run_program
from ledex.sandbox.programs import default_pool


@pytest.fixture(scope="module")
def pool():
    with ProgramPool(2) as pool:
        yield pool


def run(pool: ProgramPool, code: str, tests, **kwargs) -> ProgramResult:
    return pool.run(Program(code, tests, **kwargs))


# --- statuses and per-test results ---------------------------------------------------------------


def test_the_demo_feedback_is_what_the_sandbox_says():
    result = run_program(demo.WRONG_CODE, list(demo.TESTS))
    assert result.status == "failed"
    assert result.passed == [True, False, True]
    assert result.feedback == demo.FEEDBACK


def test_a_correct_program_passes_with_no_feedback(pool):
    result = run(
        pool,
        "def add(a, b):\n    return a + b\n",
        ["assert add(1, 2) == 3", "assert add(0, 0) == 0"],
    )
    assert (result.status, result.passed, result.feedback, result.failure) == (
        "passed",
        [True, True],
        "",
        None,
    )
    assert result.ok and 0 < result.duration < 5


def test_every_test_runs_after_one_fails_and_the_first_failure_is_named(pool):
    code = "def sign(x):\n    return 1 if x >= 0 else -1\n"
    tests = [
        "assert sign(5) == 1",
        "assert sign(0) == 0",
        "assert sign(-2) == -1",
        "assert sign(0.0) == 0",
    ]
    result = run(pool, code, tests)
    assert result.status == "failed"
    assert result.passed == [True, False, True, False]
    assert (
        result.feedback
        == "The code fails this test:\nassert sign(0) == 0\nsign(0) returned 1, expected 0"
    )


def test_an_exception_shows_only_the_programs_own_frames(pool):
    code = "def ratio(a, b):\n    return scale(a) / b\n\ndef scale(x):\n    return x * 2\n"
    result = run(pool, code, ["assert ratio(1, 2) == 1", "assert ratio(1, 0) == 0"])
    assert result.status == "error"
    assert result.passed == [True, False]
    assert result.feedback == (
        "The code fails this test:\nassert ratio(1, 0) == 0\n"
        "Traceback (most recent call last):\n"
        '  File "<solution>", line 2, in ratio\n'
        "    return scale(a) / b\n"
        "ZeroDivisionError: division by zero"
    )
    assert result.failure.exception == "ZeroDivisionError"
    assert result.failure.frames == (Frame("<solution>", 2, "ratio", "return scale(a) / b"),)


def test_an_exception_inside_a_library_keeps_the_programs_frames_only(pool):
    code = "import json\ndef load(text):\n    return json.loads(text)\n"
    result = run(pool, code, ["assert load('{') == {}"])
    assert result.status == "error"
    assert "JSONDecodeError" in result.feedback
    assert 'File "<solution>", line 3, in load' in result.feedback
    assert "json" not in "".join(f.file for f in result.failure.frames)
    assert "worker" not in result.feedback and "<test>" not in result.feedback


def test_a_syntax_error_names_the_line(pool):
    result = run(pool, "def f(x):\n    return x +\n", ["assert f(1) == 2", "assert f(2) == 3"])
    assert result.status == "error"
    assert result.passed == [False, False]
    assert result.feedback.startswith("The code fails this test:\nassert f(1) == 2\n")
    assert '  File "<solution>", line 2\n    return x +\n' in result.feedback
    assert result.feedback.endswith("SyntaxError: invalid syntax")
    assert result.failure.kind == "syntax"


def test_an_exception_while_loading_fails_every_test(pool):
    result = run(
        pool,
        "import no_such_module_xyz\ndef f():\n    return 1\n",
        ["assert f() == 1", "assert True"],
    )
    assert result.status == "error"
    assert result.passed == [False, False]
    assert "ModuleNotFoundError: No module named 'no_such_module_xyz'" in result.feedback


def test_assertion_feedback_for_other_asserts(pool):
    code = "def is_even(n):\n    return n % 2 == 1\n"
    result = run(pool, code, ["assert is_even(4)"])
    assert result.feedback.endswith("\nis_even(4) returned False, expected a true value")
    result = run(pool, code, ["assert not is_even(3)"])
    assert result.feedback.endswith("\nis_even(3) returned True, expected a false value")
    result = run(pool, code, ["assert is_even(4) in (True,), 'parity is wrong'"])
    assert result.feedback.endswith(
        "\nassert is_even(4) in (True,), 'parity is wrong' failed: parity is wrong"
    )
    result = run(pool, code, ["assert 4 == len([is_even(1)])"])  # the call on the right: swapped
    assert result.feedback.endswith("\nlen([is_even(1)]) returned 1, expected 4")
    result = run(
        pool,
        code,
        ["values = [is_even(n) for n in range(3)]\nassert values == [True, False, True]"],
    )
    assert result.status == "failed"
    assert result.feedback.endswith(
        "\nvalues evaluated to [False, True, False], expected [True, False, True]"
    )


def test_long_values_are_shortened(pool):
    result = run(pool, "def f():\n    return list(range(1000))\n", ["assert f() == []"])
    detail = result.feedback.splitlines()[-1]
    assert detail.startswith("f() returned [0, 1, 2") and detail.endswith(", expected []")
    assert len(detail) < 260 and "..." in detail


def test_deep_recursion_folds_the_repeated_frames(pool):
    result = run(pool, "def down(n):\n    return down(n - 1)\n", ["assert down(3) == 0"])
    assert result.status == "error"
    assert "RecursionError: maximum recursion depth exceeded" in result.feedback
    assert "[Previous line repeated" in result.feedback
    assert len(result.feedback) < 600


def test_setup_runs_after_the_code_and_before_the_tests(pool):
    code = "class Node:\n    def __init__(self, v):\n        self.v = v\n\ndef value(n):\n    return n.v\n"
    result = run(pool, code, ["assert value(root) == 3"], setup="root = Node(3)")
    assert result.status == "passed"


def test_a_test_that_raises_fails_alone(pool):
    code = "def f(x):\n    return x\n"
    result = run(pool, code, ["assert f(1) == 1", "assert g(1) == 1", "assert f(2) == 2"])
    assert result.status == "error"
    assert result.passed == [True, False, True]
    assert result.feedback.endswith("\nNameError: name 'g' is not defined")


def test_a_test_that_does_not_compile_fails_alone(pool):
    result = run(
        pool, "def f(x):\n    return x\n", ["assert f(1) == 1", "assert f(1 ==", "assert f(2) == 2"]
    )
    assert result.passed == [True, False, True]
    assert result.status == "error" and "SyntaxError" in result.feedback


def test_an_assertion_error_raised_by_the_program_is_an_exception(pool):
    code = "def f(x):\n    assert x > 0, 'x must be positive'\n    return x\n"
    result = run(pool, code, ["assert f(-1) == 1"])
    assert result.status == "error"
    assert 'File "<solution>", line 2, in f' in result.feedback
    assert result.feedback.endswith("AssertionError: x must be positive")


def test_memory_errors_name_the_limit(pool):
    result = run(pool, "def f():\n    return bytearray(2 << 30)\n", ["assert f()"], memory_mb=512)
    assert result.status == "error"
    assert "MemoryError" in result.feedback and "the memory limit is 512 MB" in result.feedback


def test_output_is_returned_and_not_utf8_is_no_problem(pool):
    code = "import sys\nprint('hello')\nsys.stdout.flush()\nsys.stdout.buffer.write(b'\\xff\\xfe bytes\\n')\n"
    result = run(pool, code, ["assert True"])
    assert result.status == "passed"
    assert result.output.startswith("hello\n") and "\ufffd" in result.output


def test_the_scratch_directory_is_fresh_for_every_program(pool):
    writer = "open('left-behind.txt', 'w').write('x')\nimport tempfile, os\nopen(os.path.join(tempfile.gettempdir(), 'tmp-left.txt'), 'w').write('x')\n"
    reader = "import os, tempfile\nleft = os.path.exists('left-behind.txt') or os.path.exists(os.path.join(tempfile.gettempdir(), 'tmp-left.txt'))\n"
    for _ in range(3):  # both workers
        assert run(pool, writer, ["assert True"]).status == "passed"
    for _ in range(3):
        assert run(pool, reader, ["assert not left"]).status == "passed"


# --- stdin/stdout tests (APPS) -------------------------------------------------------------------


def test_stdin_stdout_tests(pool):
    code = "a, b = map(int, input().split())\nprint(a + b)\n"
    result = run(
        pool, code, [IOTest("1 2\n", "3\n"), IOTest("2 2", "5"), {"input": "10 5", "output": "15"}]
    )
    assert result.status == "failed"
    assert result.passed == [True, False, True]
    assert (
        result.feedback
        == "The code fails this test:\ninput:\n2 2\nexpected output:\n5\nThe code printed:\n4"
    )


def test_stdin_stdout_comparison_ignores_whitespace_runs_and_trailing_blanks(pool):
    code = "import sys\ndata = sys.stdin.read().split()\nprint(' '.join(data) + '   ')\nprint()\nprint('end')\nsys.exit(0)\n"
    result = run(pool, code, [IOTest("x  y\r\n", "x y\n\nend\n\n"), IOTest("x y", "x\ny\n\nend")])
    assert result.passed == [True, False]


@pytest.mark.parametrize(
    "read",
    [
        "input().split() + input().split()",
        "sys.stdin.read().split()",
        "sys.stdin.buffer.read().split()",
        "open(0).read().split()",
        "[word for line in sys.stdin for word in line.split()]",
    ],
)
def test_stdin_can_be_read_every_way(pool, read):
    code = f"import sys\nprint(sum(int(word) for word in {read}))\n"
    result = run(
        pool, code, [IOTest("1 2\n3\n", "6"), IOTest("4\n5\n", "9"), IOTest("0 0\n1", "2")]
    )
    assert result.passed == [True, True, False], result.feedback


def test_stdin_stdout_output_is_capped(pool):
    code = "import sys\nwhile True:\n    sys.stdout.write('x' * 2**20)\n"
    result = run(pool, code, [IOTest("", "1")])
    assert result.status == "error"
    assert "printed more than 16 MB" in result.feedback


def test_stdin_stdout_errors_and_silence(pool):
    result = run(pool, "n = int(input())\nprint(n)\n", [IOTest("", "1")])
    assert result.status == "error" and "EOFError" in result.feedback
    result = run(pool, "pass\n", [IOTest("1", "1")])
    assert result.status == "failed" and result.feedback.endswith("The code printed nothing.")
    result = run(pool, "import sys\nsys.stdout.buffer.write(b'\\xff\\n')\n", [IOTest("", "1")])
    assert result.status == "failed" and "\ufffd" in result.feedback


# --- bad input: clear statuses, never an exception from the engine -------------------------------


def test_an_empty_test_list_is_an_error_not_a_pass(pool):
    result = run(pool, "x = 1\n", [])
    assert (result.status, result.passed) == ("error", [])
    assert result.feedback == "There are no tests to run."


@pytest.mark.parametrize("timeout", [0, 0.0, -1, float("nan"), float("inf")])
def test_a_timeout_of_zero_or_nonsense_times_out_at_once(pool, timeout):
    started = time.monotonic()
    result = run(pool, "x = 1\n", ["assert x == 1"], timeout=timeout)
    assert time.monotonic() - started < 0.5
    assert result.status == "timeout" and result.passed == [False]
    assert (
        result.feedback
        == "The code fails this test:\nassert x == 1\nThe code timed out after 0 s (infinite loop?)"
    )


@pytest.mark.parametrize(
    "code", ["x = 1\x00", "x = '\udcff'\n", "\ufeff\ufeffx = 1", "def f(:", "  x = 1"]
)
def test_code_that_is_not_python_is_an_error(pool, code):
    result = run(pool, code, ["assert x == 1"])
    assert result.status == "error"
    assert result.feedback.startswith("The code fails this test:\nassert x == 1\n")


def test_arguments_of_the_wrong_type_are_a_type_error(pool):
    with pytest.raises(TypeError):
        run(pool, None, ["assert True"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        run(pool, "x = 1", "assert x == 1")  # a str, not a list of tests


# --- run_many, pools -----------------------------------------------------------------------------


def test_run_many_keeps_the_order_and_mixes_statuses():
    jobs: list[Program | dict[str, object]] = [
        Program("def f():\n    return 1\n", ["assert f() == 1"]),
        {"code": "def f():\n    return 2\n", "tests": ["assert f() == 1"]},
        Program("while True:\n    pass\n", ["assert True"], timeout=0.5),
        Program("x = 1\n", []),
        Program("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", ["assert True"]),
    ]
    jobs += [Program(f"def f():\n    return {i}\n", [f"assert f() == {i}"]) for i in range(20)]
    with ProgramPool(2) as pool:
        results = run_many(jobs, pool=pool)
    assert [r.status for r in results[:5]] == ["passed", "failed", "timeout", "error", "killed"]
    assert all(r.status == "passed" for r in results[5:])


def test_run_many_uses_the_default_pool_and_run_program_is_thread_safe():
    results = run_many([Program(f"x = {i}\n", [f"assert x == {i}"]) for i in range(10)], workers=2)
    assert [r.status for r in results] == ["passed"] * 10
    assert default_pool().size >= 2
    found: list[str] = []
    threads = [
        threading.Thread(
            target=lambda i=i: found.append(run_program(f"y = {i}", [f"assert y == {i}"]).status)
        )
        for i in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == ["passed"] * 6


def test_a_worker_outlives_the_thread_that_started_it():
    # bubblewrap --die-with-parent is bound to the starting thread: workers must not die with it
    with ProgramPool(1) as pool:
        thread = threading.Thread(target=lambda: pool.run(Program("x = 1", ["assert x == 1"])))
        thread.start()
        thread.join()
        (worker,) = pool._idle
        pid = worker.sandbox.process.pid
        time.sleep(0.2)
        assert pool.run(Program("x = 2", ["assert x == 2"])).ok
        assert worker.sandbox.process.pid == pid  # the same worker, not a restarted one


def test_a_closed_pool_refuses_work():
    pool = ProgramPool(1)
    assert pool.run(Program("x = 1", ["assert x == 1"])).ok
    pool.close()
    with pytest.raises(RuntimeError):
        pool.run(Program("x = 1", ["assert x == 1"]))


# --- ledex.feedback on its own (the repair loop reuses it for pytest failures) -------------------


def test_feedback_formats():
    frames = (
        Frame("src/app.py", 10, "load", "return parse(text)"),
        Frame("src/app.py", 20, "parse", "raise ValueError(text)"),
    )
    info = FailureInfo(
        kind="exception",
        test="tests/test_app.py::test_load",
        exception="ValueError",
        message="bad",
        frames=frames,
    )
    assert format_feedback(info) == (
        "The code fails this test:\ntests/test_app.py::test_load\n"
        "Traceback (most recent call last):\n"
        '  File "src/app.py", line 10, in load\n    return parse(text)\n'
        '  File "src/app.py", line 20, in parse\n    raise ValueError(text)\n'
        "ValueError: bad"
    )
    assert (
        describe(FailureInfo(kind="timeout", seconds=2.5))
        == "The code timed out after 2.5 s (infinite loop?)"
    )
    assert describe(FailureInfo(kind="exited")) == "The code exited before the tests ran."
    assert (
        describe(FailureInfo(kind="exited", before_tests=False))
        == "The code exited during this test."
    )
    assert (
        describe(FailureInfo(kind="output_limit", limit_mb=16))
        == "The code printed more than 16 MB of output and was stopped."
    )
    assert "SIGSEGV" in describe(FailureInfo(kind="crashed", signal="SIGSEGV"))
    assert (
        describe(FailureInfo(kind="crashed", signal="SIGKILL"))
        == "The code was killed by signal SIGKILL."
    )
    assert describe(FailureInfo(kind="assertion", test="assert ok()")) == "assert ok() failed"
    assert format_feedback(FailureInfo(kind="no_tests")) == "There are no tests to run."


def test_tracebacks_keep_the_last_frames():
    frames = tuple(Frame("<solution>", i, f"f{i}", f"line {i}") for i in range(1, 9))
    text = format_traceback(frames, omitted_frames=2)
    assert "  ... 5 earlier frames not shown" in text
    assert "line 3, in f3" not in text and "line 4, in f4" in text and "line 8, in f8" in text


def test_shorten():
    assert shorten("abc", 5) == "abc"
    assert shorten("x" * 300) == "x" * 197 + "..."
