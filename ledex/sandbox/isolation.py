"""Starting a process inside the sandbox, and making sure all of it dies.

Isolation, strongest available first:
- bubblewrap: new user, pid, network, ipc and uts namespaces; only the system directories, the
  interpreter and explicitly named paths are visible, read-only; a private size-capped /tmp;
  a clean environment; uid 65534 inside.
- a pids cgroup (v1 or v2, where writable) caps the number of processes: RLIMIT_NPROC does not bind
  a process whose real uid is root outside its user namespace.
- rlimits for CPU, address space, file size, open files (and processes where that binds).
- a wall-clock timeout that kills the whole tree: the process group, the cgroup, and with
  bubblewrap the pid namespace (its init dies, so every process in it dies).

Without bubblewrap (not installed, or user namespaces disabled) programs still run with rlimits,
the cgroup, a private working directory and, where the interpreter allows it, a non-root uid;
`ledex` says so once, loudly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Literal

from ledex.sandbox.limits import Limits, apply

log = logging.getLogger("ledex.sandbox")

Mode = Literal["bwrap", "rlimits"]
SANDBOX_UID = 65534  # "nobody" inside the user namespace
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Only what dynamic linking, locales and time zones need from /etc; never passwd/shadow/ssh.
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
              "/etc/alternatives", "/etc/nsswitch.conf", "/etc/hosts")  # fmt: skip
_PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Mount:
    source: Path
    dest: Path | None = None  # same path inside by default
    writable: bool = False

    @property
    def target(self) -> Path:
        return self.dest or self.source


@dataclass(frozen=True)
class Spec:
    """What to run and what it may see."""

    argv: Sequence[str]
    mounts: Sequence[Mount] = ()
    workdir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    limits: Limits = Limits()
    #: apply the CPU rlimit to the sandbox's first process (a warm worker limits each child instead)
    limit_cpu: bool = True


@dataclass
class Completed:
    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    output_truncated: bool
    cancelled: bool = False  # killed because the caller's `cancel` event was set

    @property
    def signal(self) -> int | None:
        return -self.returncode if self.returncode is not None and self.returncode < 0 else None


# --- what this machine can do --------------------------------------------------------------------


@cache
def mode() -> Mode:
    """bubblewrap if it works here, else rlimits only; probed once, a fallback said once."""
    if os.environ.get("LEDEX_SANDBOX") == "rlimits":
        _warn_once("bubblewrap disabled by LEDEX_SANDBOX=rlimits")
        return "rlimits"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        _warn_once("bubblewrap (bwrap) is not installed")
        return "rlimits"
    probe = subprocess.run(
        [bwrap, *_bwrap_args(Spec(argv=["/bin/true"])), "/bin/true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        _warn_once(f"bubblewrap cannot create namespaces here ({probe.stderr.strip()[:200]})")
        return "rlimits"
    return "bwrap"


def _warn_once(reason: str) -> None:
    log.warning(
        "SANDBOX FALLBACK: %s. Untrusted code will run with resource limits only, without "
        "filesystem or network isolation. Install bubblewrap and enable user namespaces.",
        reason,
    )


@cache
def _interpreter_paths(python: str) -> tuple[Path, ...]:
    """The folders an interpreter needs: its prefixes and every sys.path entry (a venv's
    site-packages, editable installs)."""
    code = "import sys; print('\\n'.join([sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path]))"
    result = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise OSError(f"cannot run the interpreter {python}: {result.stderr.strip()[:200]}")
    paths = {Path(line).resolve() for line in result.stdout.splitlines() if line.strip()}
    paths.add(Path(python).resolve().parent)  # a venv's bin/ (its python is a symlink)
    paths.add(Path(python).absolute().parent)
    return tuple(_outermost(p for p in paths if p.exists() and not _is_system(p)))


def interpreter_mounts(python: str = sys.executable) -> list[Mount]:
    return [Mount(path) for path in _interpreter_paths(python)]


def _is_system(path: Path) -> bool:
    return any(path == Path(d) or Path(d) in path.parents for d in _SYSTEM_DIRS)


def _outermost(paths: Iterable[Path]) -> list[Path]:
    ordered = sorted(set(paths), key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in ordered:
        if not any(k == path or k in path.parents for k in kept):
            kept.append(path)
    return kept


# --- building the command ------------------------------------------------------------------------


def _bwrap_args(spec: Spec) -> list[str]:
    args = ["--unshare-all", "--die-with-parent", "--new-session",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--hostname", "ledex-sandbox", "--clearenv"]  # fmt: skip
    for directory in _SYSTEM_DIRS:
        if os.path.islink(directory):
            args += ["--symlink", os.readlink(directory), directory]
        elif os.path.isdir(directory):
            args += ["--ro-bind", directory, directory]
    for path in _ETC_FILES:
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--size", str(spec.limits.tmp_mb << 20), "--tmpfs", "/tmp"]
    args += ["--size", str(spec.limits.tmp_mb << 20), "--tmpfs", "/dev/shm"]
    for mount in spec.mounts:
        args += ["--bind" if mount.writable else "--ro-bind", str(mount.source), str(mount.target)]
    # bwrap's root and /dev are unbounded tmpfs (RAM) the sandbox could otherwise fill with files
    # (each capped by RLIMIT_FSIZE, their number not); only /tmp, /dev/shm and writable mounts stay
    # writable. After all mounts: their mount points are created in the root first.
    args += ["--remount-ro", "/dev", "--remount-ro", "/"]
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1", **spec.env}  # fmt: skip
    for key, value in env.items():
        args += ["--setenv", key, value]
    args += ["--chdir", str(spec.workdir or "/tmp")]
    return args


def command(spec: Spec) -> list[str]:
    if mode() == "bwrap":
        return [shutil.which("bwrap") or "bwrap", *_bwrap_args(spec), "--", *spec.argv]
    return list(spec.argv)


# --- running -------------------------------------------------------------------------------------


class _PidsCgroup:
    """A pids cgroup holding one sandbox, where this process may create one (root, delegation)."""

    def __init__(self, limit: int) -> None:
        self.path: Path | None = None
        for parent in _cgroup_parents():
            candidate = parent / f"ledex-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                candidate.mkdir()
                (candidate / "pids.max").write_text(str(limit))
            except OSError:
                with _suppress():
                    candidate.rmdir()
                continue
            self.path = candidate
            break

    def enter(self) -> None:
        """Called in the child between fork and exec."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def kill_all(self) -> None:
        if self.path is None:
            return
        for _ in range(50):
            pids = _read_pids(self.path / "cgroup.procs")
            if not pids:
                break
            for pid in pids:
                with _suppress():
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)
        with _suppress():
            self.path.rmdir()


