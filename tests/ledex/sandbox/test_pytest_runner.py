"""run_pytest: a user's own tests, in their interpreter and configuration, on a shadow of their
project with candidate files overlaid; the user's directory is never written.

The "user" is a real virtual environment made here (pytest copied in, an installed library, a
pytest plugin registered by entry point, a setuptools-style editable package outside the project)
and real projects in tmp_path. Most cases run under bubblewrap and under the rlimits fallback.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from ledex.sandbox import isolation
from ledex.sandbox.pytest_runner import PytestRun, resolve_python, run_pytest

HAS_BWRAP = isolation.mode() == "bwrap"
needs_bwrap = pytest.mark.skipif(
    not HAS_BWRAP, reason="containment needs bubblewrap (make installs it)"
)
PYTEST_MODULES = ("pytest", "_pytest", "py", "pluggy", "iniconfig", "packaging", "pygments",
                  "exceptiongroup", "tomli")  # fmt: skip


# --- the user's environment ----------------------------------------------------------------------


def _make_venv(path: Path, *, with_pytest: bool = True) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = next((path / "lib").glob("python*/site-packages"))
    if with_pytest:  # as `pip install pytest` would, without the network or our own plugins
        for name in PYTEST_MODULES:
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None:
                continue
            origin = Path(spec.origin)
            if origin.name == "__init__.py":
                shutil.copytree(
                    origin.parent, site / name, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy(origin, site / origin.name)
            for metadata in (
                Path(spec.origin).parents[origin.name == "__init__.py"].glob(f"{name}-*.dist-info")
            ):
                shutil.copytree(metadata, site / metadata.name)  # pluggy reads its own version
    return site


@pytest.fixture(scope="session")
def user_env(tmp_path_factory) -> Path:
    """A venv with pytest, a library (`userlib`), a pytest plugin (fixture `greeting`, loaded by
    entry point) and an editable install of `extpkg` whose source lies outside any project."""
    root = tmp_path_factory.mktemp("user-env")
    site = _make_venv(root / "venv")
    (site / "userlib.py").write_text("def double(x):\n    return 2 * x\n")
    (site / "user_plugin.py").write_text(
        "import pytest\n\n@pytest.fixture\ndef greeting():\n    return 'hello'\n"
    )
    dist = site / "user_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: user-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pytest11]\nuser_plugin = user_plugin\n")
    source = root / "ext-src" / "extpkg"
    source.mkdir(parents=True)
    (source / "__init__.py").write_text("VALUE = 42\n")
    _editable_install(site, "extpkg", source)
    return root / "venv" / "bin" / "python"


def _editable_install(site: Path, name: str, source: Path) -> None:
    """What setuptools' `pip install -e` writes: a .pth that installs a finder whose MAPPING
    points at the source folder, which is not on sys.path."""
    (site / f"__editable___{name}_finder.py").write_text(
        textwrap.dedent(f"""\
        import os, sys
        from importlib.machinery import PathFinder
        MAPPING: dict[str, str] = {{{name!r}: {str(source)!r}}}
        NAMESPACES: dict[str, list[str]] = {{}}

        class _Finder:
            @classmethod
            def find_spec(cls, fullname, path=None, target=None):
                if fullname in MAPPING:
                    return PathFinder.find_spec(fullname, [os.path.dirname(MAPPING[fullname])])
                return None

        def install():
            sys.meta_path.append(_Finder)
        """)
    )
    (site / f"__editable__.{name}.pth").write_text(
        f"import __editable___{name}_finder; __editable___{name}_finder.install()\n"
    )


@pytest.fixture(autouse=True)
def private_shadows(monkeypatch, tmp_path_factory):
    """Shadow copies (the rlimits fallback) in this test's tmp, not the user's cache."""
    monkeypatch.setenv("LEDEX_SHADOW_DIR", str(tmp_path_factory.mktemp("shadows")))


@pytest.fixture(params=["bwrap", "rlimits"])
def mode(request, monkeypatch):
    """Each case under bubblewrap and under the rlimits fallback."""
    if request.param == "bwrap" and not HAS_BWRAP:
        pytest.skip("bubblewrap is not usable here")
    if request.param == "rlimits":
        monkeypatch.setenv("LEDEX_SANDBOX", "rlimits")
    isolation.mode.cache_clear()
    yield request.param
    isolation.mode.cache_clear()  # recomputed by the next test, after monkeypatch restores the env


fallback = pytest.mark.parametrize("mode", ["rlimits"], indirect=True)


# --- the user's project --------------------------------------------------------------------------

OPS = """\
def add(a, b):
    return a - b


