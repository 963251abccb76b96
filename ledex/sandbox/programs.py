"""Benchmark-style programs (MBPP, HumanEval, APPS) in warm sandboxed workers.

    run_program("def f(x): return x + 2", ["assert f(3) == 4"])
    -> ProgramResult(status="failed", passed=[False], feedback="The code fails this test:\\n..." )

Each worker is one sandbox (`isolation.Sandboxed`) running `worker.py`, which forks a child per
program; a `ProgramPool` keeps workers warm across calls, one host thread per busy worker. The host
never trusts a worker to stay alive: a program may kill it (or stop it), and then that program is
reported ("killed" / "timeout") and a fresh worker is started for the next one.

Statuses:
- "passed":  every test passed (a program with no tests is never "passed", see below);
- "failed":  the first failing test's assertion was false / its stdin-stdout output differed;
- "error":   the first failing test raised, or the program could not be tested at all: it does not
             compile, raised or exited (sys.exit, os._exit) before or while the tests ran, printed
             more than the output limit, interfered with the harness, reached for the harness
             (frames, gc, ctypes...: refused before it ran, see screening.py), compared as equal
             to everything; also an empty test list
             ("There are no tests to run": a program that is checked by nothing must not count as
             correct, e.g. as an RL reward);
- "timeout": wall-clock `timeout` (or its CPU time) ran out; `timeout <= 0` times out at once;
- "killed":  the program died from a signal (a segfault) or killed its harness.
`passed` has one entry per test; tests without a result (after a timeout or crash) count as failed.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import math
import os
import select
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from ledex.feedback import FailureInfo, Frame, format_feedback
from ledex.sandbox import isolation, screening
from ledex.sandbox.limits import Limits

Status = Literal["passed", "failed", "error", "timeout", "killed"]

_WORKER = Path(__file__).resolve().parent / "worker.py"
_START_TIMEOUT = (
    60.0  # seconds for a worker to say it is ready (a cold start imports a few modules)
)
_GRACE = 3.0  # seconds the host waits beyond a program's timeout for the worker to answer
_WORKER_MEMORY_MB = 1 << 20  # the worker's own ceiling; each program gets its own `memory_mb`


@dataclass(frozen=True)
class IOTest:
    """An APPS-style test: run the whole program with `input` on stdin, compare its stdout with
    `output` line by line, whitespace-normalised (runs of spaces and trailing blanks ignored)."""

    input: str
    output: str


Test = str | IOTest  # a str is one or more statements with asserts, run in the program's namespace


@dataclass(frozen=True)
class Program:
    """One job for `run_many`."""

    code: str
    tests: Sequence[Test]
    setup: str = (
        ""  # runs after the code, before the tests (MBPP's test_setup_code needs that order)
    )
    timeout: float = 5.0  # seconds for the code, setup and all tests together
    memory_mb: int = 1024


@dataclass(frozen=True)
class ProgramResult:
    status: Status
    passed: list[bool]
    feedback: str  # "" when passed; else the text the model is trained on (ledex.feedback)
    duration: float  # seconds the program ran
    output: str = ""  # the start of what the program printed (stdout and stderr)
    failure: FailureInfo | None = field(default=None, repr=False)  # the first failure, structured

    @property
    def ok(self) -> bool:
        return self.status == "passed"


# --- the public functions ------------------------------------------------------------------------


def run_program(
    code: str,
    tests: Sequence[Test],
    *,
    setup: str = "",
    timeout: float = 5.0,
    memory_mb: int = 1024,
) -> ProgramResult:
    """Run `code`, then `setup`, then every test, in a warm sandboxed worker of the default pool."""
    return default_pool().run(Program(code, tests, setup, timeout, memory_mb))


def run_many(
    jobs: Iterable[Program | Mapping[str, Any]],
    *,
    workers: int | None = None,
    pool: ProgramPool | None = None,
) -> list[ProgramResult]:
    """Run many programs in parallel on `workers` warm workers; results in the order of `jobs`.

    Without `pool` the process-wide default pool is used (it grows to `workers`, and its workers stay
    warm for later calls until the interpreter exits).
    """
    return (pool or default_pool(workers)).run_many(jobs, workers=workers)


class ProgramPool:
    """Up to `workers` warm sandboxed workers, started when first needed; a context manager."""

    def __init__(
        self, workers: int | None = None, *, python: str = sys.executable, screen: bool = True
    ) -> None:
        self.size = max(1, workers or os.cpu_count() or 1)
        self.python = python
        #: refuse programs that reach for the harness before they run (screening.py); off only to
        #: test the harness's own run-time defences
        self.screen = screen
        self._idle: list[_Worker] = []
        self._count = 0  # workers that exist (idle or busy)
        self._lock = threading.Condition()
        self._closed = False

    def run(self, program: Program) -> ProgramResult:
        return self.run_many([program])[0]

    def run_many(
        self, jobs: Iterable[Program | Mapping[str, Any]], *, workers: int | None = None
    ) -> list[ProgramResult]:
        programs = [_as_program(job) for job in jobs]
        results: list[ProgramResult | None] = [_without_running(p, self.screen) for p in programs]
        todo = [i for i, result in enumerate(results) if result is None]
        if not todo:
            return results  # type: ignore[return-value]
        next_job = iter(todo)
        take = threading.Lock()
        errors: list[BaseException] = []

        def serve() -> None:
            worker = None
            try:
                worker = self._acquire()
                while True:
                    with take:
                        index = next(next_job, None)
                    if index is None:
                        return
                    results[index] = worker.run(programs[index])
            except BaseException as error:  # a closed pool, a worker that cannot start: below
                errors.append(error)
            finally:
                if worker is not None:
                    self._release(worker)

        threads = min(len(todo), workers or self.size, self.size)
        if threads == 1:
            serve()
        else:
            pool = [threading.Thread(target=serve, daemon=True) for _ in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
        if errors and any(result is None for result in results):
            raise errors[0]
        return results  # type: ignore[return-value]

    def grow(self, workers: int) -> None:
        with self._lock:
            self.size = max(self.size, workers)

    def _acquire(self) -> _Worker:
        with self._lock:
            while not self._closed and not self._idle and self._count >= self.size:
                self._lock.wait()
            if self._closed:
                raise RuntimeError("the program pool is closed")
            if self._idle:
                return self._idle.pop()
            self._count += 1
        return _Worker(self.python)  # started lazily, outside the lock (workers start in parallel)

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            if self._closed:
                worker.close()
                self._count -= 1
            else:
                self._idle.append(worker)
            self._lock.notify()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._lock.notify_all()
        for worker in idle:
            worker.close()

    def __enter__(self) -> ProgramPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_default: ProgramPool | None = None
_default_lock = threading.Lock()


def default_pool(workers: int | None = None) -> ProgramPool:
    """The process-wide pool behind `run_program` and `run_many`, closed when the interpreter exits."""
    global _default
    with _default_lock:
        if _default is None or _default._closed:
            _default = ProgramPool(workers)
            atexit.register(_default.close)
        elif workers:
            _default.grow(workers)
        return _default


# --- turning input into a job, and a worker's answer into a result -------------------------------


def _as_program(job: Program | Mapping[str, Any]) -> Program:
    if isinstance(job, Program):
        return job
    return Program(
        **{
            key: job[key]
            for key in ("code", "tests", "setup", "timeout", "memory_mb")
            if key in job
        }
    )


def _without_running(program: Program, screen: bool = True) -> ProgramResult | None:
    """Results that need no sandbox: bad arguments, no tests, no time, a refused program."""
    if not isinstance(program.code, str) or not isinstance(program.setup, str):
        raise TypeError("code and setup must be str")
    tests = list(program.tests) if not isinstance(program.tests, str | bytes) else None
    if tests is None or not all(isinstance(t, str | IOTest | Mapping) for t in tests):
        raise TypeError("tests must be a list of assert strings or IOTest")
    if not tests:
        return _local_result(program, FailureInfo(kind="no_tests"), "error")
    if not (
        isinstance(program.timeout, int | float)
        and math.isfinite(program.timeout)
        and program.timeout > 0
    ):
        info = FailureInfo(kind="timeout", test=_show_test(_as_test(tests[0])), seconds=0.0)
        return _local_result(program, info, "timeout")
    refused = screening.refusal(program.code, "program") if screen else ""  # setup is the task's
    if refused:
        message = f"The code was not run: {refused}."
        return _local_result(program, FailureInfo(kind="harness", message=message), "error")
    return None


def _local_result(program: Program, info: FailureInfo, status: Status) -> ProgramResult:
    return ProgramResult(status, [False] * len(program.tests), format_feedback(info), 0.0, "", info)


def _as_test(test: Test | Mapping[str, str]) -> Test:
    if isinstance(test, Mapping):
        return IOTest(str(test.get("input", "")), str(test.get("output", "")))
    return test


def _wire(program: Program, job_id: int) -> dict[str, Any]:
    tests = [_as_test(t) for t in program.tests]
    return {
        "id": job_id,
        "code": program.code,
        "setup": program.setup,
        "timeout": float(program.timeout),
        "memory_mb": int(program.memory_mb),
        "tests": [
            {"assert": t} if isinstance(t, str) else {"input": t.input, "output": t.output}
            for t in tests
        ],
    }


def _show_test(test: Test) -> str:
    if isinstance(test, str):
        return test.strip()
    return f"input:\n{_cut(test.input)}\nexpected output:\n{_cut(test.output)}"


def _cut(text: str, limit: int = 300) -> str:
    text = text.rstrip("\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


_INFO_FIELDS = {f.name for f in fields(FailureInfo)} - {"frames", "test"}


def _result(program: Program, answer: Mapping[str, Any]) -> ProgramResult:
    """A worker's answer as a ProgramResult, the feedback rendered by ledex.feedback."""
    count = len(program.tests)
    passed = [bool(x) for x in answer.get("passed", [])][:count]
    passed += [False] * (count - len(passed))
    status = answer.get("status", "error")
    info = None
    raw = answer.get("failure")
    if status != "passed" and isinstance(raw, Mapping):
        index = raw.get("index", 0)
        index = index if isinstance(index, int) and 0 <= index < count else 0
        values = {key: raw[key] for key in _INFO_FIELDS if key in raw}
        if values.get("exception") == "MemoryError":
            values["limit_mb"] = program.memory_mb
        frames = tuple(
            Frame(
                str(f.get("file", "")),
                int(f.get("line") or 0),
                str(f.get("function", "")),
                str(f.get("source", "")),
                int(f.get("repeated", 0)),
            )
            for f in raw.get("frames", ())
            if isinstance(f, Mapping)
        )
        info = FailureInfo(test=_show_test(_as_test(program.tests[index])), frames=frames, **values)
    return ProgramResult(
        status=status,
        passed=passed,
        feedback=format_feedback(info) if info is not None else "",
        duration=float(answer.get("duration", 0.0)),
        output=str(answer.get("output", "")),
        failure=info,
    )


