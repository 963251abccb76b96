"""ledex's pytest plugin: records every test report as one JSON line on a private pipe.

Runs inside the sandbox, in the user's interpreter and pytest, loaded with
`-p ledex_pytest_plugin` from a read-only folder on PYTHONPATH; it is never installed in the user's
environment. Stdlib + pytest only, and only hooks that pytest 6-9 all have.

Results go to a pipe the host passes as file descriptor 3, not to stdout, so what a test prints
cannot forge them; nothing of the host is writable in the sandbox and no path or environment
variable names the channel ($LEDEX_PYTEST_CHANNEL only says "1": the pipe is there). At import,
before conftest.py files or tests run, the plugin reads a per-run key from descriptor 4 (the host
wrote it and closed its end), closes both and keeps the pipe at a random descriptor that children
do not inherit. Every record starts with the key: a line without it is tampering. Each record is
written with one write as it happens, so a run killed by the timeout keeps everything that
finished.

Code in the same process can still reach this module; the host does not believe it alone: it
cross-checks the records against the process's real exit status and pytest's own summary line
(pytest_runner), and refuses candidate code that reaches for pytest or this plugin (screening).

Records (the key, a space, one JSON object, a newline; "event" says which):
  rootdir    {rootdir, invocation_dir}
  collected  {nodeids}
  start      {nodeid, location}              a test began (an unfinished one is the one that hung)
  report     {nodeid, when, outcome, wasxfail, duration, message, longrepr, frames, location,
              category (what pytest's summary counts it as)}
  collect_error {nodeid, message, longrepr, frames}
  finish     {exitstatus}                    after every other sessionfinish hook (a conftest
                                             may change session.exitstatus), so it is the
                                             status the process exits with
  calls      {nodeid, calls}                 only when the host asks ($LEDEX_PYTEST_TRACE=1): the
                                             first calls into the project's own code (not its
                                             tests) during the test's call phase, each
                                             {function, path, line, depth, arguments, result,
                                             raised}, reprs cut short
  forged     {why}                           pytest's reporting was changed during the run (a
                                             report "passed" with the test's exception at hand,
                                             pytest's report functions replaced): the host
                                             believes nothing of the run
Frames are {path (absolute), line (1-based), function}, innermost last, pytest's own frames left
out.
"""

from __future__ import annotations

import contextlib
import dis
import fcntl
import inspect
import json
import os
import re
import reprlib
import resource
import secrets
import stat
import sys
import traceback

import pytest

ENV_VAR = "LEDEX_PYTEST_CHANNEL"
TRACE_ENV_VAR = "LEDEX_PYTEST_TRACE"
MAX_CALLS = 12  # calls recorded per test
MAX_CALLS_PER_FUNCTION = 2  # a recursive or looping function would take them all
RECORDS_FD, KEY_FD = 3, 4  # as the host passes them
MAX_TEXT = 16_000  # longrepr kept per report (its tail: the `E` lines are at the end)
MAX_FRAMES = 64

_frames_by_report: dict[tuple[str, str], list[dict]] = {}
_frames_by_collector: dict[str, list[dict]] = {}
_invocation_dir = os.getcwd()


def _open_channel() -> tuple[int | None, bytes]:
    """The records pipe, moved to a random descriptor that is closed on exec, and the run's key.
    Only where the host said it passed them (an xdist worker, started later, is told nothing)."""
    if os.environ.pop(ENV_VAR, None) != "1":
        return None, b""
    try:
        if not stat.S_ISFIFO(os.fstat(RECORDS_FD).st_mode):
            return None, b""
        key = os.read(KEY_FD, 256).strip()
        os.close(KEY_FD)
        room = max(16, min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 4096) - 16)
        fd = fcntl.fcntl(RECORDS_FD, fcntl.F_DUPFD_CLOEXEC, 10 + secrets.randbelow(room - 10))
        os.close(RECORDS_FD)
    except OSError:
        return None, b""
    return fd, key


_fd, _key = _open_channel()
_trace = os.environ.pop(TRACE_ENV_VAR, None) == "1"
_test_modules: set[str] = set()