def div(a, b):
    return a / b
"""
OPS_FIXED = OPS.replace("a - b", "a + b")

TEST_OPS = """\
import pytest

from calc.ops import add, div


def test_add(numbers):
    a, b = numbers
    assert add(a, b) == 5


def test_div():
    assert div(1, 0) == 0


@pytest.mark.parametrize("x, expected", [(1, 2), (2, 3)])
def test_inc(x, expected):
    assert x + 1 == expected


class TestOps:
    def test_sub(self):
        assert 3 - 1 == 2

    def test_message(self):
        assert add(1, 1) == 2, "add is broken"


@pytest.mark.slow
def test_marked():
    pass


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass


@pytest.mark.xfail(reason="known bug")
def test_known_bug():
    assert add(1, 2) == 3
"""

CHECK_ENV = """\
def test_installed_library():
    import userlib
    assert userlib.double(21) == 42


def test_plugin_fixture(greeting):
    assert greeting == "hello"


def test_editable_package_outside_the_project():
    import extpkg
    assert extpkg.VALUE == 42
"""

PYPROJECT = """\
[project]
name = "calc"
version = "0.1"

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["src"]
python_files = ["test_*.py", "check_*.py"]
addopts = "--strict-markers"
markers = ["slow: a slow test"]
"""


def _write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def project(tmp_path) -> Path:
    return _write_tree(tmp_path / "calc-project", {
        "pyproject.toml": PYPROJECT,
        "src/calc/__init__.py": "",
        "src/calc/ops.py": OPS,
        "tests/conftest.py": "import pytest\n\n@pytest.fixture\ndef numbers():\n    return 2, 3\n",
        "tests/test_ops.py": TEST_OPS,
        "tests/check_env.py": CHECK_ENV,
    })  # fmt: skip


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every entry's kind, content hash and mtime: equal snapshots mean nothing was written."""
    state = {}
    for path in [root, *sorted(root.rglob("*"))]:
        stat = path.lstat()
        content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        state[str(path.relative_to(root))] = (stat.st_mode, stat.st_mtime_ns, stat.st_size, content)
    return state


def _run(project: Path, node_ids=(), *, python, **kwargs) -> PytestRun:
    """run_pytest, checking that the user's directory is byte-for-byte and mtime-for-mtime
    unchanged and has no caches."""
    before = _snapshot(project)
    run = run_pytest(project, node_ids, python=str(python), **kwargs)
    assert _snapshot(project) == before
    assert not list(project.rglob("__pycache__")) and not list(project.rglob(".pytest_cache"))
    return run


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def _outcomes(run: PytestRun) -> dict[str, str]:
    return {node: outcome.outcome for node, outcome in run.outcomes.items()}


# --- outcomes, messages, frames ------------------------------------------------------------------


