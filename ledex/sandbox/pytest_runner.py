"""Running a user's own pytest tests in the sandbox, on a shadow of their project.

`run_pytest` runs the user's interpreter and pytest configuration (rootdir, ini files, conftest.py,
the plugins installed in their environment) with `overlay` files (candidate fixes) standing in for
their originals, and returns per-node-id outcomes with messages and traceback frames whose paths
are the project's real paths. The user's directory is never written by ledex, and under
bubblewrap nothing in the sandbox can write it either.

The shadow workspace, per isolation mode:
- bubblewrap: nothing is copied. The project is bound read-only at its own absolute path (so
  tracebacks show real paths); each overlay file, written to a private staging folder, is bound
  read-only over its original (bwrap can mount a file over a file). A new file has no original to
  mount over, and a read-only directory cannot get one: the directory that would hold it is
  replaced by a staged copy of its listing (empty placeholders, symlinks) with every original entry
  bound back over its placeholder and the new files added. Caches never touch the project: pytest's
  cache goes to a private folder (`-o cache_dir`) and bytecode is not written.
- rlimits fallback (no bubblewrap, so no mounts): a cached shadow copy of the project in a per-user
  cache, one per project path (plus a few slots so parallel runs do not collide), synced
  incrementally by size and mtime so only changed files are copied; the overlay files are written
  into the copy, and every path in the results is mapped back from the copy to the project. Without
  filesystem isolation, code running here *could* still write the real project by its absolute
  path; the fallback is announced loudly by `isolation.mode()`.

Results come from our pytest plugin (`pytest_plugin.py`) as JSON lines on a private pipe (bounded
on the host, tagged with a per-run key), never from stdout, written as each report happens so a run
killed by its timeout keeps what finished.

The verdict is not taken from that one channel: code under test runs in pytest's process and could
rewrite what the plugin says. A run is "ok" only when independent signals agree: the process's real
exit status, the plugin's finish record, pytest's own summary line ("1 failed, 2 passed in 0.1s")
and the per-test records; any disagreement is status "tampered" (no outcomes are believed). Before
anything runs, overlay files that add constructs reaching for the verifier (pytest internals, the
plugin, frames, `gc`, `ctypes`, `os._exit`...) are refused: status "refused", the reason in the
message (see screening.py).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ledex.sandbox import isolation, screening
from ledex.sandbox.isolation import Mount, Spec
from ledex.sandbox.limits import Limits

log = logging.getLogger("ledex.sandbox")

Status = Literal["ok", "timeout", "error", "crashed", "not_found", "cancelled", "refused", "tampered"]
Outcome = Literal[
    "passed", "failed", "error", "skipped", "xfailed", "xpassed", "timeout", "crashed"
]
FAILING: frozenset[str] = frozenset({"failed", "error", "timeout", "crashed"})

PLUGIN_MODULE = "ledex_pytest_plugin"  # a name no user module will have
_PLUGIN_SOURCE = Path(__file__).resolve().parent / "pytest_plugin.py"
_PLUGIN_DIR_INSIDE = Path("/opt/ledex-pytest")
_CHANNEL_ENV = "LEDEX_PYTEST_CHANNEL"
_TRACE_ENV = "LEDEX_PYTEST_TRACE"
_RECORDS_FD, _KEY_FD = 3, 4  # where the plugin finds the channel (pytest_plugin.py)
_RECORDS_LIMIT = 64 << 20  # bytes of records the host keeps; more ends the run as tampered
_TAIL_CHARS = 8_000
# Not part of a shadow copy: version control, caches, virtual environments (the interpreter runs
# from its real path).
_NOT_SHADOWED = frozenset({".git", ".hg", ".svn", "__pycache__", ".pytest_cache", ".mypy_cache",
                           ".ruff_cache", ".tox", ".nox"})  # fmt: skip
_SHADOW_SLOTS = 4


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    path: str  # absolute, the project's real path for project files
    line: int  # 1-based
    function: str = ""

    def within(self, directory: str | os.PathLike[str]) -> bool:
        return _is_within(Path(self.path), Path(os.path.abspath(directory)))


@dataclass(frozen=True)
class Call:
    """A call into the project's own code during a traced test (`run_pytest(trace_calls=True)`):
    what the function was given and what it gave back. Reprs are cut short; the code under test
    wrote them, so they are shown to a model, never believed."""

    frame: Frame  # the function, and its file and line
    depth: int  # project calls still running around it
    arguments: str  # "price=24.0, percent=0"
    result: str | None  # repr of the value returned; None when it raised, or for a generator
    raised: str | None = None  # the exception's type name


@dataclass
class TestOutcome:
    __test__ = False  # not a pytest test class

    node_id: str
    outcome: Outcome
    when: str = "call"  # the phase that decided the outcome: setup, call or teardown
    duration: float = 0.0  # seconds, all phases
    message: str = ""  # one line: `assert 5 == 4`, `ZeroDivisionError: division by zero`
    longrepr: str = ""  # pytest's failure text, trimmed to its tail
    frames: list[Frame] = field(default_factory=list)  # innermost last, pytest's frames left out
    location: Frame | None = None  # where the test function is defined
    calls: list[Call] = field(default_factory=list)  # only in a traced run: see Call

    @property
    def failed(self) -> bool:
        return self.outcome in FAILING

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    def frames_within(self, directory: str | os.PathLike[str]) -> list[Frame]:
        """The frames in a folder's files, e.g. the user's code (not site-packages in it)."""
        return [f for f in self.frames if f.within(directory) and "site-packages" not in f.path]


@dataclass
class CollectionError:
    node_id: str  # usually the file, relative to the rootdir: `tests/test_x.py`
    message: str
    longrepr: str = ""
    frames: list[Frame] = field(default_factory=list)

    @property
    def location(self) -> Frame | None:
        """The innermost frame: for a SyntaxError, the offending line."""
        return self.frames[-1] if self.frames else None


@dataclass
class PytestRun:
    status: Status  # ok: pytest ran to the end (test failures and collection errors included)
    outcomes: dict[str, TestOutcome] = field(default_factory=dict)
    collection_errors: list[CollectionError] = field(default_factory=list)
    exit_code: int | None = None  # pytest's exit status (or the process's where pytest had none)
    message: str = ""  # why, when status is not "ok"
    stdout: str = ""  # tails
    stderr: str = ""
    duration: float = 0.0
    collected: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # requested node ids pytest could not find
    rootdir: str | None = None
    python: str = ""
    isolation: str = ""  # "bwrap" or "rlimits"

    @property
    def failed(self) -> list[TestOutcome]:
        return [o for o in self.outcomes.values() if o.failed]

    @property
    def passed(self) -> list[TestOutcome]:
        return [o for o in self.outcomes.values() if o.passed]

    def outcomes_for(self, node_id: str) -> list[TestOutcome]:
        """The outcomes a requested id stands for: itself, or its parametrizations, or the tests
        of a file or class."""
        if node_id in self.outcomes:  # a test's own id selects nothing else: no scan (big suites)
            return [self.outcomes[node_id]]
        return [o for key, o in self.outcomes.items() if _selects(node_id, key)]

    def passes(self, node_ids: Sequence[str] | None = None) -> bool:
        """Did the run complete with every given test run and passing (all tests if None: none
        failing)? A named test that skipped or xfailed did not pass: generated code can call
        `pytest.skip()` or `pytest.xfail()` from the function under test, and a test that was
        failing (or passing) and now skips is not fixed (or is broken)."""
        if self.status != "ok" or self.collection_errors or self.missing:
            return False
        if node_ids is None:
            return not self.failed
        return all((found := self.outcomes_for(node)) and all(o.passed for o in found)
                   for node in node_ids)  # fmt: skip


def node_file(node_id: str) -> str:
    """The test file a node id is in: `tests/test_x.py` of `tests/test_x.py::TestX::test_y[1]`."""
    return node_id.split("::", 1)[0]


def _selects(requested: str, node_id: str) -> bool:
    return node_id == requested or node_id.startswith((requested + "::", requested + "["))


# --- the user's interpreter ----------------------------------------------------------------------


def resolve_python(project_dir: str | os.PathLike[str], python: str | None = None) -> str:
    """The interpreter to run a project's tests with: `python` if given (a path or a name on PATH),
    else the project's `.venv`, else `python3` on PATH. Returned as an absolute path where one is
    found (else unchanged, and run_pytest reports it missing)."""
    if python:
        found = shutil.which(python) if os.sep not in python else python
        return _launched(os.path.abspath(found)) if found else python
    for candidate in (".venv/bin/python", ".venv/bin/python3"):
        path = Path(os.path.abspath(project_dir)) / candidate
        if os.access(path, os.X_OK):
            return str(path)  # the repository's own: never run outside the sandbox
    found = shutil.which("python3")
    return _launched(found) if found else sys.executable


def _launched(python: str) -> str:
    """The interpreter a launcher script starts (pyenv's shims are shell scripts that need pyenv's
    own folders, which the sandbox does not show). Only for an interpreter the user chose or has on
    PATH, never a project's `.venv`: it is asked on the host, with a minimal environment."""
    try:
        with open(python, "rb") as handle:
            if handle.read(2) != b"#!":
                return python  # a binary, or a symlink to one
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME") or k.startswith("PYENV")}
        done = subprocess.run([python, "-c", "import sys; print(sys.executable)"], env=env,
                              capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return python
    real = done.stdout.strip().splitlines()[-1] if done.returncode == 0 and done.stdout.strip() else ""
    return real if os.path.isabs(real) and os.access(real, os.X_OK) else python


@dataclass(frozen=True)
class _Interpreter:
    python: str
    pytest_version: str
    sys_path: tuple[str, ...]
    editable_sources: tuple[str, ...]  # folders setuptools' editable finders map imports to


_PROBE = """
import json, sys
try:
    import pytest
    version, error = pytest.__version__, None
except BaseException as e:
    version, error = None, f"{type(e).__name__}: {e}"
print(json.dumps({"pytest": version, "error": error, "sys_path": sys.path, "executable": sys.executable}))
"""
_interpreters: dict[str, _Interpreter] = {}


class _BadInput(Exception):
    """Input we refuse: reported as status "error" with this message."""


def _probe(python: str) -> _Interpreter:
    """What the interpreter can import; cached once pytest is found (a missing pytest may be
    installed later)."""
    if python in _interpreters:
        return _interpreters[python]
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise _BadInput(f"the Python interpreter {python} does not exist or is not executable")
    try:  # in the sandbox: a cloned repository's .venv/bin/python can be any program
        spec = Spec([python, "-I", "-c", _PROBE], isolation.interpreter_mounts(python),
                    limits=Limits(cpu_seconds=60, memory_mb=4096, processes=16))  # fmt: skip
        done = isolation.run(spec, timeout=60, output_limit=4 << 20)
        info = json.loads(done.stdout.decode(errors="replace").strip().splitlines()[-1])
        if not isinstance(info, dict) or not isinstance(info.get("sys_path"), list):
            raise ValueError(f"unexpected answer {info!r}"[:200])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as error:
        raise _BadInput(f"cannot run the Python interpreter {python}: {error}") from None
    if not info.get("pytest"):
        raise _BadInput(
            f"pytest is not installed for the interpreter {python} ({info.get('error')}); install"
            f" it with `{python} -m pip install pytest` or choose another interpreter"
        )
    sys_path = tuple(p for p in info["sys_path"] if isinstance(p, str) and p)
    # A launcher (pyenv's shims are shell scripts) cannot run inside the sandbox: use the real
    # interpreter it starts. A venv's python stays the venv's (sys.executable keeps it).
    executable = info.get("executable") if isinstance(info.get("executable"), str) else None
    executable = executable or python
    interpreter = _Interpreter(executable, info["pytest"], sys_path, _editable_sources(sys_path))
    _interpreters[python] = interpreter
    return interpreter


_EDITABLE_TABLE = re.compile(r"^(MAPPING|NAMESPACES)\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)


def _editable_sources(sys_path: Sequence[str]) -> tuple[str, ...]:
    """setuptools' editable installs import through a finder whose source folders are not on
    sys.path; read them from the finder modules so they can be mounted (and shadowed)."""
    found: list[str] = []
    for entry in sys_path:
        if not os.path.isdir(entry):
            continue
        for finder in Path(entry).glob("__editable__*finder.py"):
            with contextlib.suppress(OSError, ValueError, SyntaxError):
                for match in _EDITABLE_TABLE.finditer(finder.read_text()):
                    table = ast.literal_eval(match[2])
                    for value in table.values():
                        found.extend(value if isinstance(value, list) else [value])
    return tuple(dict.fromkeys(p for p in found if isinstance(p, str) and os.path.isdir(p)))


# --- validating a request ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    project: Path
    node_ids: tuple[str, ...]
    overlay: dict[str, str]  # relative posix path -> text
    python: str
    timeout: float
    pytest_args: tuple[str, ...]
    limits: Limits
    env: dict[str, str]


def _default_limits(timeout: float) -> Limits:
    # A user's suite is bigger than a benchmark program; the wall-clock timeout is the real bound.
    return Limits(cpu_seconds=max(10, math.ceil(timeout) + 1), memory_mb=8192, processes=256,
                  file_size_mb=512, open_files=1024, tmp_mb=1024)  # fmt: skip


def _request(project_dir, node_ids, overlay, python, timeout, pytest_args, limits, env) -> _Request:
    if not isinstance(project_dir, (str, os.PathLike)):
        raise _BadInput(f"the project folder must be a path, not {project_dir!r}")
    project = Path(os.path.abspath(os.fspath(project_dir)))
    if not project.is_dir():
        raise _BadInput(f"the project folder {project} does not exist")
    if project == Path(project.anchor):  # the whole file system, secrets included
        raise _BadInput("the project folder cannot be the file system root")
    if not isinstance(overlay, Mapping):
        raise _BadInput(f"the overlay must map paths to text, not {type(overlay).__name__}")
    if not isinstance(timeout, (int, float)) or not timeout > 0 or math.isinf(timeout):
        raise _BadInput(f"the timeout must be a positive number of seconds, not {timeout!r}")
    if isinstance(node_ids, str):
        node_ids = [node_ids]
    return _Request(
        project=project,
        node_ids=tuple(_node_id(project, node) for node in node_ids),
        overlay={
            _overlay_path(project, path): _overlay_text(path, text)
            for path, text in overlay.items()
        },
        python=resolve_python(project, python),
        timeout=float(timeout),
        pytest_args=tuple(_string(arg, "pytest argument") for arg in pytest_args),
        limits=limits or _default_limits(timeout),
        env={
            _string(k, "environment name"): _string(v, "environment value") for k, v in env.items()
        },
    )


def _string(value: object, what: str) -> str:
    if not isinstance(value, str) or "\0" in value:
        raise _BadInput(f"a {what} must be a string without NUL characters, not {value!r}")
    return value


def _node_id(project: Path, node: object) -> str:
    node = _string(node, "node id")
    if not node.strip() or node.startswith("-"):  # an option would be a way to inject arguments
        raise _BadInput(f"not a test node id: {node!r}")
    path, sep, rest = node.partition("::")
    if os.path.isabs(path):
        if not _is_within(Path(os.path.abspath(path)), project):
            raise _BadInput(f"the test {node} is outside the project {project}")
        path = os.path.relpath(os.path.abspath(path), project)
    return path + sep + rest


def _overlay_path(project: Path, path: object) -> str:
    path = _string(path, "overlay path")
    absolute = Path(os.path.abspath(project / path))
    if not path.strip() or absolute == project or not _is_within(absolute, project):
        raise _BadInput(f"the overlay path {path!r} is not a file inside the project {project}")
    if absolute.is_dir():
        raise _BadInput(f"the overlay path {path!r} is a folder in the project")
    if any(p.exists() and not p.is_dir() for p in absolute.parents if _is_within(p, project)):
        raise _BadInput(f"the overlay path {path!r} goes through a file of the project")
    if absolute.is_symlink() and not _is_within(absolute.resolve(), project.resolve()):
        raise _BadInput(f"the overlay path {path!r} is a symlink out of the project")
    return absolute.relative_to(project).as_posix()


def _overlay_text(path: object, text: object) -> str:
    if not isinstance(text, str):
        raise _BadInput(f"the overlay for {path!r} must be text, not {type(text).__name__}")
    return text


def _is_within(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


# --- the shadow workspace ------------------------------------------------------------------------


@dataclass
class _Workspace:
    root: Path  # where pytest runs and what its paths start with
    mounts: list[Mount]
    pythonpath: list[str]  # folders to import first: our plugin's, the shadow's source folders
    cache_dir: str  # pytest's cache, private to this run, in the sandbox's own writable folder


@contextlib.contextmanager
def _workspace(request: _Request, interpreter: _Interpreter) -> Iterator[_Workspace]:
    run_dir = Path(tempfile.mkdtemp(prefix="ledex-pytest-"))
    try:
        if os.getuid() == 0:  # the fallback may drop to uid 65534, which must still read (only)
            os.chmod(run_dir, 0o755)
        if isolation.mode() == "bwrap":
            yield _bwrap_workspace(request, interpreter, run_dir)
        else:
            with _shadow_slot(request.project) as shadow:
                yield _shadow_workspace(request, interpreter, shadow, run_dir)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _bwrap_workspace(request: _Request, interpreter: _Interpreter, run_dir: Path) -> _Workspace:
    project = request.project
    outside = [Path(p) for p in interpreter.editable_sources if not _is_within(Path(p), project)]
    mounts = [
        *isolation.interpreter_mounts(request.python),
        *(Mount(path) for path in outside),
        Mount(_PLUGIN_SOURCE, _PLUGIN_DIR_INSIDE / f"{PLUGIN_MODULE}.py"),
        Mount(project),  # after the interpreter's folders: the project wins where they nest
        *_overlay_mounts(project, request.overlay, run_dir / "staged"),
    ]
    # pytest's cache in the sandbox's private /tmp: a tmpfs that vanishes with it
    return _Workspace(project, mounts, [str(_PLUGIN_DIR_INSIDE)], "/tmp/.ledex-pytest-cache")


def _overlay_mounts(project: Path, overlay: Mapping[str, str], staging: Path) -> list[Mount]:
    """Mounts that make `overlay` appear in the read-only project (see the module docstring)."""
    layers: dict[Path, Path] = {}  # project folder -> staged stand-in with its listing
    replaced: list[Mount] = []
    for relative, text in overlay.items():
        target = project / relative
        if os.path.lexists(target):
            staged = staging / "files" / relative
            _write(staged, text)
            replaced.append(Mount(staged, target.resolve() if target.is_symlink() else target))
            continue
        holder = _deepest_existing(target.parent)
        if holder not in layers:
            layers[holder] = _listing_layer(holder, staging / "layers" / str(len(layers)))
        _write(layers[holder] / target.relative_to(holder), text)
    mounts: list[Mount] = []
    for folder in sorted(layers, key=lambda p: len(p.parts)):  # outer folders first
        mounts.append(Mount(layers[folder], folder))
        mounts += [Mount(Path(e.path)) for e in os.scandir(folder) if not e.is_symlink()]
    return mounts + replaced


def _deepest_existing(path: Path) -> Path:
    while not path.is_dir():
        path = path.parent
    return path


def _listing_layer(folder: Path, layer: Path) -> Path:
    """A folder with a placeholder (empty file or folder, or the same symlink) per entry of
    `folder`: mount points for binding each original entry back."""
    layer.mkdir(parents=True)
    for entry in os.scandir(folder):
        placeholder = layer / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), placeholder)
        elif entry.is_dir():
            placeholder.mkdir()
        else:
            placeholder.touch()
    return layer


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # newline="": the text exactly as given, no newline translation
    with open(path, "w", encoding="utf-8", newline="") as file:
        file.write(text)


def _shadow_workspace(request: _Request, interpreter: _Interpreter, shadow: Path,
                      run_dir: Path) -> _Workspace:  # fmt: skip
    # A file the previous run wrote can keep its size and mtime (os.utime), not its ctime: every
    # file changed since the last sync was made (ctime at or after the marker's mtime) is copied
    # again, so a candidate cannot leave a weakened test behind for the next one.
    marker = shadow.parent / f"{shadow.name}.synced"
    try:
        since = marker.stat().st_mtime_ns
    except OSError:
        since = 0  # never synced (or the marker was lost): nothing in the copy is trusted
    _sync_tree(request.project, shadow, since)
    for relative, text in request.overlay.items():
        target = shadow / relative
        if target.is_symlink():
            target.unlink()  # write the candidate, not through the link into the user's file
        _write(target, text)
    marker.touch()
    plugin_dir = run_dir / "plugin"
    plugin_dir.mkdir()
    shutil.copyfile(_PLUGIN_SOURCE, plugin_dir / f"{PLUGIN_MODULE}.py")
    os.chmod(plugin_dir, 0o755)
    # $HOME is the sandbox's private working folder (isolation.Sandboxed); pytest expands it
    return _Workspace(shadow, [], [*_shadowed_sources(request.project, interpreter, shadow),
                                   str(plugin_dir)], "$HOME/.ledex-pytest-cache")  # fmt: skip


def _shadowed_sources(project: Path, interpreter: _Interpreter, shadow: Path) -> list[str]:
    """The shadow's twins of import folders inside the project (an editable install's `src/`),
    put first on PYTHONPATH so imports find the overlaid copy, not the user's file."""
    twins = []
    for entry in interpreter.sys_path:
        if os.path.isabs(entry) and _is_within(Path(entry), project):
            twins.append(shadow / Path(entry).relative_to(project))
    for source in interpreter.editable_sources:  # a package folder: its parent is the import root
        if _is_within(Path(source).parent, project):
            twins.append(shadow / Path(source).parent.relative_to(project))
    return [str(p) for p in dict.fromkeys(twins) if p.is_dir()]  # not a venv's: never shadowed


def _shadow_base() -> Path:
    if os.environ.get("LEDEX_SHADOW_DIR"):
        return Path(os.environ["LEDEX_SHADOW_DIR"])
    if os.getuid() == 0:  # root's home is private; a sandbox dropped to uid 65534 must read this
        return Path("/var/tmp/ledex-shadows-0")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(cache) / "ledex" / "shadows"


def _own_folder(path: Path) -> None:
    """Create `path` (mode 0711: others may pass through, not list) or make sure it is ours: a
    folder, not a symlink, owned by us and writable by nobody else. A predictable path (root's
    shadows are in /var/tmp) must not be one another local user prepared."""
    with contextlib.suppress(FileExistsError):
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(path, 0o711)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise _BadInput(
            f"{path} is not a folder of this user's that only it can write (owner uid"
            f" {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o}); remove it, or set"
            " LEDEX_SHADOW_DIR to a private folder"
        )


@contextlib.contextmanager
def _shadow_slot(project: Path) -> Iterator[Path]:
    """A shadow copy of `project` that no other run uses meanwhile (a file lock per slot)."""
    key = hashlib.sha256(str(project).encode()).hexdigest()[:16]
    _own_folder(_shadow_base())
    home = _shadow_base() / f"{project.name}-{key}"
    _own_folder(home)
    lock, slot = _free_slot(home)
    try:
        shadow = home / str(slot)
        shadow.mkdir(exist_ok=True)
        yield shadow
    finally:
        lock.close()  # releases the lock


def _free_slot(home: Path):
    """The first unlocked slot, locked; if all are busy, wait for slot 0."""
    for slot in range(_SHADOW_SLOTS):
        lock = open(home / f"{slot}.lock", "w")  # noqa: SIM115 - closed by the caller
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock, slot
        except BlockingIOError:
            lock.close()
    lock = open(home / "0.lock", "w")  # noqa: SIM115
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock, 0


def _sync_tree(source: Path, copy: Path, since: int = 0) -> None:
    """Make `copy` mirror `source` (minus _NOT_SHADOWED and virtual environments), copying only
    files whose size or mtime differ or that changed in `copy` at or after `since` (ns, the last
    sync); anything else in `copy` (a test's leftovers, a previous overlay) is removed."""
    wanted = {entry.name: entry for entry in _scandir(source) if _shadowed(entry)}
    for existing in _scandir(copy):
        entry = wanted.get(existing.name)
        if entry is None or _kind(entry) != _kind(existing):
            _remove(Path(existing.path))
    for name, entry in wanted.items():
        target = copy / name
        kind = _kind(entry)
        if kind == "link":
            if not target.is_symlink() or os.readlink(target) != os.readlink(entry.path):
                _remove(target)
                os.symlink(os.readlink(entry.path), target)
        elif kind == "dir":
            target.mkdir(exist_ok=True)
            _sync_tree(Path(entry.path), target, since)
        elif kind == "file" and not _same_file(entry, target, since):
            _remove(target)
            shutil.copy2(entry.path, target)


def _shadowed(entry: os.DirEntry) -> bool:
    if entry.name in _NOT_SHADOWED:
        return False
    is_venv = entry.is_dir(follow_symlinks=False) and os.path.exists(
        os.path.join(entry.path, "pyvenv.cfg")
    )
    return not is_venv


def _scandir(path: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as entries:
            return list(entries)
    except OSError:
        return []


def _kind(entry: os.DirEntry) -> str:
    if entry.is_symlink():
        return "link"
    if entry.is_dir(follow_symlinks=False):
        return "dir"
    return "file" if entry.is_file(follow_symlinks=False) else "other"


def _same_file(entry: os.DirEntry, target: Path, since: int) -> bool:
    try:
        ours, theirs = entry.stat(follow_symlinks=False), target.lstat()
    except OSError:
        return False
    return (ours.st_size == theirs.st_size and ours.st_mtime_ns == theirs.st_mtime_ns
            and theirs.st_ctime_ns < since)  # fmt: skip


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# --- running -------------------------------------------------------------------------------------


def run_pytest(
    project_dir: str | os.PathLike[str],
    node_ids: Sequence[str] = (),
    *,
    overlay: Mapping[str, str] = {},  # noqa: B006 - read only
    python: str | None = None,
    timeout: float = 60.0,
    pytest_args: Sequence[str] = (),
    limits: Limits | None = None,
    env: Mapping[str, str] = {},  # noqa: B006 - read only
    cancel: threading.Event | None = None,
    screen: bool = True,
    trace_calls: bool = False,
) -> PytestRun:
    """Run the tests `node_ids` (all of the project's tests if empty) of `project_dir` with the
    user's interpreter (`python`, else see `resolve_python`) and pytest configuration, with
    `overlay` ({path relative to the project: new text}) replacing or adding files. Never raises
    for bad input: a refused or broken run is a PytestRun with status "error" and a message.
    Setting `cancel` stops the run (the test process is killed): status "cancelled".
    The overlay is taken for model-written code: what it adds that reaches for the verifier is
    refused (status "refused"); `screen=False` only for overlays nobody generated (a test of the
    sandbox's own containment). `trace_calls` records each test's first calls into the project's
    code (`TestOutcome.calls`), for a model to see where a wrong value first appears; it slows the
    run, so only a single failing test is run so."""
    started = time.monotonic()
    python_shown = python or ""
    if trace_calls:
        env = {**env, _TRACE_ENV: "1"}
    try:
        request = _request(
            project_dir, node_ids, overlay, python, timeout, pytest_args, limits, env
        )
        python_shown = request.python
        refused = _refusal(request) if screen else ""
        if refused:
            run = PytestRun(status="refused", message=refused, python=python_shown)
            run.duration = time.monotonic() - started
            run.isolation = isolation.mode()
            return run
        interpreter = _probe(request.python)
        request = dataclasses.replace(request, python=interpreter.python)
        with _workspace(request, interpreter) as workspace:
            key = secrets.token_hex(16)
            records_read, records_write = os.pipe()
            key_read, key_write = os.pipe()
            os.write(key_write, key.encode() + b"\n")
            os.close(key_write)
            reader = isolation.ChannelReader(records_read, _RECORDS_LIMIT)
            reader.start()
            spec = dataclasses.replace(_spec(request, workspace),
                                       fds={_RECORDS_FD: records_write, _KEY_FD: key_read})  # fmt: skip
            completed = isolation.run(spec, timeout=request.timeout, output_limit=4 << 20,
                                      cancel=cancel)  # fmt: skip (run closes spec.fds)
            records, tampering = _read_records(reader.result(), key, reader.overflowed)
            mapping = (workspace.root, request.project)
        run = _assemble(request, completed, records, mapping, tampering)
    except _BadInput as error:
        run = PytestRun(status="error", message=str(error), python=python_shown)
    except Exception as error:  # noqa: BLE001 - the engine reports, it does not raise
        log.exception("run_pytest failed")
        run = PytestRun(
            status="error", message=f"ledex could not run pytest: {error!r}", python=python_shown
        )
    run.duration = time.monotonic() - started
    run.isolation = isolation.mode()
    return run


def _spec(request: _Request, workspace: _Workspace) -> Spec:
    argv = [request.python, "-m", "pytest", "-p", PLUGIN_MODULE,
            "-o", f"cache_dir={workspace.cache_dir}", "--color=no",
            *request.pytest_args, *request.node_ids]  # fmt: skip
    python_bin = os.path.dirname(request.python)
    env = {
        **request.env,
        "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",  # as if the user's venv were active
        "PYTHONPATH": os.pathsep.join(workspace.pythonpath),
        "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ anywhere near the project
        _CHANNEL_ENV: "1",
    }
    return Spec(
        argv=argv, mounts=workspace.mounts, workdir=workspace.root, env=env, limits=request.limits
    )


def _refusal(request: _Request) -> str:
    """Why the overlay is refused before it runs ("" if it is not): what a candidate file adds to
    its original that reaches for the verifier."""
    for relative, text in request.overlay.items():
        original = None
        with contextlib.suppress(OSError, UnicodeDecodeError):
            original = (request.project / relative).read_text(encoding="utf-8")
        reason = screening.refusal(text, "pytest", original)
        if reason:
            return f"the candidate {relative} was not run: {reason}"
    return ""


def _read_records(data: bytes, key: str, overflowed: bool) -> tuple[list[dict], str]:
    """The plugin's records, and why the channel cannot be believed ("" if it can): a line
    without the run's key, or more than the host keeps."""
    if overflowed:
        return [], f"the test run wrote more than {_RECORDS_LIMIT >> 20} MB of results"
    records = []
    prefix = key.encode() + b" "
    lines = data.split(b"\n")
    for index, line in enumerate(lines):
        if not line:
            continue
        if not line.startswith(prefix):
            if index == len(lines) - 1 and prefix.startswith(line[: len(prefix)]):
                continue  # the start of a record cut off by a kill
            return [], "a results record did not come from ledex's pytest plugin"
        with contextlib.suppress(ValueError):
            record = json.loads(line[len(prefix) :].decode("utf-8", "replace"))
            if isinstance(record, dict):
                records.append(record)
    return records, ""  # a line cut off by a kill is skipped


# --- from records to a PytestRun -----------------------------------------------------------------


def _assemble(request: _Request, completed: isolation.Completed, records: list[dict],
              mapping: tuple[Path, Path], tampering: str = "") -> PytestRun:  # fmt: skip
    unshadow = _path_mapper(*mapping)
    by_event: dict[str, list[dict]] = {}
    for raw in records:
        record = _map_record(raw, unshadow)
        if isinstance(record, dict):
            by_event.setdefault(str(record.get("event")), []).append(record)
    finish = by_event["finish"][-1] if by_event.get("finish") else None
    stderr = unshadow(_tail(completed.stderr))
    run = PytestRun(
        status="ok",
        outcomes=_outcomes(by_event.get("report", [])),
        collection_errors=[_collection_error(r) for r in by_event.get("collect_error", [])],
        exit_code=finish["exitstatus"] if finish else _process_exit(completed.returncode),
        stdout=unshadow(_tail(completed.stdout)),
        stderr=stderr,
        collected=[n for r in by_event.get("collected", []) for n in r.get("nodeids", [])],
        rootdir=(by_event.get("rootdir") or [{}])[-1].get("rootdir"),
        python=request.python,
    )
    run.missing = _not_found(stderr, request.project)
    for record in by_event.get("calls", []):
        traced = run.outcomes.get(str(record.get("nodeid")))
        if traced is not None:
            traced.calls = _calls(record.get("calls"))
    unfinished = _unfinished(by_event.get("start", []), by_event.get("report", []))
    run.status, run.message = _status(run, completed, finish, unfinished, request.timeout)
    if run.status == "ok" and not tampering:
        tampering = _disagreement(completed, finish, by_event)
    if tampering:
        return _tampered(run, tampering)
    for node_id, location in unfinished.items():
        if run.status == "cancelled":
            continue  # not an outcome of the test: nobody waits for a cancelled run's results
        outcome: Outcome = "timeout" if run.status == "timeout" else "crashed"
        run.outcomes[node_id] = TestOutcome(
            node_id, outcome, message=run.message, location=location
        )
    return run


def _status(run: PytestRun, completed: isolation.Completed, finish: dict | None,
            unfinished: dict[str, Frame | None], timeout: float) -> tuple[Status, str]:  # fmt: skip
    running = f" while running {', '.join(unfinished)}" if unfinished else ""
    if completed.cancelled:
        return "cancelled", f"cancelled{running}"
    if completed.timed_out:
        done = len(run.outcomes.keys() - unfinished.keys())
        return "timeout", f"timed out after {timeout:g} s{running} ({done} tests finished)"
    if run.missing:
        return "not_found", "pytest found no test " + ", ".join(run.missing)
    if finish is not None and finish.get("exitstatus") in (0, 1, 2, 5):
        return "ok", ""  # 1: tests failed, 2: collection errors/interrupted, 5: no tests
    if finish is not None and run.collection_errors:
        return "ok", ""  # 4: the requested tests' module did not import; the errors say why
    code = _process_exit(completed.returncode)
    if finish is None and (unfinished or code is None or code < 0 or code > 5):
        return "crashed", f"the test process died ({_describe_exit(completed.returncode)}){running}"
    detail = _last_lines(run.stderr) or _last_lines(run.stdout)
    return "error", f"pytest exited with status {code}: {detail}"


def _tampered(run: PytestRun, why: str) -> PytestRun:
    """A run whose signals disagree: nothing it reported is believed."""
    run.status = "tampered"
    run.message = (f"the test run's results cannot be trusted ({why}): the code under test may have"
                   " tampered with pytest or ledex's reporting, so no test counts as passed")  # fmt: skip
    run.outcomes, run.collection_errors, run.exit_code = {}, [], None
    return run


def _disagreement(completed: isolation.Completed, finish: dict | None,
                  by_event: dict[str, list[dict]]) -> str:  # fmt: skip
    """Why the independent signals of a finished run disagree ("" if they agree): the process's
    real exit status, the plugin's finish record, pytest's own summary line and the per-test
    records. Code under test shares pytest's process and can rewrite any one of them."""
    if by_event.get("forged"):
        return str(by_event["forged"][0].get("why") or "pytest's reporting was changed")
    collected = {n for r in by_event.get("collected", []) for n in r.get("nodeids", [])}
    for report in by_event.get("report", []):
        if by_event.get("collected") and report.get("nodeid") not in collected:
            return f"a test report for {report.get('nodeid')!r}, a test pytest did not collect"
        category, kind = report.get("category"), _report_kind(report)
        if category in _KINDS and kind is not None and category != kind:
            return f"a report of {report.get('nodeid')} says {report.get('outcome')} but counts as {category}"
    real = _process_exit(completed.returncode)
    reported = finish.get("exitstatus") if finish else None
    if real != reported:
        return f"pytest's process exited with status {real}, its report said {reported}"
    summary = _summary(completed.stdout.decode("utf-8", "replace"))
    if summary is None:
        return ("pytest's summary line is missing from its output (it is needed to cross-check the"
                " results: run without -qq or -p no:terminal)")  # fmt: skip
    counted = _counts(by_event)
    for kind in ("passed", "failed", "error"):
        if summary.get(kind, 0) != counted.get(kind, 0):
            return (f"pytest counted {summary.get(kind, 0)} {kind}, the per-test records"
                    f" {counted.get(kind, 0)}")  # fmt: skip
    failing = counted.get("failed", 0) + counted.get("error", 0)
    if (real == 0) != (failing == 0) and real in (0, 1):
        return f"pytest exited with status {real} after {failing} failures or errors"
    return ""


_SUMMARY = re.compile(
    r"^(?:=+ )?(no tests ran|\d+ [a-z][a-z ]*(?:, \d+ [a-z][a-z ]*)*) in [\d.]+s(?: \([\d:.]+\))?(?: =+)?\s*$",
    re.MULTILINE,
)


def _summary(stdout: str) -> dict[str, int] | None:
    """pytest's final line, `=== 1 failed, 2 passed, 1 warning in 0.12s ===`, as counts."""
    found = _SUMMARY.findall(stdout)
    if not found:
        return None
    counts: dict[str, int] = {}
    for part in found[-1].split(", "):
        number, _, kind = part.partition(" ")
        if number.isdigit():
            kind = {"errors": "error", "warnings": "warning"}.get(kind, kind)
            counts[kind] = counts.get(kind, 0) + int(number)
    return counts


_KINDS = frozenset({"passed", "failed", "error", "skipped", "xfailed", "xpassed"})


def _xfail(report: dict) -> bool:
    """Was the test expected to fail? pytest sets `wasxfail` to the reason ("" when none given)."""
    return report.get("wasxfail") is not None and report.get("wasxfail") is not False


def _report_kind(report: dict) -> str | None:
    """What pytest's summary counts a plain report as, from its outcome (None: not counted)."""
    when, outcome = report.get("when"), report.get("outcome")
    if outcome == "failed":
        return "failed" if when == "call" else "error"
    if outcome == "skipped":
        return "xfailed" if _xfail(report) else "skipped"
    if outcome == "passed" and when == "call":
        return "xpassed" if _xfail(report) else "passed"
    return None


def _counts(by_event: dict[str, list[dict]]) -> dict[str, int]:
    """The per-test records counted as pytest's terminal summary counts reports."""
    counts: dict[str, int] = {"error": len(by_event.get("collect_error", []))}
    for report in by_event.get("report", []):
        category = report.get("category")
        # as pytest's own hook said (subtests decide theirs); `_disagreement` checks that it
        # agrees with the outcome where both are plain
        kind = category if isinstance(category, str) else _report_kind(report)
        if kind:
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def _process_exit(returncode: int | None) -> int | None:
    if returncode is None:
        return None
    if isolation.mode() == "bwrap" and returncode > 128:  # bwrap reports a signal N as 128 + N
        return -(returncode - 128)
    return returncode


def _describe_exit(returncode: int | None) -> str:
    code = _process_exit(returncode)
    if code is None:
        return "no exit status"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code} before pytest finished"


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-count:])