def _emit(record: dict) -> None:
    if _fd is None:
        return
    # a full pipe's error or an odd object must not break the user's run
    with contextlib.suppress(OSError, ValueError, TypeError):
        line = _key + b" " + json.dumps(record, default=str).encode("utf-8", "replace") + b"\n"
        while line:
            line = line[os.write(_fd, line) :]


# --- pytest's own reporting, watched -------------------------------------------------------------

def _watched() -> dict[str, object]:
    """pytest's functions that make a test's report from its outcome, as they are now. Taken when
    collection starts (after the plugins installed in the user's environment and the conftest.py
    files, the user's own code, are loaded; before test modules import the code under test): code
    under test that replaces one to turn a failure into a pass is found by comparing them again."""
    import _pytest.reports
    import _pytest.runner

    found = {}
    for module, owner, names in (
        (_pytest.reports, "TestReport", ("__init__", "from_item_and_call")),
        (_pytest.reports, "BaseReport", ("passed", "failed", "skipped")),
        (_pytest.runner, "CallInfo", ("__init__", "from_call")),
        (_pytest.runner, None, ("call_and_report", "call_runtest_hook", "runtestprotocol",
                                "pytest_runtest_makereport", "check_interactive_exception")),
    ):  # fmt: skip
        namespace = vars(getattr(module, owner)) if owner else vars(module)
        for name in names:
            found[f"{module.__name__}.{owner + '.' if owner else ''}{name}"] = namespace.get(name)
    return found


_originals: dict[str, object] | None = None
_forged_said = False


def _check_internals() -> None:
    """Say once (a `forged` record) if pytest's report functions are no longer the originals."""
    global _forged_said
    if _forged_said or _originals is None:
        return
    changed = [name for name, now in _watched().items() if now is not _originals.get(name)]
    if changed:
        _forged_said = True
        _emit({"event": "forged", "why": f"{changed[0]} was replaced during the run"})


# --- frames --------------------------------------------------------------------------------------

_INTERNAL_DIRS = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep
    for path in (
        pytest.__file__,
        getattr(__import__("_pytest"), "__file__", ""),
        getattr(__import__("pluggy"), "__file__", ""),
    )  # fmt: skip
    if path
)


def _internal(path: str) -> bool:
    return (path.startswith(_INTERNAL_DIRS) or os.path.abspath(path) == os.path.abspath(__file__)
            or path.startswith("<frozen "))  # fmt: skip


def _frame(path: str, line: int, function: str) -> dict:
    if not path.startswith("<"):
        path = os.path.abspath(os.path.join(_invocation_dir, path))
    return {"path": path, "line": int(line), "function": str(function)}


def _hidden(entry, excinfo) -> bool:
    try:
        return bool(entry.ishidden(excinfo))  # pytest >= 7.4
    except TypeError:
        return bool(entry.ishidden())


def _excinfo_frames(excinfo, test_code=None) -> list[dict]:
    """The frames pytest would show: from the test function (else from the first frame in the
    rootdir: a fixture, a conftest) inwards, without pytest's and __tracebackhide__ frames."""
    frames = []
    try:
        entries = list(excinfo.traceback)
        start = _first(entries, lambda e: e.frame.code.raw is test_code) if test_code else None
        if start is None:
            start = _first(entries, lambda e: _in_rootdir(str(e.path)))
        for entry in entries[start or 0 :]:
            path = str(entry.path)
            if _internal(path) or _hidden(entry, excinfo):
                continue
            frames.append(_frame(path, entry.lineno + 1, entry.name))
    except Exception:  # noqa: BLE001 - a frame we cannot read is left out, never fatal
        pass
    return frames[-MAX_FRAMES:]


def _first(items, predicate) -> int | None:
    return next((index for index, item in enumerate(items) if predicate(item)), None)


def _rootdir() -> str:
    if _config is None:
        return _invocation_dir
    return str(getattr(_config, "rootpath", None) or _config.rootdir)