def test_outcomes_messages_and_frames_per_node_id(mode, project, user_env):
    run = _run(project, ["tests/test_ops.py"], python=user_env)

    assert run.status == "ok" and run.isolation == mode and run.exit_code == 1, run.message
    assert run.rootdir == str(project)
    assert _outcomes(run) == {
        "tests/test_ops.py::test_add": "failed",
        "tests/test_ops.py::test_div": "failed",
        "tests/test_ops.py::test_inc[1-2]": "passed",
        "tests/test_ops.py::test_inc[2-3]": "passed",
        "tests/test_ops.py::TestOps::test_sub": "passed",
        "tests/test_ops.py::TestOps::test_message": "failed",
        "tests/test_ops.py::test_marked": "passed",
        "tests/test_ops.py::test_skipped": "skipped",
        "tests/test_ops.py::test_known_bug": "xfailed",
    }
    assert len(run.collected) == 9
    tests, ops = project / "tests/test_ops.py", project / "src/calc/ops.py"
    add = run.outcomes["tests/test_ops.py::test_add"]
    assert add.message == "assert -1 == 5" and add.when == "call"
    assert "where -1 = add(2, 3)" in add.longrepr
    assert [(f.path, f.line, f.function) for f in add.frames] == [
        (str(tests), _line_of(tests, "assert add(a, b) == 5"), "test_add")
    ]
    assert add.location.path == str(tests) and add.location.line == _line_of(tests, "def test_add")
    div = run.outcomes["tests/test_ops.py::test_div"]
    assert div.message == "ZeroDivisionError: division by zero"
    assert [(f.path, f.line, f.function) for f in div.frames] == [
        (str(tests), _line_of(tests, "assert div(1, 0) == 0"), "test_div"),
        (str(ops), _line_of(ops, "return a / b"), "div"),
    ]
    assert div.frames_within(project / "src") == div.frames[1:]
    assert (
        run.outcomes["tests/test_ops.py::TestOps::test_message"].message
        == "AssertionError: add is broken"
    )
    assert run.outcomes["tests/test_ops.py::test_skipped"].message == "not today"
    assert (
        run.outcomes["tests/test_ops.py::test_known_bug"].message == "assert -1 == 3"
    )  # why it failed
    assert not run.passes() and run.passes(
        ["tests/test_ops.py::test_inc", "tests/test_ops.py::TestOps::test_sub"]
    )
    assert str(project) in run.stdout  # pytest's own report, with the real paths


def test_a_traced_run_says_what_the_projects_functions_were_given_and_returned(mode, project, user_env):
    """Only the project's own functions (not the tests, not pytest, not installed packages), with
    their arguments and results, or the exception that left them; an untraced run has none."""
    run = _run(project, ["tests/test_ops.py::test_add", "tests/test_ops.py::test_div"],
               python=user_env, trace_calls=True)  # fmt: skip
    ops = project / "src/calc/ops.py"
    (add,) = run.outcomes["tests/test_ops.py::test_add"].calls
    assert (add.frame.function, add.frame.path, add.depth) == ("add", str(ops), 0)
    assert (add.arguments, add.result, add.raised) == ("a=2, b=3", "-1", None)
    (div,) = run.outcomes["tests/test_ops.py::test_div"].calls
    assert (div.arguments, div.result, div.raised) == ("a=1, b=0", None, "ZeroDivisionError")
    plain = _run(project, ["tests/test_ops.py::test_add"], python=user_env)
    assert plain.outcomes["tests/test_ops.py::test_add"].calls == []


GENERATORS = """\
def countdown(n):
    while n > 0:
        yield n
        n -= 1


async def total(values):
    return sum(values)
"""
TEST_GENERATORS = """\
import asyncio

from calc.gen import countdown, total


def test_countdown():
    assert list(countdown(3)) == [3, 2, 1, 0]


def test_total():
    assert asyncio.run(total([1, 2])) == 4
"""


def test_a_traced_generator_or_coroutine_is_one_call(mode, project, user_env):
    """Each resume of a generator is not another call, and what it yields is not its result; a
    coroutine's result is what it returned at last."""
    overlay = {"src/calc/gen.py": GENERATORS, "tests/test_gen.py": TEST_GENERATORS}
    run = _run(project, ["tests/test_gen.py"], python=user_env, overlay=overlay, trace_calls=True)
    (countdown,) = run.outcomes["tests/test_gen.py::test_countdown"].calls
    assert (countdown.frame.function, countdown.arguments, countdown.result) == ("countdown", "n=3", None)
    (total,) = run.outcomes["tests/test_gen.py::test_total"].calls
    assert (total.frame.function, total.arguments, total.result) == ("total", "values=[1, 2]", "3")


SWALLOWED = """\
from contextlib import suppress


def lookup(table, key):
    with suppress(KeyError): return table[key]


def strict(table, key):
    return table[key]
"""
TEST_SWALLOWED = """\
from calc.lookup import lookup, strict


def test_lookup():
    assert lookup({}, "a") == 0


def test_strict():
    assert strict({}, "a") == 0
"""


