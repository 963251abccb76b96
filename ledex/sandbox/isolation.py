"""Starting a process inside the sandbox, and making sure all of it dies.

Isolation, strongest available first:
- bubblewrap: new user, pid, network, ipc and uts namespaces; only the system directories, the
  interpreter and explicitly named paths are visible, read-only; a private size-capped /tmp;
  a clean environment; uid 65534 inside. Its options are probed one by one: an older bubblewrap
  without `--size` (< 0.7) or `--clearenv` (< 0.5) keeps the namespaces, and what is missing is
  said (`status().weakened`).
- a pids cgroup (v1 or v2, where writable) caps the number of processes: RLIMIT_NPROC does not bind
  a process whose real uid is root outside its user namespace; a memory cgroup beside it caps the
  memory of the whole sandbox, files it keeps in tmpfs included.
- rlimits for CPU, address space, file size, open files (and processes where that binds).
- a wall-clock timeout that kills the whole tree: the process group, the cgroup, and with
  bubblewrap the pid namespace (its init dies, so every process in it dies). The first process
  dies with the thread that started it (PR_SET_PDEATHSIG), and a new server kills what a killed
  one left in its cgroups.

Without bubblewrap (not installed, or user namespaces disabled) programs still run with rlimits,
the cgroups, a private working directory (mode 0700) and, where the interpreter allows it, uid
65534 without supplementary groups. That mode is weak (no filesystem or network isolation):
`require_isolation` makes the server and the trainer refuse it unless the user chose it with
LEDEX_SANDBOX=rlimits, and `status()` says which mode runs, for the CLI, the LSP and the trainer.

Nothing of the user's runs outside the sandbox: the interpreter is probed inside it, and the few
host-side processes that start a user-chosen binary get a minimal environment (`minimal_env`).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Literal

from ledex.sandbox.limits import Limits, apply

log = logging.getLogger("ledex.sandbox")

Mode = Literal["bwrap", "rlimits"]
SANDBOX_UID = 65534  # "nobody" inside the user namespace
OPT_IN = "LEDEX_SANDBOX"  # =rlimits: the user accepts running generated code with rlimits only
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
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
    #: descriptors handed to the first process, {number inside: descriptor of ours}; ours are
    #: closed once it started (a pipe's reader then sees its end when the sandbox's copies close)
    fds: Mapping[int, int] = field(default_factory=dict)


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


@dataclass(frozen=True)
class SandboxStatus:
    """Which isolation runs generated code here, and why."""

    mode: Mode
    reason: str = ""  # why not bubblewrap
    chosen: bool = False  # the rlimits mode was asked for (LEDEX_SANDBOX=rlimits): an opt-in
    weakened: tuple[str, ...] = ()  # what an older bubblewrap lacks, e.g. "no --size: ..."

    def summary(self) -> str:
        if self.mode == "bwrap":
            missing = f" (older bubblewrap: {'; '.join(self.weakened)})" if self.weakened else ""
            return f"bubblewrap{missing}"
        return f"rlimits only, no filesystem or network isolation ({self.reason})"

    def to_dict(self) -> dict[str, object]:
        return {"mode": self.mode, "reason": self.reason, "opted_in": self.chosen,
                "weakened": list(self.weakened), "summary": self.summary()}  # fmt: skip


class SandboxUnavailable(RuntimeError):
    """Bubblewrap is not usable and the user did not choose the rlimits-only mode."""


_status: SandboxStatus | None = None
# Options older bubblewraps lack, and what running without them costs; the others are in 0.3.
_OPTIONAL = {
    "--size": "no --size (bubblewrap < 0.7): /tmp and /dev/shm are capped by the memory cgroup only",
    "--clearenv": "",  # the environment is cleared by starting bwrap with an empty one anyway
    "--die-with-parent": "no --die-with-parent: the sandbox dies with ledex only through its cgroup",
    "--new-session": "",  # the sandbox gets a session of its own from ledex (start_new_session)
    "--remount-ro": "no --remount-ro: the sandbox's root is a writable tmpfs (capped by the cgroup)",
}


@cache
def mode() -> Mode:
    """bubblewrap if it works here, else rlimits only; probed once, a fallback said once."""
    global _status
    _status = _probe_status()
    if _status.mode == "rlimits":
        _warn_once(_status)
    return _status.mode


def status() -> SandboxStatus:
    mode()
    assert _status is not None
    return _status


def require_isolation(what: str) -> SandboxStatus:
    """For the server and the trainer: fail closed in the rlimits-only mode unless the user chose
    it. Raises SandboxUnavailable with how to install bubblewrap or opt in."""
    current = status()
    if current.mode == "bwrap" or current.chosen:
        return current
    raise SandboxUnavailable(
        f"{what} runs model-written code, and bubblewrap cannot isolate it here ({current.reason})."
        " Install bubblewrap (Debian/Ubuntu: `sudo apt install bubblewrap`, Fedora: `sudo dnf"
        " install bubblewrap`) and allow unprivileged user namespaces (Ubuntu 24.04: `sudo sysctl"
        " kernel.apparmor_restrict_unprivileged_userns=0`), or accept resource limits only, without"
        f" filesystem or network isolation, with {OPT_IN}=rlimits."
    )


def _probe_status() -> SandboxStatus:
    if os.environ.get(OPT_IN) == "rlimits":
        return SandboxStatus("rlimits", f"chosen with {OPT_IN}=rlimits", chosen=True)
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return SandboxStatus("rlimits", "bubblewrap (bwrap) is not installed")
    features = _bwrap_features(bwrap)
    probe = subprocess.run(
        [bwrap, *_bwrap_args(Spec(argv=["/bin/true"]), features), "/bin/true"],
        capture_output=True, text=True, env=minimal_env(), timeout=30,
    )  # fmt: skip
    if probe.returncode != 0:
        reason = f"bubblewrap cannot create namespaces here: {probe.stderr.strip()[:200]}"
        return SandboxStatus("rlimits", reason)
    weakened = tuple(_OPTIONAL[f] for f in _OPTIONAL if f not in features and _OPTIONAL[f])
    for line in weakened:
        log.warning("SANDBOX: %s", line)
    return SandboxStatus("bwrap", weakened=weakened)


@cache
def _bwrap_features(bwrap: str) -> frozenset[str]:
    """The optional options this bubblewrap knows, from its --help (every version lists them)."""
    try:
        shown = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=30,
                               env=minimal_env())  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    text = shown.stdout + shown.stderr
    return frozenset(f for f in _OPTIONAL if f"{f} " in text or f"{f}\n" in text)


def _warn_once(current: SandboxStatus) -> None:
    log.warning(
        "SANDBOX FALLBACK: %s. Untrusted code will run with resource limits only, without "
        "filesystem or network isolation. Install bubblewrap and enable user namespaces.",
        current.reason,
    )


def minimal_env(extra: Mapping[str, str] = {}) -> dict[str, str]:  # noqa: B006 - read only
    """The environment of a host-side process that runs a binary the user (or a cloned
    repository) chose: no API keys, no SSH agent, no tokens."""
    return {"PATH": _SAFE_PATH, "LANG": "C.UTF-8", "HOME": "/nonexistent", **extra}


@cache
def _interpreter_paths(python: str) -> tuple[Path, ...]:
    """The folders an interpreter needs: its prefixes and every sys.path entry (a venv's
    site-packages, editable installs). Asked of the interpreter inside the sandbox, with a minimal
    environment: a cloned repository's `.venv/bin/python` can be any script, and the host does not
    run it. The sandbox for that question sees what the files say (the interpreter's folders, its
    venv's base, the folders its .pth files name), read without running anything."""
    seed = _static_interpreter_paths(python)
    code = "import sys; print('\\n'.join([sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path]))"
    spec = Spec(argv=[python, "-I", "-c", code], mounts=[Mount(p) for p in seed],
                limits=Limits(cpu_seconds=30, memory_mb=2048, processes=16))  # fmt: skip
    result = run(spec, timeout=30, output_limit=1 << 20)
    if result.returncode != 0 or result.timed_out:
        error = (result.stderr or result.stdout).decode(errors="replace").strip()[-200:]
        raise OSError(f"cannot run the interpreter {python} in the sandbox: {error or 'no output'}")
    lines = result.stdout.decode(errors="replace").splitlines()
    paths = {Path(line).resolve() for line in lines if line.strip() and os.path.isabs(line.strip())}
    paths.update(seed)
    return tuple(_outermost(p for p in paths if p.exists() and not _is_system(p)))


def _static_interpreter_paths(python: str) -> tuple[Path, ...]:
    """What an interpreter's files say it needs, found without running it."""
    given = Path(python).absolute()
    real = given.resolve()
    found = {given.parent, real.parent}  # a venv's bin/ (its python is a symlink)
    prefixes = {given.parent.parent, real.parent.parent}
    config = given.parent.parent / "pyvenv.cfg"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in config.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                prefixes.add(Path(value.strip()).parent)
    for prefix in prefixes:
        if (prefix / "lib").is_dir() and prefix != Path(prefix.anchor):
            found.add(prefix)
            for site in [*prefix.glob("lib*/python*/site-packages"), *prefix.glob("lib*/python*/dist-packages")]:
                found.update(_pth_folders(site))
    return tuple(p for p in found if p.exists() and not _is_system(p) and p != Path(p.anchor))


def _pth_folders(site: Path) -> set[Path]:
    """The folders a site-packages' .pth files add to sys.path (their `import` lines run only
    inside the sandbox)."""
    folders = set()
    for pth in site.glob("*.pth"):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            for line in pth.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith(("#", "import ", "import\t")):
                    folder = Path(os.path.join(site, line)).resolve()
                    if folder.is_dir():
                        folders.add(folder)
    return folders


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


def _bwrap_args(spec: Spec, features: frozenset[str] | None = None) -> list[str]:
    if features is None:
        features = _bwrap_features(shutil.which("bwrap") or "bwrap")
    args = ["--unshare-all", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--hostname", "ledex-sandbox"]  # fmt: skip
    args += [flag for flag in ("--die-with-parent", "--new-session", "--clearenv") if flag in features]
    for directory in _SYSTEM_DIRS:
        if os.path.islink(directory):
            args += ["--symlink", os.readlink(directory), directory]
        elif os.path.isdir(directory):
            args += ["--ro-bind", directory, directory]
    for path in _ETC_FILES:
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    size = ["--size", str(spec.limits.tmp_mb << 20)] if "--size" in features else []
    args += [*size, "--tmpfs", "/tmp", *size, "--tmpfs", "/dev/shm"]
    for mount in spec.mounts:
        args += ["--bind" if mount.writable else "--ro-bind", str(mount.source), str(mount.target)]
    # bwrap's root and /dev are unbounded tmpfs (RAM) the sandbox could otherwise fill with files
    # (each capped by RLIMIT_FSIZE, their number not); only /tmp, /dev/shm and writable mounts stay
    # writable. After all mounts: their mount points are created in the root first.
    if "--remount-ro" in features:
        args += ["--remount-ro", "/dev", "--remount-ro", "/"]
    env = {"PATH": _SAFE_PATH, "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
           **spec.env}  # fmt: skip
    for key, value in env.items():
        args += ["--setenv", key, value]
    args += ["--chdir", str(spec.workdir or "/tmp")]
    return args


def command(spec: Spec) -> list[str]:
    if mode() == "bwrap":
        return [shutil.which("bwrap") or "bwrap", *_bwrap_args(spec), "--", *spec.argv]
    return list(spec.argv)


# --- running -------------------------------------------------------------------------------------

_MB = 1 << 20


class _Cgroup:
    """A pids cgroup and a memory cgroup holding one sandbox, where this process may create them
    (root, delegation): v2 has both in one folder, v1 one folder per controller."""

    def __init__(self, limits: Limits) -> None:
        _reap_leftovers()
        self.paths: list[Path] = []
        name = f"ledex-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        settings = {"pids": {"pids.max": str(limits.processes + 8)},  # + bwrap and its init
                    "memory": _memory_settings(limits.cgroup_memory_mb * _MB)}  # fmt: skip
        for parent, controllers in _cgroup_parents():
            candidate = parent / name
            try:
                candidate.mkdir()
                for controller in controllers:
                    for key, value in settings[controller].items():
                        try:
                            if (candidate / key).exists():
                                (candidate / key).write_text(value)
                        except OSError:
                            if controller == "pids":  # without its cap the cgroup is no use
                                raise
                            log.debug("cannot set %s in %s", key, candidate)  # e.g. no swap
            except OSError:
                with _suppress():
                    candidate.rmdir()
                continue
            self.paths.append(candidate)

    @property
    def path(self) -> Path | None:  # the first one: where a warm worker finds its processes
        return self.paths[0] if self.paths else None

    def enter(self) -> None:
        """Called in the child between fork and exec."""
        for path in self.paths:
            (path / "cgroup.procs").write_text(str(os.getpid()))

    def kill_all(self) -> None:
        for path in self.paths:
            _kill_cgroup(path)


def _memory_settings(cap: int) -> dict[str, str]:
    # v2, then v1 (memsw bounds memory + swap; it must be set after the memory limit)
    return {"memory.max": str(cap), "memory.swap.max": "0", "memory.limit_in_bytes": str(cap),
            "memory.memsw.limit_in_bytes": str(cap)}  # fmt: skip


def _kill_cgroup(path: Path) -> None:
    for _ in range(50):
        pids = _read_pids(path / "cgroup.procs")
        if not pids:
            break
        for pid in pids:
            with _suppress():
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    with _suppress():
        path.rmdir()


@cache
def _cgroup_parents() -> tuple[tuple[Path, tuple[str, ...]], ...]:
    """(folder to create a sandbox's cgroup in, the controllers it has), writable ones only."""
    parents: list[tuple[Path, tuple[str, ...]]] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return ()
    for line in lines:
        number, controllers, path = line.split(":", 2)
        if number == "0":  # v2: the controllers our own cgroup offers its children
            folder = Path("/sys/fs/cgroup") / path.lstrip("/")
            with _suppress():
                offered = (folder / "cgroup.controllers").read_text().split()
                wanted = tuple(c for c in ("pids", "memory") if c in offered)
                if wanted:
                    parents.append((folder, wanted))
        else:
            for controller in ("pids", "memory"):
                if controller in controllers.split(","):
                    folder = Path("/sys/fs/cgroup") / controller / path.lstrip("/")
                    if (folder / "cgroup.procs").exists():
                        parents.append((folder, (controller,)))
    return tuple((folder, wanted) for folder, wanted in parents if os.access(folder, os.W_OK))


@cache
def _reap_leftovers() -> None:
    """Kill what a previous ledex process (a server that was killed) left in its cgroups, and
    remove its private working folders; once per process, before the first sandbox starts."""
    for parent, _ in _cgroup_parents():
        for path in parent.glob("ledex-*-*"):
            owner = path.name.split("-")[1]
            if owner.isdigit() and not _alive(int(owner)):
                _kill_cgroup(path)
    for path in Path(tempfile.gettempdir()).glob("ledex-sandbox-*-*"):
        owner = path.name.split("-")[2]
        if owner.isdigit() and not _alive(int(owner)) and _ours(path):
            remove_tree(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ours(path: Path) -> bool:
    with _suppress():
        info = os.lstat(path)
        return stat.S_ISDIR(info.st_mode) and info.st_uid in (os.getuid(), SANDBOX_UID)
    return False


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove a folder that sandboxed code could write to, never following a symlink (the code,
    or another local user, cannot redirect the deletion), read-only folders included."""
    try:
        parent = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        _remove_at(parent, os.path.basename(os.path.abspath(path)))
    finally:
        os.close(parent)


def _remove_at(parent: int, name: str) -> None:
    try:
        folder = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    except OSError:  # not a folder (a file, a symlink): unlink the entry itself
        with _suppress():
            os.unlink(name, dir_fd=parent)
        return
    try:
        with _suppress():
            os.fchmod(folder, 0o700)  # code may have made its folders read-only
        with os.scandir(folder) as entries:
            names = [entry.name for entry in entries]
        for entry in names:
            _remove_at(folder, entry)
    except OSError:
        pass
    finally:
        os.close(folder)
    with _suppress():
        os.rmdir(name, dir_fd=parent)


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


_PR_SET_PDEATHSIG = 1
_prctl = None


def _bind_prctl():
    """libc's prctl, bound before any fork (a child between fork and exec only calls it)."""
    global _prctl
    if _prctl is None:
        with contextlib.suppress(OSError, AttributeError):
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
    return _prctl


def _die_with_parent(parent: int) -> None:
    """In the child: SIGKILL when the thread that started it ends (a killed server included)."""
    prctl = _prctl
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(70)


def _drop_to_nobody() -> None:
    os.setgroups([])  # supplementary groups (docker, adm, ...) would stay with a new uid
    os.setgid(SANDBOX_UID)
    os.setuid(SANDBOX_UID)


class Sandboxed:
    """A running sandbox: a Popen plus everything needed to kill all of it."""

    def __init__(self, spec: Spec, *, stdin: int | None = subprocess.PIPE) -> None:
        self.cgroup = _Cgroup(spec.limits)
        limits = _effective_limits(spec.limits)
        weak = mode() == "rlimits"
        drop_uid = weak and os.getuid() == 0 and _nobody_can_run(spec.argv[0])
        parent = os.getpid()
        _bind_prctl()
        fds = dict(spec.fds)

        def prepare_child() -> None:  # runs in the child after fork, before exec
            _die_with_parent(parent)
            self.cgroup.enter()
            # out of the way first: one of ours may hold a number another one is going to
            moved = {inside: fcntl.fcntl(ours, fcntl.F_DUPFD, 512) for inside, ours in fds.items()}
            for inside, temporary in moved.items():
                os.dup2(temporary, inside)  # inheritable: the first process gets it, as numbered
                os.close(temporary)
            apply(limits, cpu=spec.limit_cpu)
            if drop_uid:
                _drop_to_nobody()

        workdir = None
        if weak:  # private: 0700, and the sandbox's own uid owns it when it runs as nobody
            workdir = tempfile.mkdtemp(prefix=f"ledex-sandbox-{os.getpid()}-")
            if drop_uid:
                os.chown(workdir, SANDBOX_UID, SANDBOX_UID)
        env = {"PATH": _SAFE_PATH, "HOME": workdir or "/tmp", "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", **spec.env}  # fmt: skip
        self._workdir = workdir
        try:
            self.process = subprocess.Popen(
                command(spec),
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=prepare_child,
                pass_fds=tuple(fds),
                env=env if weak else {},
                cwd=str(spec.workdir) if weak and spec.workdir else workdir,
            )
        except BaseException:
            self.cgroup.kill_all()
            if workdir:
                remove_tree(workdir)
            raise
        finally:
            for ours in fds.values():
                with _suppress():
                    os.close(ours)

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
            remove_tree(self._workdir)


def _limited_nobody() -> None:
    apply(Limits(processes=1 << 16))
    _drop_to_nobody()


@cache
def _nobody_can_run(program: str) -> bool:
    """In the fallback, drop to uid 65534 only if that uid can still run the interpreter (asked
    as that uid, with rlimits and a minimal environment, like the sandbox itself)."""
    try:
        result = subprocess.run(
            [program, "-I", "-c", "pass"], capture_output=True, timeout=30, env=minimal_env(), cwd="/",
            preexec_fn=_limited_nobody,
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
    each (the start and the end). `spec.fds` are closed here in every case. Setting `cancel`
    kills the whole sandbox within about 0.1 s (a stale test run must not keep the cores busy
    while the next one waits).

    When the first process exits, whatever it left running (daemons) is killed too.
    """
    if cancel is not None and cancel.is_set():
        for ours in spec.fds.values():  # handed over: closed whether or not the sandbox starts
            with _suppress():
                os.close(ours)
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
    neither fill our memory nor block on a full pipe): the start, and the last TAIL bytes, where
    pytest's summary is."""

    TAIL = 64 << 10

    def __init__(self, stream, limit: int, truncated: list[bool]) -> None:
        super().__init__(daemon=True)
        self.stream, self.limit, self.truncated = stream, limit, truncated
        self.head_limit = max(limit - self.TAIL, limit // 2)
        self.data = bytearray()
        self.tail = bytearray()

    def run(self) -> None:
        while chunk := self.stream.read1(65536):
            room = self.head_limit - len(self.data)
            if room > 0:
                self.data += chunk[:room]
            if len(chunk) > room:
                self.truncated[0] = True
                self.tail += chunk[max(room, 0) :]
                del self.tail[: max(0, len(self.tail) - (self.limit - self.head_limit))]

    def result(self) -> bytes:
        self.join()
        if not self.tail:
            return bytes(self.data)
        return bytes(self.data) + b"\n[... output cut ...]\n" + bytes(self.tail)


class ChannelReader(threading.Thread):
    """Reads the host's end of a pipe the sandbox writes to, keeping at most `limit` bytes
    (`overflowed` past that: the sandbox cannot make the host hold more). `stop()` ends it even
    where something the sandbox left keeps the pipe open."""

    def __init__(self, fd: int, limit: int) -> None:
        super().__init__(daemon=True)
        self.fd, self.limit = fd, limit
        self.data = bytearray()
        self.overflowed = False
        self._stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopped.is_set():
                ready, _, _ = select.select([self.fd], [], [], 0.1)
                if not ready:
                    continue
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    return
                room = self.limit - len(self.data)
                self.data += chunk[: max(room, 0)]
                if len(chunk) > room:
                    self.overflowed = True
        finally:
            os.close(self.fd)

    def result(self, wait: float = 2.0) -> bytes:
        """What arrived, once the pipe ended (or after `wait` seconds more)."""
        self.join(wait)
        self._stopped.set()
        self.join()
        return bytes(self.data)


def package_mount() -> Mount:
    """This folder, read-only, so the in-sandbox worker can import `limits` (stdlib-only)."""
    return Mount(_PACKAGE_DIR, Path("/opt/ledex-sandbox"))