def _in_rootdir(path: str) -> bool:
    path = os.path.abspath(os.path.join(_invocation_dir, path))
    return (
        path.startswith(os.path.join(_rootdir(), ""))
        and os.sep + "site-packages" + os.sep not in path
    )


def _test_code(item):
    """The code object of a test function (unwrapped from decorators), to find its frame."""
    try:
        function = inspect.unwrap(item.obj)
        return function.__code__
    except Exception:  # noqa: BLE001 - not a function item (a doctest, a YAML test)
        return None


def _exception_frames(error: BaseException) -> list[dict]:
    """Frames of a plain exception (the cause of a collection error) from the first one in the
    rootdir, plus a SyntaxError's own location, which is not a frame."""
    frames = [
        _frame(summary.filename, summary.lineno or 0, summary.name)
        for summary in traceback.extract_tb(error.__traceback__)
        if not _internal(summary.filename)
    ]
    start = _first(frames, lambda f: _in_rootdir(f["path"]))
    if start is None and isinstance(error, SyntaxError):
        start = len(frames)  # the parser's frames say nothing about the user's code
    frames = frames[start or 0 :]
    if isinstance(error, SyntaxError) and error.filename and error.lineno:
        frames.append(_frame(error.filename, error.lineno, "<module>"))
    return frames[-MAX_FRAMES:]


_TEXT_FRAME = re.compile(
    r'^E?\s*File "(?P<p1>[^"]+)", line (?P<l1>\d+)|^(?P<p2>[^\s:][^:]*):(?P<l2>\d+): in (?P<f2>.+)$'
)


def _text_frames(text: str) -> list[dict]:
    """Frames parsed from a report's text: when no exception object is at hand (e.g. reports
    replayed by pytest-xdist)."""
    frames = []
    for line in text.splitlines():
        match = _TEXT_FRAME.match(line)
        if match is None:
            continue
        path = match["p1"] or match["p2"]
        if not _internal(os.path.abspath(os.path.join(_invocation_dir, path))):
            frames.append(_frame(path, int(match["l1"] or match["l2"]), match["f2"] or ""))
    return frames[-MAX_FRAMES:]


# --- messages ------------------------------------------------------------------------------------


def _longrepr_text(report) -> str:
    try:
        text = report.longreprtext or ""
    except Exception:  # noqa: BLE001
        text = str(report.longrepr or "")
    return text[-MAX_TEXT:]


def _message(report, text: str) -> str:
    """One line: `assert 5 == 4`, `ZeroDivisionError: division by zero`, a skip reason."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, lineno, reason)
        reason = str(longrepr[2])
        return reason[len("Skipped: ") :] if reason.startswith("Skipped: ") else reason
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return crash.message.strip().splitlines()[0]
    error_lines = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    error_lines = [line for line in error_lines if line]
    if error_lines:
        return error_lines[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _location(config, location) -> dict | None:
    """A test's (relative path, 0-based line, name) as an absolute frame."""
    try:
        path, lineno, name = location
        root = str(getattr(config, "rootpath", None) or config.rootdir)
        return {"path": os.path.abspath(os.path.join(root, path)),
                "line": (lineno or 0) + 1, "function": str(name)}  # fmt: skip
    except Exception:  # noqa: BLE001
        return None


# --- hooks ---------------------------------------------------------------------------------------

_config = None


def _is_xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config) -> None:
    global _config
    _config = config
    if _is_xdist_worker(config):
        return
    root = str(getattr(config, "rootpath", None) or config.rootdir)
    _emit({"event": "rootdir", "rootdir": root, "invocation_dir": _invocation_dir})


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session) -> None:
    global _originals
    if _originals is None:
        _originals = _watched()


def pytest_collection_finish(session) -> None:
    _emit({"event": "collected", "nodeids": [item.nodeid for item in session.items]})
    if _trace:  # the test modules, whatever `python_files` names them: not the project's code
        _test_modules.update(os.path.abspath(str(getattr(item, "path", None) or item.fspath))
                             for item in session.items)  # fmt: skip


def pytest_runtest_logstart(nodeid, location) -> None:
    _emit({"event": "start", "nodeid": nodeid, "location": _location(_config, location)})