def test_a_traced_exception_handled_on_the_line_that_raised_it_is_not_a_raise(mode, project, user_env):
    """No "line" event follows an exception swallowed on its own line; the call still returned."""
    overlay = {"src/calc/lookup.py": SWALLOWED, "tests/test_lookup.py": TEST_SWALLOWED}
    run = _run(project, ["tests/test_lookup.py"], python=user_env, overlay=overlay, trace_calls=True)
    (lookup,) = run.outcomes["tests/test_lookup.py::test_lookup"].calls
    assert (lookup.result, lookup.raised) == ("None", None)
    (strict,) = run.outcomes["tests/test_lookup.py::test_strict"].calls
    assert (strict.result, strict.raised) == (None, "KeyError")


def test_user_config_conftest_plugins_and_installed_packages(mode, project, user_env):
    run = _run(project, [], python=user_env)  # no ids: the project's testpaths, its file patterns

    assert run.status == "ok"
    for name in (
        "test_installed_library",
        "test_plugin_fixture",
        "test_editable_package_outside_the_project",
    ):
        assert run.outcomes[f"tests/check_env.py::{name}"].outcome == "passed", run.outcomes[
            f"tests/check_env.py::{name}"
        ].longrepr
    assert run.outcomes["tests/test_ops.py::test_add"].passed is False


def test_the_developers_own_environment_with_an_editable_install(tmp_path):
    """This repository's venv: `ledex` is an editable install, its source outside the project."""
    project = _write_tree(tmp_path / "p", {"test_dev.py": (
        "from ledex.sandbox.limits import Limits\n\n"
        "def test_import():\n    assert Limits().open_files > 0\n")})  # fmt: skip
    run = _run(project, ["test_dev.py::test_import"], python=sys.executable)
    assert run.status == "ok", run.message
    assert _outcomes(run) == {"test_dev.py::test_import": "passed"}


# --- overlays ------------------------------------------------------------------------------------


def test_overlay_makes_the_failing_test_pass_without_touching_the_file(mode, project, user_env):
    node = "tests/test_ops.py::test_add"
    assert _run(project, [node], python=user_env).outcomes[node].failed

    fixed = _run(project, [node], python=user_env, overlay={"src/calc/ops.py": OPS_FIXED})
    assert fixed.status == "ok" and fixed.passes([node]) and _outcomes(fixed) == {node: "passed"}
    assert (project / "src/calc/ops.py").read_text() == OPS

    # an absolute path inside the project works too, and the next run sees the original again
    absolute = {str(project / "src/calc/ops.py"): OPS_FIXED}
    assert _run(project, [node], python=user_env, overlay=absolute).passes([node])
    assert _run(project, [node], python=user_env).outcomes[node].failed


def test_overlay_adds_new_files_and_folders(mode, project, user_env):
    overlay = {
        "src/calc/extra/__init__.py": "",
        "src/calc/extra/triple.py": "def triple(x):\n    return 3 * x\n",
        "tests/test_new.py": (
            "from calc.extra.triple import triple\n\n"
            "def test_triple():\n    assert triple(2) == 6\n"
        ),
    }
    run = _run(
        project,
        ["tests/test_new.py", "tests/test_ops.py::test_inc"],
        python=user_env,
        overlay=overlay,
    )
    assert run.status == "ok", run.message + run.stderr
    assert _outcomes(run) == {"tests/test_new.py::test_triple": "passed",
                              "tests/test_ops.py::test_inc[1-2]": "passed",
                              "tests/test_ops.py::test_inc[2-3]": "passed"}  # fmt: skip
    again = _run(project, ["tests/test_new.py"], python=user_env)
    assert again.status == "not_found" and again.missing == ["tests/test_new.py"]