_NOT_FOUND = re.compile(r"^ERROR: (?:file or directory )?not found: (.+)$", re.MULTILINE)


def _not_found(stderr: str, project: Path) -> list[str]:
    missing = []
    for match in _NOT_FOUND.finditer(stderr):
        node = match[1].strip()
        path, sep, rest = node.partition("::")
        if os.path.isabs(path) and _is_within(Path(path), project):
            node = Path(path).relative_to(project).as_posix() + sep + rest
        missing.append(node)
    return missing


def _unfinished(starts: list[dict], reports: list[dict]) -> dict[str, Frame | None]:
    """Tests that began but have no teardown report: the one running when the process died."""
    done = {r.get("nodeid") for r in reports if r.get("when") == "teardown"}
    return {s["nodeid"]: _frame(s.get("location")) for s in starts
            if isinstance(s.get("nodeid"), str) and s["nodeid"] not in done}  # fmt: skip


def _outcomes(reports: list[dict]) -> dict[str, TestOutcome]:
    phases: dict[str, list[dict]] = {}
    for report in reports:
        if isinstance(report.get("nodeid"), str):
            phases.setdefault(report["nodeid"], []).append(report)
    return {node_id: _combine(node_id, found) for node_id, found in phases.items()}


def _combine(node_id: str, reports: list[dict]) -> TestOutcome:
    """One outcome from a test's setup/call/teardown reports, as pytest's summary counts them."""
    failed = [r for r in reports if r.get("outcome") == "failed"]
    call = next((r for r in reports if r.get("when") == "call"), None)
    deciding = failed[0] if failed else (call or reports[0])
    xfail = _xfail(deciding)
    if failed:
        outcome: Outcome = "failed" if deciding.get("when") == "call" else "error"
    elif deciding.get("outcome") == "skipped":
        outcome = "xfailed" if xfail else "skipped"
    else:
        outcome = "xpassed" if xfail else "passed"
    message = str(deciding.get("message") or "")
    if outcome == "xfailed" and not message:
        message = str(deciding.get("wasxfail") or "")
    return TestOutcome(
        node_id=node_id,
        outcome=outcome,
        when=str(deciding.get("when") or "call"),
        duration=sum(float(r.get("duration") or 0.0) for r in reports),
        message=message,
        longrepr=str(deciding.get("longrepr") or ""),
        frames=_frames(deciding.get("frames")),
        location=next((f for r in reports if (f := _frame(r.get("location")))), None),
    )