@cache
def _cgroup_parents() -> tuple[Path, ...]:
    parents = []
    v2 = _own_cgroup_v2()
    if v2 is not None:
        parents.append(v2)
    v1 = Path("/sys/fs/cgroup/pids")
    if (v1 / "cgroup.procs").exists():
        parents.append(v1)
    return tuple(p for p in parents if os.access(p, os.W_OK))


def _own_cgroup_v2() -> Path | None:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                path = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
                controllers = (path / "cgroup.controllers").read_text() if path.exists() else ""
                return path if "pids" in controllers.split() else None
    except OSError:
        return None
    return None


def _read_pids(path: Path) -> list[int]:
    try:
        return [int(line) for line in path.read_text().split()]
    except (OSError, ValueError):
        return []


def _suppress() -> contextlib.suppress:
    return contextlib.suppress(OSError)


def _effective_limits(limits: Limits) -> Limits:
    """RLIMIT_NPROC counts all of a uid's processes: for an ordinary user add what already runs."""
    if os.getuid() == 0:
        return limits
    running = sum(1 for entry in os.scandir("/proc") if entry.name.isdigit() and _owned(entry.path))
    return replace(limits, processes=limits.processes + running)


def _owned(path: str) -> bool:
    try:
        return os.stat(path).st_uid == os.getuid()
    except OSError:
        return False