def test_collection_errors_point_at_the_line(mode, project, user_env):
    broken = TEST_OPS.replace("def test_div():", "def test_div(:")
    run = _run(
        project, ["tests/test_ops.py"], python=user_env, overlay={"tests/test_ops.py": broken}
    )
    assert run.status == "ok" and run.outcomes == {} and not run.passes()
    [error] = run.collection_errors
    assert error.node_id == "tests/test_ops.py" and "SyntaxError" in error.message
    tests = project / "tests/test_ops.py"
    assert (error.location.path, error.location.line) == (
        str(tests),
        _line_of(tests, "def test_div("),
    )

    missing = OPS.replace("def div", "def divide")  # the test module's import fails
    run = _run(
        project,
        ["tests/test_ops.py::test_add"],
        python=user_env,
        overlay={"src/calc/ops.py": missing},
    )
    assert run.status == "ok" and not run.passes(["tests/test_ops.py::test_add"])
    [error] = run.collection_errors
    assert error.message.startswith("ImportError: cannot import name 'div'")
    assert (error.location.path, error.location.line) == (
        str(tests),
        _line_of(tests, "from calc.ops import"),
    )


# --- timeouts, crashes, unknown tests ------------------------------------------------------------

HANGS = """\
import time


def test_first():
    pass


def test_hangs():
    time.sleep(600)


def test_never_reached():
    pass
"""


def test_a_hanging_test_times_out_keeping_finished_results(mode, project, user_env):
    run = _run(project, ["tests/test_hang.py"], python=user_env, timeout=3,
               overlay={"tests/test_hang.py": HANGS})  # fmt: skip
    assert run.status == "timeout" and run.duration < 10
    assert _outcomes(run) == {
        "tests/test_hang.py::test_first": "passed",
        "tests/test_hang.py::test_hangs": "timeout",
    }
    hung = run.outcomes["tests/test_hang.py::test_hangs"]
    assert (
        hung.failed and "timed out after 3 s" in hung.message and "1 tests finished" in hung.message
    )
    assert hung.location.path == str(project / "tests/test_hang.py") and hung.location.line == 8
    assert not run.passes(
        ["tests/test_hang.py::test_first", "tests/test_hang.py::test_never_reached"]
    )


def test_a_cancelled_run_stops_at_once(mode, project, user_env):
    cancel = threading.Event()
    threading.Timer(1.5, cancel.set).start()
    run = _run(project, ["tests/test_hang.py"], python=user_env, timeout=60, cancel=cancel,
               overlay={"tests/test_hang.py": HANGS})  # fmt: skip
    assert run.status == "cancelled" and run.duration < 10, (run.status, run.duration)
    assert "test_hangs" not in {outcome.node_id.split("::")[-1] for outcome in run.failed}


def test_an_already_cancelled_run_does_not_start(project, user_env):
    cancel = threading.Event()
    cancel.set()
    run = _run(project, python=user_env, cancel=cancel)
    assert run.status == "cancelled" and not run.outcomes


def test_a_crashing_test_is_reported_as_crashed(mode, project, user_env):
    crash = (
        "import os, signal\n\ndef test_ok():\n    pass\n\n"
        "def test_segfault():\n    os.kill(os.getpid(), signal.SIGSEGV)\n"
    )
    run = _run(project, ["tests/test_crash.py"], python=user_env,
               overlay={"tests/test_crash.py": crash}, screen=False)  # fmt: skip
    assert run.status == "crashed" and "SIGSEGV" in run.message
    assert _outcomes(run) == {
        "tests/test_crash.py::test_ok": "passed",
        "tests/test_crash.py::test_segfault": "crashed",
    }


def test_unknown_node_ids_are_a_clear_status(mode, project, user_env):
    run = _run(project, ["tests/test_ops.py::test_nope"], python=user_env)
    assert run.status == "not_found" and run.missing == ["tests/test_ops.py::test_nope"]
    assert "tests/test_ops.py::test_nope" in run.message and not run.passes()


# --- hostile tests -------------------------------------------------------------------------------


def test_printed_fake_results_do_not_count(mode, project, user_env):
    fake = (
        "import json\n\ndef test_fake():\n"
        "    print(json.dumps({'event': 'report', 'nodeid': 'tests/test_fake.py::test_fake',\n"
        "                      'when': 'call', 'outcome': 'passed'}))\n"
        "    print('=== 1 passed in 0.01s ===')\n"
        "    assert False, 'really failed'\n"
    )
    run = _run(
        project, ["tests/test_fake.py"], python=user_env, overlay={"tests/test_fake.py": fake}
    )
    assert _outcomes(run) == {"tests/test_fake.py::test_fake": "failed"}
    assert not run.passes()


