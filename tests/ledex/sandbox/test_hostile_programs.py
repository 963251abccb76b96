"""The hostile-code suite (issue 4): every case is contained, gets the right status, never fakes a
pass, leaves the worker usable, and leaves the machine as it was.

Under bubblewrap everything here holds. The second half runs the cases that must still hold in the
rlimits fallback (LEDEX_SANDBOX=rlimits): timeouts, memory, the fork bomb (pids cgroup), huge output,
crashes, a killed parent, and every fake-success attempt. Filesystem, network and secret-file
containment need bubblewrap; so does clearing every file and daemon a program leaves behind when the
host has no pids cgroup for it. On this machine the fallback runs as root (the interpreter lives
under /root, which uid 65534 cannot read), so nothing there may be tried that would hurt the host.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from ledex.sandbox import Program, ProgramPool, ProgramResult, isolation

ROOT = Path(__file__).resolve().parents[3]
MARK = f"ledexhostile{uuid.uuid4().hex[:12]}"  # in the cmdline of every daemon the cases start
needs_bwrap = pytest.mark.skipif(
    isolation.mode() != "bwrap", reason="needs bubblewrap (make installs it)"
)

# --- what the machine looks like -----------------------------------------------------------------


def _processes_with(text: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(name))
    return found


def _our_cgroups() -> set[str]:
    return {
        p.name
        for root in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))
        if root.is_dir()
        for p in root.glob(f"ledex-{os.getpid()}-*")
    }


def _left_in_repo() -> list[str]:
    places = (ROOT, ROOT / "ledex")  # where test_the_project_and_the_host_are_read_only writes
    return [p.name for d in places for p in d.iterdir() if MARK in p.name or p.name.startswith("pwned")]


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    """After the module's pools closed, nothing of ours may be left: no process a program started,
    no pids cgroup, no working folder (the fallback's, made in a temp dir watched here), nothing
    written into the repository."""
    before = _our_cgroups()
    temp = tmp_path_factory.mktemp("sandbox-temp")
    saved, tempfile.tempdir = tempfile.tempdir, str(temp)
    try:
        yield
    finally:
        tempfile.tempdir = saved
    deadline = time.monotonic() + 5
    while _processes_with(MARK) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(MARK) == []
    assert _our_cgroups() <= before, "a pids cgroup was left behind"
    assert list(temp.iterdir()) == [], "a sandbox folder was left behind"
    assert _left_in_repo() == []


@pytest.fixture(scope="module")
def pool(machine):
    """Unscreened: the cases test the harness's and the sandbox's own defences, which must hold
    for code the screen (screening.py) lets through. The screened cases are at the end."""
    with ProgramPool(2, screen=False) as pool:
        yield pool


def run(pool: ProgramPool, code: str, tests=("assert f(1) == 2",), **kwargs) -> ProgramResult:
    result = pool.run(Program(code, list(tests), **kwargs))
    # The worker survived (or was replaced): an ordinary program still runs correctly after it.
    for _ in range(2):  # both workers of the pool
        follow_up = pool.run(
            Program("def f(x):\n    return x + 1\n", ["assert f(1) == 2", "assert f(2) == 4"])
        )
        assert (follow_up.status, follow_up.passed) == ("failed", [True, False])
    return result


# --- resources -----------------------------------------------------------------------------------


def test_infinite_loop(pool):
    started = time.monotonic()
    result = run(pool, "def f(x):\n    while True:\n        pass\n", timeout=1)
    assert result.status == "timeout"
    assert time.monotonic() - started < 3
    assert result.feedback.endswith("The code timed out after 1 s (infinite loop?)")


def test_infinite_loop_in_a_thread_burning_cpu_time(pool):
    code = (
        "import threading\ndef spin():\n    while True:\n        pass\n"
        "for _ in range(4):\n    threading.Thread(target=spin, daemon=True).start()\n"
        "def f(x):\n    while True:\n        pass\n"
    )
    assert run(pool, code, timeout=1).status == "timeout"


def test_fork_bomb(pool):
    result = run(pool, "import os\nwhile True:\n    os.fork()\n", timeout=2)
    assert result.status in ("error", "timeout", "killed")
    assert result.status != "passed"


def test_allocating_20_gb(pool):
    result = run(pool, "blob = bytearray(20 * 2**30)\ndef f(x):\n    return 2\n")
    assert result.status == "error" and "MemoryError" in result.feedback
    result = run(pool, "chunks = []\nwhile True:\n    chunks.append(bytearray(100 * 2**20))\n")
    assert result.status == "error" and "MemoryError" in result.feedback


def test_writing_10_gb_to_disk(pool):
    one_file = "f = open('big', 'wb')\nfor _ in range(10 * 1024):\n    f.write(b'x' * 2**20)\n"
    result = run(pool, one_file, timeout=10)
    assert result.status == "error" and "File too large" in result.feedback


@needs_bwrap
def test_writing_10_gb_to_disk_in_many_files(pool):
    started = time.monotonic()
    many = (
        "import os\nfor d in ('.', '/tmp', '/dev/shm', '/'):\n    for i in range(200):\n        try:\n"
        "            with open(os.path.join(d, f'big{i}'), 'wb') as f:\n"
        "                for _ in range(64):\n                    f.write(b'x' * 2**20)\n"
        "        except OSError as e:\n            last = e\n            break\n"
        "raise last\n"
    )
    result = run(pool, many, timeout=20)
    assert result.status == "error" and (
        "No space left" in result.feedback or "Read-only" in result.feedback
    )
    assert time.monotonic() - started < 20


def test_huge_output(pool):
    started = time.monotonic()
    code = "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 2**20)\ndef f(x):\n    return 2\n"
    result = run(pool, code)
    assert result.status == "error"
    assert "printed more than 16 MB of output" in result.feedback
    assert len(result.output) <= 4096
    assert time.monotonic() - started < 5
    # the same through the raw file descriptor, bypassing sys.stdout
    result = run(pool, "import os\nfor _ in range(100):\n    os.write(1, b'y' * 2**20)\n")
    assert result.status == "error"


def test_deep_recursion(pool):
    result = run(pool, "def f(x):\n    return f(x + 1)\n")
    assert result.status == "error"
    assert "RecursionError" in result.feedback
    # with the recursion limit lifted, recursion through C (map) overflows the C stack: a crash
    result = run(
        pool, "import sys\nsys.setrecursionlimit(10**7)\ndef f(x):\n    return list(map(f, [x]))\n"
    )
    assert result.status == "killed"
    assert "SIGSEGV" in result.feedback


def test_segfault(pool):
    result = run(pool, "import ctypes\ndef f(x):\n    return ctypes.string_at(0)\n")
    assert result.status == "killed"
    assert "crashed with signal SIGSEGV" in result.feedback


# --- processes -----------------------------------------------------------------------------------


def test_a_daemon_does_not_outlive_the_program(pool):
    code = (
        "import os, subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)', '{MARK}'], start_new_session=True)\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(30)', '{MARK}'])\n"
        "    os._exit(0)\n"
        "import time\ntime.sleep(0.2)\n"
        "def f(x):\n    return 2\n"
    )
    result = run(pool, code)
    assert result.status == "passed"  # the program itself is fine; its leftovers must be gone
    deadline = time.monotonic() + 3
    while _processes_with(MARK) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(MARK) == []


def test_killing_the_parent(pool):
    result = run(pool, "import os\nos.kill(os.getppid(), 9)\ndef f(x):\n    return 2\n")
    assert result.status == "killed"
    assert "killed the test harness" in result.feedback
    result = run(
        pool,
        "import os, signal\ndef f(x):\n    os.kill(os.getppid(), signal.SIGTERM)\n    return 2\n",
    )
    assert result.status == "killed"


def test_killing_the_own_process_group(pool):
    result = run(pool, "import os\nos.killpg(0, 9)\ndef f(x):\n    return 2\n")
    assert result.status == "killed"


@needs_bwrap
def test_killing_every_process_it_can(pool):
    # kill(-1) signals every process the caller may signal: only safe to try in a pid namespace.
    probe = run(
        pool,
        "import os\nalone = os.getpid() < 10 and len([p for p in os.listdir('/proc') if p.isdigit()]) < 10\n",
        ["assert alone"],
    )
    assert probe.status == "passed", "not in a private pid namespace: refusing to run kill(-1)"
    result = run(pool, "import os\nos.kill(-1, 9)\ndef f(x):\n    return 2\n")
    assert result.status == "killed"


def test_stopping_the_parent(pool):
    started = time.monotonic()
    result = run(
        pool,
        "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\ndef f(x):\n    return 2\n",
        timeout=0.5,
    )
    assert result.status == "timeout"
    assert time.monotonic() - started < 8


# --- faking success ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exit_call", ["sys.exit(0)", "os._exit(0)", "raise SystemExit", "exit()", "quit()"]
)
def test_exiting_before_the_tests_is_not_a_pass(pool, exit_call):
    result = run(pool, f"import os, sys\ndef f(x):\n    return 2\n{exit_call}\n")
    assert result.status == "error"
    assert result.passed == [False]
    assert "The code exited before the tests ran" in result.feedback


def test_exiting_during_the_tests_is_not_a_pass(pool):
    code = "import os\ncalls = 0\ndef f(x):\n    global calls\n    calls += 1\n    if calls == 2:\n        os._exit(0)\n    return x + 1\n"
    result = run(pool, code, ["assert f(1) == 2", "assert f(2) == 3", "assert f(3) == 4"])
    assert result.status == "error"
    assert result.passed == [True, False, False]
    assert (
        result.feedback
        == "The code fails this test:\nassert f(2) == 3\nThe code exited during this test."
    )


def test_monkeypatching_the_harness_does_not_fake_success(pool):
    code = (
        "import builtins, sys, os, json, io\n"
        "class Fake(Exception):\n    pass\n"
        "builtins.AssertionError = Fake\n"
        "sys.exit = lambda *a: None\n"
        "os._exit = lambda *a: None\n"
        "os.write = lambda fd, data: len(data)\n"
        "builtins.print = lambda *a, **k: None\n"
        "builtins.compile = lambda *a, **k: compile('pass', '<x>', 'exec')\n"
        "builtins.exec = lambda *a, **k: None\n"
        "builtins.repr = lambda x: '1'\n"
        "builtins.isinstance = lambda *a: True\n"
        'json.dumps = lambda *a, **k: \'{"status": "passed"}\'\n'
        "sys.settrace(lambda *a: None)\n"
        "def f(x):\n    return 1\n"
    )
    result = run(pool, code, ["assert f(1) == 2", "assert f(2) == 2"])
    assert result.status == "failed"
    assert result.passed == [False, False]
    assert result.feedback.endswith("f(1) returned 1, expected 2")


def test_patching_builtins_that_a_test_calls_does_not_fake_success(pool):
    code = "import builtins\nbuiltins.sorted = lambda *a, **k: [1, 2, 3]\ndef f(x):\n    return [3, 1]\n"
    result = run(pool, code, ["assert sorted(f(1)) == [1, 2, 3]"])
    assert result.status == "failed"


def test_a_trace_function_cannot_skip_the_assert(pool):
    code = (
        "import sys\n"
        "def jump(frame, event, arg):\n"
        "    if frame.f_code.co_filename == '<test>' and event == 'line':\n"
        "        frame.f_lineno = 2\n"
        "    return jump\n"
        "sys.settrace(jump)\n"
        "def f(x):\n    return 1\n"
    )
    result = run(pool, code, ["assert f(1) == 2\npass"])
    assert result.status == "failed"


def test_printing_a_fake_success_marker_does_nothing(pool):
    code = (
        "import sys, os\n"
        "for stream in (sys.stdout, sys.stderr):\n"
        '    print(\'all tests passed\\nPASSED\\n{"status": "passed", "passed": [true]}\', file=stream)\n'
        "os.write(1, b'OK 1 passed\\n')\n"
        "def f(x):\n    return 1\n"
    )
    result = run(pool, code)
    assert result.status == "failed"
    assert "all tests passed" in result.output


def test_writing_fake_records_to_every_file_descriptor_is_tampering(pool):
    code = (
        "import os\n"
        "for fd in range(3, 1024):\n"
        "    try:\n"
        "        os.write(fd, b'0123456789abcdef T 1 0 1 {}\\n')\n"
        "    except OSError:\n"
        "        pass\n"
        "def f(x):\n    return 2\n"
    )
    result = run(pool, code)
    assert result.status == "error"
    assert result.feedback.endswith("The code interfered with the test harness.")


def test_the_worker_channel_is_out_of_reach(pool):
    code = (
        "import os\n"
        "for fd in os.listdir(f'/proc/{os.getppid()}/fd'):\n"
        "    open(f'/proc/{os.getppid()}/fd/{fd}', 'w').write('{\"id\": 1, \"status\": \"passed\"}\\n')\n"
        "def f(x):\n    return 2\n"
    )
    result = run(pool, code)
    assert result.status == "error"
    assert "PermissionError" in result.feedback or "interfered" in result.feedback


# --- filesystem, network, secrets (bubblewrap) ---------------------------------------------------


@needs_bwrap
def test_sockets_to_localhost_and_the_internet_fail(pool):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.3)
    port = listener.getsockname()[1]
    try:
        for address in (f"('127.0.0.1', {port})", "('1.1.1.1', 53)", "('example.com', 80)"):
            result = run(
                pool,
                f"import socket\nsocket.create_connection({address}, timeout=2)\ndef f(x):\n    return 2\n",
            )
            assert result.status == "error"  # refused / unreachable / no name resolution
            assert result.failure.kind == "exception", result.feedback
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing connected
    finally:
        listener.close()


@needs_bwrap
def test_secrets_are_out_of_reach(pool, tmp_path, monkeypatch):
    monkeypatch.setenv("LEDEX_TEST_SECRET", "hunter2-" + MARK)
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("hunter2")
    code = (
        "import os, glob\n"
        "env = dict(os.environ)\n"
        "proc_env = b''\n"
        "for p in glob.glob('/proc/*/environ'):\n"
        "    try:\n"
        "        proc_env += open(p, 'rb').read()\n"
        "    except OSError:\n"
        "        pass\n"
        "home_listing = os.listdir(os.path.expanduser('~'))\n"
        "root_listing = os.listdir('/root') if os.path.isdir('/root') else []\n"
        f"secret_exists = os.path.exists({str(secret_file)!r})\n"
        "ssh_exists = any(os.path.exists(p) for p in ('/root/.ssh', os.path.expanduser('~/.ssh'), '/etc/ssh', '/etc/shadow'))\n"
    )
    tests = [
        "assert not any('SECRET' in k for k in env)",
        f"assert b'{MARK}' not in proc_env",
        "assert not secret_exists",
        "assert not ssh_exists",
        "assert set(root_listing) <= {'.pyenv'}",  # only mount points of the interpreter
    ]
    result = run(pool, code, tests)
    assert result.status == "passed", result.feedback


@needs_bwrap
def test_the_project_and_the_host_are_read_only(pool):
    target = ROOT / f"pwned-{MARK}.txt"
    code = (
        "import os\n"
        f"for path in ({str(target)!r}, '/pwned-{MARK}', {str(ROOT / 'ledex' / 'pwned.txt')!r}):\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "    except OSError as error:\n"
        "        print(type(error).__name__)\n"
        "    else:\n"
        "        print('WROTE', path)\n"
        "open('in-cwd.txt', 'w').write('x')  # its own scratch folder: fine\n"
        "def f(x):\n    return 2\n"
    )
    result = run(pool, code)
    assert result.status == "passed"
    # A checkout under /tmp is shadowed by the sandbox's private /tmp: a write there succeeds but
    # lands in that tmpfs. What matters is below: nothing reached the host.
    wrote = [line for line in result.output.splitlines() if line.startswith("WROTE")]
    assert all(line.split()[1].startswith("/tmp/") for line in wrote), wrote
    assert not target.exists() and not (ROOT / "ledex" / "pwned.txt").exists()
    assert not Path(f"/pwned-{MARK}").exists()


# --- the rlimits fallback ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fallback_pool(machine):
    """A pool started with LEDEX_SANDBOX=rlimits; the cached mode is restored afterwards."""
    patch = pytest.MonkeyPatch()
    patch.setenv("LEDEX_SANDBOX", "rlimits")
    isolation.mode.cache_clear()
    try:
        assert isolation.mode() == "rlimits"
        with ProgramPool(1, screen=False) as pool:
            yield pool
    finally:
        patch.undo()
        isolation.mode.cache_clear()


FALLBACK_CASES = {
    # name: (code, tests, timeout, acceptable statuses)
    "infinite loop": ("def f(x):\n    while True:\n        pass\n", None, 1, {"timeout"}),
    "fork bomb": (
        "import os\nwhile True:\n    os.fork()\n",
        None,
        2,
        {"error", "timeout", "killed"},
    ),
    "20 GB": ("blob = bytearray(20 * 2**30)\n", None, 5, {"error"}),
    "one 10 GB file": (
        "f = open('big', 'wb')\nfor _ in range(10240):\n    f.write(b'x' * 2**20)\n",
        None,
        10,
        {"error"},
    ),
    "100 MB stdout": (
        "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 2**20)\n",
        None,
        5,
        {"error"},
    ),
    "deep recursion": ("def f(x):\n    return f(x + 1)\n", None, 5, {"error"}),
    "segfault": ("import ctypes\nctypes.string_at(0)\n", None, 5, {"killed"}),
    "kill parent": ("import os\nos.kill(os.getppid(), 9)\n", None, 5, {"killed"}),
    "killpg": ("import os\nos.killpg(0, 9)\n", None, 5, {"killed"}),
    "sys.exit": ("import sys\nsys.exit(0)\n", None, 5, {"error"}),
    "os._exit": ("import os\nos._exit(0)\n", None, 5, {"error"}),
    "patched harness": (
        "import builtins, sys, os\nbuiltins.AssertionError = Exception\nsys.exit = os._exit = print\n"
        "def f(x):\n    return 1\n",
        None,
        5,
        {"failed"},
    ),
    "fake marker": ("print('all tests passed')\ndef f(x):\n    return 1\n", None, 5, {"failed"}),
    "channel spam": (
        "import os\nfor fd in range(3, 1024):\n    try:\n        os.write(fd, b'x T 1 0 1 {}\\n')\n"
        "    except OSError:\n        pass\ndef f(x):\n    return 2\n",
        None,
        5,
        {"error"},
    ),
    "secret env": (
        "import os\nleaked = [k for k in os.environ if 'SECRET' in k]\n",
        ["assert leaked == []"],
        5,
        {"passed"},
    ),
}


@pytest.mark.parametrize("name", list(FALLBACK_CASES))
def test_what_still_holds_without_bubblewrap(fallback_pool, monkeypatch, name):
    monkeypatch.setenv("LEDEX_TEST_SECRET", "hunter2")
    code, tests, timeout, statuses = FALLBACK_CASES[name]
    result = run(fallback_pool, code, tests or ["assert f(1) == 2"], timeout=timeout)
    assert result.status in statuses, result.feedback


def test_a_daemon_without_bubblewrap_is_gone_where_there_is_a_pids_cgroup(fallback_pool):
    code = (
        "import os, subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)', '{MARK}'], start_new_session=True)\n"
        "def f(x):\n    return 2\n"
    )
    assert run(fallback_pool, code).status == "passed"
    has_cgroup = os.access("/sys/fs/cgroup/pids", os.W_OK) or os.access("/sys/fs/cgroup", os.W_OK)
    if not has_cgroup:
        pytest.skip("without bubblewrap, daemons are only caught through a pids cgroup")
    deadline = time.monotonic() + 3
    while _processes_with(MARK) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(MARK) == []


def test_sandbox_processes_are_gone_after_close(machine):
    signature = sys.executable + "\x00-I\x00-B"  # the worker's command line (and bwrap's)
    before = set(_processes_with(signature))
    with ProgramPool(2) as pool:
        pool.run_many([Program("x = 1", ["assert x == 1"])] * 4)
        ours = set(_processes_with(signature)) - before
        assert ours
    assert not ours & set(_processes_with(signature))


# --- forged verdicts (issue 15): a screened pool, as run_program and run_many use ------------------

FORGERIES = {
    # name: (code, test): each one passed before issue 15
    "an object equal to everything": (
        "class Anything:\n    def __eq__(self, other):\n        return True\n"
        "def f(x):\n    return Anything()\n",
        "assert f(1) == 2",
    ),
    "an int equal to everything": (
        "class Int(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def f(x):\n    return Int(7)\n",
        "assert f(1) == 2",
    ),
    "an object equal to anything of the expected type, in a list": (
        "class Number:\n    def __eq__(self, other):\n        return type(other) is int\n"
        "def f(x):\n    return [Number(), Number()]\n",
        "assert f(1) == [2, 3]",
    ),
    "an equal-to-everything value in a dict": (
        "class Anything:\n    def __eq__(self, other):\n        return True\n"
        "def f(x):\n    return {'a': Anything()}\n",
        "assert f(1) == {'a': 2}",
    ),
    "the expected value read from the harness's frame": (
        "import sys, ast\n"
        "def f(x):\n"
        "    frame, test = sys._getframe(1), ''\n"
        "    while frame is not None and not test:\n"
        "        test, frame = frame.f_locals.get('source') or '', frame.f_back\n"
        "    for node in ast.walk(ast.parse(test)):\n"
        "        if isinstance(node, ast.Compare):\n"
        "            return ast.literal_eval(node.comparators[0])\n",
        "assert f(1) == 2",
    ),
}


@pytest.fixture(scope="module")
def screened_pool(machine):
    with ProgramPool(1) as pool:
        yield pool


@pytest.mark.parametrize("name", list(FORGERIES))
def test_a_forged_verdict_is_not_a_pass(screened_pool, name):
    code, test = FORGERIES[name]
    result = screened_pool.run(Program(code, [test]))
    assert result.status != "passed" and result.passed == [False], result.feedback
    assert result.status == "error", result.feedback


def test_reaching_for_the_harness_is_refused_with_the_reason(screened_pool):
    result = screened_pool.run(Program("import gc\ndef f(x):\n    return 2\n", ["assert f(1) == 2"]))
    assert result.status == "error" and result.duration == 0.0  # never ran
    assert result.feedback.startswith("The code was not run: it reaches for the test verifier")
    assert "line 1: import gc (walks every live object" in result.feedback


def test_values_that_honestly_compare_equal_still_pass(screened_pool):
    code = (
        "from collections import Counter, OrderedDict, namedtuple\nfrom fractions import Fraction\n"
        "Point = namedtuple('Point', 'x y')\n"
        "def f(x):\n    return Fraction(x, 1)\n"
        "def g():\n    return Counter('aab')\n"
        "def h():\n    return [Point(1, 2)], OrderedDict(a=1)\n"
        "class Money:\n    def __init__(self, cents):\n        self.cents = cents\n"
        "    def __eq__(self, other):\n        return isinstance(other, Money) and other.cents == self.cents\n"
    )
    tests = ["assert f(4) == 4", "assert g() == {'a': 2, 'b': 1}", "assert h() == ([(1, 2)], {'a': 1})",
             "assert Money(3) == Money(3)", "assert f(4) == 4.0", "assert float('inf') == float('inf')"]
    result = screened_pool.run(Program(code, tests))
    assert result.status == "passed", result.feedback


def test_a_forged_equality_says_so(screened_pool):
    code, test = FORGERIES["an object equal to everything"]
    result = screened_pool.run(Program(code, [test]))
    assert "ForgedEquality" in result.feedback and "__eq__" in result.feedback