# --- one warm worker -----------------------------------------------------------------------------

_EOF, _TIMED_OUT = object(), object()
# bubblewrap's --die-with-parent (PR_SET_PDEATHSIG) fires when the *thread* that started it ends: a
# worker started from run_many's short-lived threads, or a caller's request thread, would be killed
# under a running program. Every worker is started from this one thread, which never ends.
_SPAWNER = ThreadPoolExecutor(1, thread_name_prefix="ledex-sandbox-start")


def _parse_answer(line: bytes) -> dict[str, Any] | None:
    try:
        answer = json.loads(line)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


class _Worker:
    """One sandbox running worker.py; restarted when a program kills or hangs it."""

    def __init__(self, python: str) -> None:
        self.python = python
        self.sandbox: isolation.Sandboxed | None = None
        self._buffer = b""
        self._jobs = 0
        self._stderr: list[bytes] = []

    def _spec(self) -> isolation.Spec:
        limits = Limits(memory_mb=_WORKER_MEMORY_MB, processes=64, file_size_mb=64, open_files=256)
        if isolation.mode() == "bwrap":
            argv = [self.python, "-I", "-B", "/opt/ledex-sandbox/worker.py", "--pidns"]
            mounts = [*isolation.interpreter_mounts(self.python), isolation.package_mount()]
            return isolation.Spec(argv, mounts, limits=limits, limit_cpu=False)
        return isolation.Spec(
            [self.python, "-I", "-B", str(_WORKER)], limits=limits, limit_cpu=False
        )

    def start(self) -> None:
        self.close()
        self._buffer = b""
        self.sandbox = _SPAWNER.submit(isolation.Sandboxed, self._spec()).result()
        self._stderr = []
        threading.Thread(target=self._drain_stderr, args=(self.sandbox,), daemon=True).start()
        ready = self._read_line(time.monotonic() + _START_TIMEOUT)
        if not isinstance(ready, bytes) or not ready.startswith(b'{"ready"'):
            stderr = b"".join(self._stderr).decode(errors="replace").strip()[-2000:]
            self.close()
            raise RuntimeError(
                f"the sandboxed program worker did not start: {stderr or 'no output'}"
            )

    def _drain_stderr(self, sandbox: isolation.Sandboxed) -> None:
        kept = self._stderr  # the worker's own tracebacks, if it ever has any: last 8 KB
        stream = sandbox.process.stderr
        if not isinstance(stream, io.BufferedReader):  # a pipe, buffered: always one
            return
        with contextlib.suppress(OSError, ValueError):
            while chunk := stream.read1(65536):
                kept.append(chunk)
                while sum(map(len, kept)) > 8192 and len(kept) > 1:
                    kept.pop(0)

    def run(self, program: Program) -> ProgramResult:
        if self.sandbox is None or self.sandbox.process.poll() is not None:
            self.start()
        assert self.sandbox is not None and self.sandbox.process.stdin is not None
        self._jobs += 1
        message = json.dumps(_wire(program, self._jobs)).encode() + b"\n"
        started = time.monotonic()
        try:
            self.sandbox.process.stdin.write(message)
            self.sandbox.process.stdin.flush()
        except (BrokenPipeError, OSError):  # died between programs: start again once
            self.start()
            self.sandbox.process.stdin.write(message)
            self.sandbox.process.stdin.flush()
        line = self._read_line(started + float(program.timeout) + _GRACE)
        answer = _parse_answer(line) if isinstance(line, bytes) else None
        if answer is not None and answer.get("id") == self._jobs:
            return _result(program, answer)
        # No answer: the program killed the worker (EOF), stopped it (no reply in time), or wrote
        # on its channel (possible only where the sandbox runs as root without bubblewrap).
        self.close()  # a fresh worker for the next program; nothing of this one is trusted
        elapsed = time.monotonic() - started
        if line is _TIMED_OUT:
            info: dict[str, Any] = {"kind": "timeout", "seconds": float(program.timeout)}
            return _result(program, {"status": "timeout", "failure": info, "duration": elapsed})
        if line is _EOF:
            info = {
                "kind": "harness",
                "message": "The code killed the test harness (its parent process).",
            }
            return _result(program, {"status": "killed", "failure": info, "duration": elapsed})
        info = {"kind": "harness", "message": "The code interfered with the test harness."}
        return _result(program, {"status": "error", "failure": info, "duration": elapsed})

    def _read_line(self, deadline: float) -> bytes | object:
        """The worker's next line, or _EOF, or _TIMED_OUT when `deadline` passes."""
        assert self.sandbox is not None and self.sandbox.process.stdout is not None
        fd = self.sandbox.process.stdout.fileno()  # read raw: the BufferedReader is never used
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _TIMED_OUT
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return _TIMED_OUT
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return _EOF
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None