class Sandboxed:
    """A running sandbox: a Popen plus everything needed to kill all of it."""

    def __init__(self, spec: Spec, *, stdin: int | None = subprocess.PIPE) -> None:
        self.cgroup = _PidsCgroup(spec.limits.processes + 8)  # + bwrap and its init
        limits = _effective_limits(spec.limits)
        drop_uid = mode() == "rlimits" and os.getuid() == 0 and _nobody_can_run(spec.argv[0])

        def prepare_child() -> None:  # runs in the child after fork, before exec
            self.cgroup.enter()
            apply(limits, cpu=spec.limit_cpu)
            if drop_uid:
                os.setgid(SANDBOX_UID)
                os.setuid(SANDBOX_UID)

        workdir = None
        if mode() == "rlimits":
            workdir = tempfile.mkdtemp(prefix="ledex-sandbox-")
            os.chmod(workdir, 0o777)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir or "/tmp", "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", **spec.env}  # fmt: skip
        self._workdir = workdir
        self.process = subprocess.Popen(
            command(spec),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=prepare_child,
            env=env if mode() == "rlimits" else {},
            cwd=str(spec.workdir) if mode() == "rlimits" and spec.workdir else workdir,
        )

    def kill(self) -> None:
        """Kill every process of the sandbox, including ones that left the process group."""
        with _suppress():
            os.killpg(self.process.pid, signal.SIGKILL)
        with _suppress():
            self.process.kill()
        self.cgroup.kill_all()

    def close(self) -> None:
        self.kill()
        with _suppress():
            self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with _suppress():
                    stream.close()
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)


@cache
def _nobody_can_run(program: str) -> bool:
    """In the fallback, drop to uid 65534 only if that uid can still run the interpreter."""
    try:
        result = subprocess.run(
            [program, "-c", "pass"], capture_output=True, timeout=30,
            preexec_fn=lambda: (os.setgid(SANDBOX_UID), os.setuid(SANDBOX_UID)),
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    if result.returncode != 0:
        log.warning("SANDBOX FALLBACK: %s is not usable by uid %d; code runs as root", program, SANDBOX_UID)
    return result.returncode == 0


def run(
    spec: Spec,
    *,
    input: bytes = b"",
    timeout: float = 30.0,
    output_limit: int = 1 << 20,
    cancel: threading.Event | None = None,
) -> Completed:
    """Run once to completion, timeout or `cancel`; stdout/stderr kept up to `output_limit` bytes
    each. Setting `cancel` kills the whole sandbox within about 0.1 s (a stale test run must not
    keep the cores busy while the next one waits).

    When the first process exits, whatever it left running (daemons) is killed too.
    """
    if cancel is not None and cancel.is_set():
        return Completed(None, b"", b"", False, False, cancelled=True)
    sandbox = Sandboxed(spec)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        sandbox.kill()

    timer = threading.Timer(max(timeout, 0.0), expire)
    timer.start()
    try:
        truncated = [False]
        readers = [_Reader(sandbox.process.stdout, output_limit, truncated),
                   _Reader(sandbox.process.stderr, output_limit, truncated)]  # fmt: skip
        for reader in readers:
            reader.start()
        _feed(sandbox.process.stdin, input)
        cancelled = _wait(sandbox.process, cancel)
        sandbox.kill()  # leftovers would keep the pipes open; on cancel, the whole run goes
        out, err = (reader.result() for reader in readers)
        return Completed(sandbox.process.returncode, out, err, expired.is_set(), truncated[0],
                         cancelled=cancelled and not expired.is_set())  # fmt: skip
    finally:
        timer.cancel()
        sandbox.close()


def _wait(process: subprocess.Popen, cancel: threading.Event | None) -> bool:
    """Wait for the process; True if `cancel` was set first."""
    if cancel is None:
        process.wait()
        return False
    while True:
        try:
            process.wait(timeout=0.1)
            return False
        except subprocess.TimeoutExpired:
            if cancel.is_set():
                return True


def _feed(stdin, data: bytes) -> None:
    if stdin is None:
        return
    with _suppress():
        stdin.write(data)
    with _suppress():
        stdin.close()


class _Reader(threading.Thread):
    """Reads a pipe to the end, keeping at most `limit` bytes (a program printing 100 MB must
    neither fill our memory nor block on a full pipe)."""

    def __init__(self, stream, limit: int, truncated: list[bool]) -> None:
        super().__init__(daemon=True)
        self.stream, self.limit, self.truncated = stream, limit, truncated
        self.data = bytearray()

    def run(self) -> None:
        while chunk := self.stream.read1(65536):
            room = self.limit - len(self.data)
            if room > 0:
                self.data += chunk[:room]
            if len(chunk) > room:
                self.truncated[0] = True

    def result(self) -> bytes:
        self.join()
        return bytes(self.data)


def package_mount() -> Mount:
    """This folder, read-only, so the in-sandbox worker can import `limits` (stdlib-only)."""
    return Mount(_PACKAGE_DIR, Path("/opt/ledex-sandbox"))