# Exceptions that end a test without failing it: pytest.skip, pytest.xfail (unittest.SkipTest
# is turned into a skip by pytest's own makereport, before this wrapper sees the result).
_NOT_FAILURES = (pytest.skip.Exception, pytest.xfail.Exception)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and report.passed and not call.excinfo.errisinstance(_NOT_FAILURES):
        # pytest never makes a passing report from a raised exception; something made it do so
        _emit({"event": "forged", "why": f"{report.nodeid} {report.when} raised "
               f"{call.excinfo.typename} but its report says passed"})  # fmt: skip
    if call.excinfo is not None and report.failed:
        test_code = _test_code(item) if report.when == "call" else None
        _frames_by_report[(report.nodeid, report.when)] = _excinfo_frames(call.excinfo, test_code)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """With tracing asked for: record the test's first calls into the project's code."""
    if not _trace:
        yield
        return
    calls = _Calls()
    previous = sys.gettrace()
    sys.settrace(calls.on_call)
    try:
        yield
    finally:
        sys.settrace(previous)
        _emit({"event": "calls", "nodeid": item.nodeid, "calls": calls.recorded})


# Code whose frame is suspended and resumed: each resume is another "call" event, and each
# suspension a "return" event. A coroutine's last "return" gives its result; a generator's
# values are yielded, not returned.
_SUSPENDING = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
_YIELDING = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR


_RETURN_OPS = {dis.opmap[name] for name in ("RETURN_VALUE", "RETURN_CONST") if name in dis.opmap}


def _returns(frame) -> bool:
    """Whether a "return" trace event is the frame returning, not an exception leaving it: an
    exception leaves with the instruction that raised it last. An instruction this does not know
    (another Python's) counts as not returning, so a call is marked raised as before."""
    code = frame.f_code.co_code
    return 0 <= frame.f_lasti < len(code) and code[frame.f_lasti] in _RETURN_OPS


class _Calls:
    """A trace function that follows only the project's own functions (files in the rootdir, not
    test modules, not site-packages), the first few calls of each, to say what they were given
    and what they gave back: where a wrong value first appears is where the bug is. Generators
    say only what they were given, or what they raised."""

    def __init__(self) -> None:
        self.recorded: list[dict] = []
        self.per_function: dict[object, int] = {}
        self.running: dict[int, tuple] = {}  # id of a suspended frame -> (its code, its tracer)
        self.repr = reprlib.Repr()
        self.repr.maxstring, self.repr.maxother, self.repr.maxlevel = 60, 60, 3
        self.ours: dict[str, bool] = {}

    def on_call(self, frame, event, arg):
        code = frame.f_code
        if event != "call":
            return None
        resumed = self.running.get(id(frame))
        if resumed is not None and resumed[0] is code:  # (an id is reused once a frame is gone)
            return resumed[1]
        if len(self.recorded) >= MAX_CALLS or not self._function(code):
            return None
        count = self.per_function.get(code, 0)
        if count >= MAX_CALLS_PER_FUNCTION:
            return None
        self.per_function[code] = count + 1
        record = {"function": getattr(code, "co_qualname", code.co_name),
                  "path": code.co_filename, "line": frame.f_lineno, "depth": self._depth(frame),
                  "arguments": self._arguments(frame), "result": None, "raised": None}  # fmt: skip
        self.recorded.append(record)
        local = self._follow(record, yields=bool(code.co_flags & _YIELDING))
        if code.co_flags & _SUSPENDING:
            self.running[id(frame)] = (code, local)
        return local

    def _follow(self, record: dict, *, yields: bool):
        def local(frame, event, arg):
            if event == "exception":
                record["raised"] = getattr(arg[0], "__name__", "an exception")
            elif event == "line":
                record["raised"] = None  # handled inside: the function goes on
            elif event == "return":
                if record["raised"] is not None and _returns(frame):
                    # handled on the line that raised it (`with suppress(E): return d[k]`): no
                    # "line" event came, but the frame leaves by its return instruction
                    record["raised"] = None
                if record["raised"] is None and not yields:
                    record["result"] = self._repr(arg)  # a coroutine's last one is its result
            return local

        return local

    def _function(self, code) -> bool:
        """A function of the project's code: a comprehension, a lambda or a generator expression
        (`<genexpr>`) is part of the function around it."""
        return not code.co_name.startswith("<") and self._ours(code.co_filename)

    def _ours(self, path: str) -> bool:
        known = self.ours.get(path)
        if known is None:
            name = os.path.basename(path)
            known = self.ours[path] = (
                _in_rootdir(path) and not _internal(path) and name.endswith(".py")
                and path not in _test_modules and name != "conftest.py"
                and not name.startswith("test_") and not name.endswith("_test.py")
            )  # fmt: skip
        return known

    def _depth(self, frame) -> int:
        """How many calls of the project's functions (recorded or not) this one runs inside."""
        depth, outer = 0, frame.f_back
        while outer is not None:
            if self._function(outer.f_code):
                depth += 1
            outer = outer.f_back
        return depth

    def _arguments(self, frame) -> str:
        try:
            info = inspect.getargvalues(frame)
            names = [*info.args, *([info.varargs] if info.varargs else []),
                     *([info.keywords] if info.keywords else [])]  # fmt: skip
            return ", ".join(f"{name}={self._repr(info.locals.get(name))}" for name in names)
        except Exception:  # noqa: BLE001 - the user's objects may refuse to be looked at
            return "..."

    def _repr(self, value) -> str:
        try:
            return self.repr.repr(value)
        except Exception:  # noqa: BLE001
            return "<unprintable>"