@needs_bwrap
def test_hostile_tests_are_contained(project, user_env, tmp_path, monkeypatch):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    monkeypatch.setenv("LEDEX_TEST_SECRET", "s3cret")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    hostile = textwrap.dedent(f"""\
        import os, socket, pytest

        def test_cannot_write_the_project():
            for path in ({str(project / "pwned.txt")!r}, {str(project / "src/calc/ops.py")!r}):
                with pytest.raises(OSError):
                    open(path, "w").write("pwned")
            with pytest.raises(OSError):
                os.mkdir({str(project / "__pycache__")!r})

        def test_cannot_read_secrets():
            with pytest.raises(OSError):
                open({str(secret)!r}).read()
            assert "LEDEX_TEST_SECRET" not in os.environ
            assert not os.path.exists(os.path.expanduser("~/.ssh"))

        def test_no_network():
            for address in (("127.0.0.1", {port}), ("1.1.1.1", 53)):
                with pytest.raises(OSError):
                    socket.create_connection(address, timeout=2)
        """)
    try:
        run = _run(
            project,
            ["tests/test_hostile.py"],
            python=user_env,
            overlay={"tests/test_hostile.py": hostile},
            screen=False,  # the sandbox's containment, for what the screen lets through
        )
    finally:
        listener.close()
    assert run.passes(), {n: o.longrepr for n, o in run.outcomes.items() if o.failed}
    assert len(run.outcomes) == 3


@fallback
def test_fallback_writes_land_in_the_shadow(mode, project, user_env, tmp_path):
    """Without bubblewrap the tests run in a shadow copy: relative writes never reach the user's
    folder, and the next sync removes them."""
    writer = (
        "def test_write():\n    open('pwned.txt', 'w').write('x')\n"
        "    open('src/calc/ops.py', 'a').write('#')\n"
    )
    run = _run(
        project, ["tests/test_write.py"], python=user_env, overlay={"tests/test_write.py": writer}
    )
    assert _outcomes(run) == {"tests/test_write.py::test_write": "passed"}
    assert (
        _run(project, ["tests/test_ops.py::test_add"], python=user_env)
        .outcomes["tests/test_ops.py::test_add"]
        .failed
    )
    shadows = list(Path(os.environ["LEDEX_SHADOW_DIR"]).glob("*/0"))
    assert len(shadows) == 1 and not (shadows[0] / "pwned.txt").exists()
    assert (shadows[0] / "src/calc/ops.py").read_text() == OPS


# --- the rlimits fallback's shadow copy ----------------------------------------------------------


@fallback
def test_fallback_shadow_is_synced_incrementally(mode, project, user_env):
    node = "tests/test_ops.py::test_add"
    assert _run(project, [node], python=user_env).outcomes[node].failed
    [shadow] = Path(os.environ["LEDEX_SHADOW_DIR"]).glob("*/0")
    conftest_inode = (shadow / "tests/conftest.py").stat().st_ino

    (project / "src/calc/ops.py").write_text(OPS_FIXED)  # the user edits a file
    assert _run(project, [node], python=user_env).passes([node])
    assert (shadow / "tests/conftest.py").stat().st_ino == conftest_inode  # unchanged: not copied


@fallback
def test_fallback_imports_the_overlay_through_an_editable_src_path(mode, tmp_path):
    """A .pth puts the project's src/ on sys.path (an editable install): the shadow's twin must
    come first, or the test would import the user's unfixed file."""
    project = _write_tree(tmp_path / "lib-project", {
        "src/mylib/__init__.py": "def answer():\n    return 41\n",
        "tests/test_answer.py": (
            "from mylib import answer\n\ndef test_answer():\n    assert answer() == 42\n"
        ),
    })  # fmt: skip
    site = _make_venv(tmp_path / "venv")
    (site / "mylib.pth").write_text(str(project / "src") + "\n")
    python = tmp_path / "venv/bin/python"
    node = "tests/test_answer.py::test_answer"
    assert _run(project, [node], python=python).outcomes[node].failed
    fixed = {"src/mylib/__init__.py": "def answer():\n    return 42\n"}
    run = _run(project, [node], python=python, overlay=fixed)
    assert run.passes([node]), run.outcomes[node].longrepr