def _collection_error(record: dict) -> CollectionError:
    return CollectionError(
        node_id=str(record.get("nodeid") or ""),
        message=str(record.get("message") or ""),
        longrepr=str(record.get("longrepr") or ""),
        frames=_frames(record.get("frames")),
    )


def _frames(raw: object) -> list[Frame]:
    frames = [_frame(item) for item in raw] if isinstance(raw, list) else []
    return [f for f in frames if f is not None]


def _calls(raw: object) -> list[Call]:
    calls = []
    for item in raw if isinstance(raw, list) else []:
        frame = _frame(item)
        if frame is None:
            continue
        try:
            calls.append(Call(frame, int(item.get("depth") or 0), str(item.get("arguments") or ""),
                              None if item.get("result") is None else str(item["result"]),
                              None if item.get("raised") is None else str(item["raised"])))  # fmt: skip
        except (TypeError, ValueError):
            continue
    return calls


def _frame(raw: object) -> Frame | None:
    if not isinstance(raw, dict):
        return None
    try:
        return Frame(str(raw["path"]), int(raw["line"]), str(raw.get("function") or ""))
    except (KeyError, TypeError, ValueError):
        return None


def _tail(data: bytes) -> str:
    return data.decode("utf-8", "replace")[-_TAIL_CHARS:]


def _path_mapper(shadow: Path, project: Path):
    """Text from the shadow copy, with its paths turned into the project's (identity under
    bubblewrap, where the project is run in place)."""
    if shadow == project:
        return lambda text: text
    old, new = str(shadow), str(project)
    return lambda text: text.replace(old, new)


def _map_record(record: object, unshadow) -> object:
    if isinstance(record, str):
        return unshadow(record)
    if isinstance(record, list):
        return [_map_record(item, unshadow) for item in record]
    if isinstance(record, dict):
        return {key: _map_record(value, unshadow) for key, value in record.items()}
    return record