def _category(report) -> str | None:
    """What pytest's terminal summary counts this report as ("passed", "failed", "error", "" for
    nothing...), asked of pytest's own hook as the terminal reporter does (plugins such as subtests
    decide it for their reports)."""
    if _config is None:
        return None
    try:
        status = _config.hook.pytest_report_teststatus(report=report, config=_config)
        return str(status[0]) if status else ""
    except Exception:  # noqa: BLE001 - the host then counts from the outcome
        return None


def pytest_runtest_logreport(report) -> None:
    _check_internals()  # at every report, not only at the end: a patch may be undone before it
    text = _longrepr_text(report) if report.longrepr is not None else ""
    frames = _frames_by_report.pop((report.nodeid, report.when), None)
    if frames is None and report.failed:
        frames = _text_frames(text)
    _emit({
        "event": "report", "nodeid": report.nodeid, "when": report.when,
        "outcome": report.outcome, "wasxfail": getattr(report, "wasxfail", None),
        "duration": getattr(report, "duration", 0.0),
        "message": _message(report, text) if report.longrepr is not None else "",
        "longrepr": text, "frames": frames or [], "location": _location(_config, report.location),
        "category": _category(report),
    })  # fmt: skip


def pytest_exception_interact(node, call, report) -> None:
    """Called with the exception of a failed collection, before pytest_collectreport."""
    if report.when != "collect" or call.excinfo is None:
        return
    error = call.excinfo.value
    # pytest wraps import and syntax errors in a CollectError raised `from` the real one.
    cause = error.__cause__ or error.__context__
    frames = _exception_frames(cause) if cause is not None else _excinfo_frames(call.excinfo)
    _frames_by_collector[report.nodeid] = frames


def pytest_collectreport(report) -> None:
    if not report.failed:
        return
    text = _longrepr_text(report)
    frames = _frames_by_collector.pop(report.nodeid, None) or _text_frames(text)
    _emit({"event": "collect_error", "nodeid": report.nodeid, "message": _message(report, text),
           "longrepr": text, "frames": frames})  # fmt: skip


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionfinish(session, exitstatus):
    yield  # after every other implementation: what the process will exit with
    if _config is not None and _is_xdist_worker(_config):
        return
    _check_internals()
    _emit({"event": "finish", "exitstatus": int(getattr(session, "exitstatus", exitstatus))})


def pytest_internalerror(excrepr, excinfo) -> None:
    _emit({"event": "internal_error", "longrepr": str(excrepr)[-MAX_TEXT:]})