@fallback
def test_fallback_parallel_runs_use_separate_shadows(mode, project, user_env):
    node = "tests/test_ops.py::test_add"
    results: dict[str, PytestRun] = {}

    def run(name: str, overlay: dict[str, str]) -> None:
        results[name] = run_pytest(project, [node], python=str(user_env), overlay=overlay)

    threads = [threading.Thread(target=run, args=("fixed", {"src/calc/ops.py": OPS_FIXED})),
               threading.Thread(target=run, args=("broken", {}))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["fixed"].passes([node]) and results["broken"].outcomes[node].failed


# --- the interpreter and bad input ---------------------------------------------------------------


def test_pytest_missing_names_the_interpreter(tmp_path, project):
    _make_venv(tmp_path / "bare", with_pytest=False)
    python = tmp_path / "bare/bin/python"
    run = _run(project, [], python=python)
    assert (
        run.status == "error"
        and str(python) in run.message
        and "pytest is not installed" in run.message
    )


def test_resolve_python_prefers_the_projects_venv(tmp_path, project):
    default = resolve_python(project)
    assert os.path.isabs(default) and Path(default).read_bytes()[:2] != b"#!"  # not a launcher
    assert resolve_python(project, "python3") == default
    _make_venv(project / ".venv", with_pytest=False)
    assert resolve_python(project) == str(project / ".venv/bin/python")
    assert resolve_python(project, "/opt/py/bin/python") == "/opt/py/bin/python"


def test_a_launcher_on_path_is_resolved_to_the_interpreter_it_starts(tmp_path, project, monkeypatch):
    """pyenv's shims are scripts that need pyenv's own folders, which the sandbox does not show:
    the interpreter the user has on PATH is resolved on the host and runs the tests."""
    hidden = tmp_path / "pyenv-root"
    shims = tmp_path / "shims"
    for folder, target in ((hidden, sys.executable), (shims, hidden / "python3")):
        folder.mkdir()
        (folder / "python3").write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        (folder / "python3").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    assert resolve_python(project) == sys.executable
    assert resolve_python(project, str(shims / "python3")) == sys.executable
    run = run_pytest(project, ["tests/test_ops.py"], timeout=120)
    assert run.status == "ok" and run.outcomes, run.message


@pytest.mark.parametrize("kwargs, expected", [
    ({"project_dir": "/nonexistent/project"}, "does not exist"),
    ({"project_dir": None}, "must be a path"),
    ({"project_dir": "/"}, "file system root"),
    ({"overlay": ["a.py"]}, "overlay must map"),
    ({"overlay": {"src/calc/ops.py/x.py": "x"}}, "goes through a file"),
    ({"node_ids": ["--rootdir=/"]}, "not a test node id"),
    ({"node_ids": [None]}, "node id"),
    ({"node_ids": ["/etc/passwd::x"]}, "outside the project"),
    ({"overlay": {"../escape.py": "x"}}, "not a file inside the project"),
    ({"overlay": {"src/calc": "x"}}, "is a folder"),
    ({"overlay": {"a.py": b"bytes"}}, "must be text"),
    ({"timeout": 0}, "timeout must be a positive"),
    ({"timeout": float("nan")}, "timeout must be a positive"),
    ({"python": "/nonexistent/python"}, "does not exist or is not executable"),
    ({"pytest_args": [3]}, "pytest argument"),
])  # fmt: skip
def test_bad_input_is_an_error_status_never_an_exception(project, user_env, kwargs, expected):
    arguments = {"project_dir": project, "node_ids": [], "python": str(user_env), **kwargs}
    run = run_pytest(arguments.pop("project_dir"), arguments.pop("node_ids"), **arguments)
    assert run.status == "error" and expected in run.message and not run.passes()
