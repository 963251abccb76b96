"""isolation.py (issue 15): what runs outside the sandbox, the weak mode, host resources.

Each case failed before issue 15: the interpreter probe ran a repository's `.venv/bin/python` on
the host with the full environment; an older bubblewrap (no --size) dropped to rlimits only; the
fallback kept root's supplementary groups, made its working folder 0777, cleared a scratch folder
through a symlink, let a sandbox outlive the thread that started it, left a killed server's
processes running, had no memory cgroup, and nothing refused the rlimits mode.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from ledex.sandbox import isolation
from ledex.sandbox.isolation import Spec
from ledex.sandbox.limits import Limits
from ledex.sandbox.pytest_runner import run_pytest

HAS_BWRAP = isolation.mode() == "bwrap"
SYSTEM_PYTHON = "/usr/bin/python3"  # readable by uid 65534, unlike a venv under /root


@pytest.fixture
def fallback(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("LEDEX_SANDBOX", "rlimits")
    monkeypatch.setenv("LEDEX_SHADOW_DIR", str(tmp_path_factory.mktemp("shadows")))
    isolation.mode.cache_clear()
    yield
    monkeypatch.undo()
    isolation.mode.cache_clear()


@pytest.fixture
def bwrap_mode():
    if not HAS_BWRAP:
        pytest.skip("bubblewrap is not usable here")
    isolation.mode.cache_clear()
    yield
    isolation.mode.cache_clear()


def _python_says(code: str, **spec) -> str:
    mounts = isolation.interpreter_mounts(sys.executable)
    done = isolation.run(Spec([sys.executable, "-I", "-c", code], mounts, **spec), timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


# --- nothing of the user's runs on the host ------------------------------------------------------


def _trap_interpreter(project: Path, marker: Path) -> None:
    """A cloned repository's `.venv/bin/python`: a script that records where it ran and with
    which environment, then starts the venv's real interpreter."""
    base = os.path.realpath(sys.executable)  # the interpreter behind our venv, with pytest
    subprocess.run([base, "-m", "venv", "--without-pip", "--system-site-packages",
                    str(project / ".venv")], check=True)  # fmt: skip
    script = project / ".venv" / "bin" / "python"
    script.unlink()
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        env > {marker} 2>/dev/null
        exec "$(dirname "$0")/python3" "$@"
        """))
    script.chmod(0o755)


@pytest.mark.parametrize("sandbox", ["bwrap", "rlimits"])
def test_a_projects_interpreter_is_probed_inside_the_sandbox(sandbox, tmp_path, monkeypatch,
                                                             tmp_path_factory):  # fmt: skip
    if sandbox == "bwrap" and not HAS_BWRAP:
        pytest.skip("bubblewrap is not usable here")
    if sandbox == "rlimits":
        monkeypatch.setenv("LEDEX_SANDBOX", "rlimits")
        monkeypatch.setenv("LEDEX_SHADOW_DIR", str(tmp_path_factory.mktemp("shadows")))
    isolation.mode.cache_clear()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-of-the-user")
    project = tmp_path / "cloned"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_one.py").write_text("def test_one():\n    assert True\n")
    marker = tmp_path / f"ran-{uuid.uuid4().hex}.txt"
    _trap_interpreter(project, marker)
    try:
        run = run_pytest(project, ["tests/test_one.py"])  # resolves the project's .venv
    finally:
        isolation.mode.cache_clear()
    assert run.python.startswith(str(project / ".venv" / "bin"))
    if sandbox == "bwrap":  # the script ran only where the host's folders are not writable
        assert not marker.exists()
    else:  # no filesystem isolation: it ran, but without the user's environment
        assert "sk-secret-of-the-user" not in marker.read_text()
    assert run.passes(), run.message


# --- the weak mode -------------------------------------------------------------------------------


def test_an_older_bubblewrap_keeps_the_namespaces(tmp_path, monkeypatch):
    """bubblewrap 0.4-0.6 have no --size: the namespaces stay, what is missing is said."""
    if not HAS_BWRAP:
        pytest.skip("bubblewrap is not usable here")
    real = shutil.which("bwrap")
    fake = tmp_path / "bin" / "bwrap"
    fake.parent.mkdir()
    fake.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        for arg in "$@"; do
            if [ "$arg" = "--size" ]; then echo "bwrap: Unknown option --size" >&2; exit 1; fi
            if [ "$arg" = "--help" ]; then {real} --help | grep -v -- --size; exit 0; fi
        done
        exec {real} "$@"
        """))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.delenv("LEDEX_SANDBOX", raising=False)
    isolation.mode.cache_clear()
    isolation._bwrap_features.cache_clear()
    try:
        assert isolation.mode() == "bwrap", isolation.status().reason
        assert any("--size" in line for line in isolation.status().weakened)
        assert "--size" in isolation.status().summary()
        assert _python_says("import os; print(os.getuid())") == str(isolation.SANDBOX_UID)
    finally:
        monkeypatch.undo()
        isolation.mode.cache_clear()
        isolation._bwrap_features.cache_clear()


def test_the_rlimits_mode_is_refused_unless_chosen(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    monkeypatch.delenv("LEDEX_SANDBOX", raising=False)
    isolation.mode.cache_clear()
    try:
        assert isolation.mode() == "rlimits" and not isolation.status().chosen
        with pytest.raises(isolation.SandboxUnavailable) as refused:
            isolation.require_isolation("the language server")
        message = str(refused.value)
        assert "the language server" in message and "not installed" in message
        assert "apt install bubblewrap" in message and "LEDEX_SANDBOX=rlimits" in message
        monkeypatch.setenv("LEDEX_SANDBOX", "rlimits")
        isolation.mode.cache_clear()
        chosen = isolation.require_isolation("the language server")
        assert chosen.chosen and chosen.to_dict()["mode"] == "rlimits"
        assert chosen.to_dict()["opted_in"] is True
    finally:
        monkeypatch.undo()
        isolation.mode.cache_clear()


@pytest.mark.skipif(os.getuid() != 0, reason="drops to uid 65534 only when running as root")
def test_the_fallback_drops_supplementary_groups_with_the_uid(fallback):
    """ledex started by a root that is in other groups (adm, sudo): the sandbox is in none."""
    if not isolation._nobody_can_run(SYSTEM_PYTHON):
        pytest.skip(f"uid 65534 cannot run {SYSTEM_PYTHON}")
    helper = textwrap.dedent(f"""\
        from ledex.sandbox import isolation
        code = "import os; print(os.getuid(), sorted(os.getgroups()))"
        done = isolation.run(isolation.Spec([{SYSTEM_PYTHON!r}, "-I", "-c", code]), timeout=60)
        print(done.stdout.decode().strip())
        """)
    root = Path(isolation.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "LEDEX_SANDBOX": "rlimits"}
    done = subprocess.run([sys.executable, "-c", helper], extra_groups=[4, 27], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == f"{isolation.SANDBOX_UID} []", done.stderr


def test_the_fallbacks_working_folder_is_private(fallback):
    mode = _python_says("import os, stat; print(oct(stat.S_IMODE(os.stat('.').st_mode)))")
    assert mode == "0o700"


def test_clearing_a_scratch_folder_never_follows_a_symlink(tmp_path):
    """Another local user (or the program) swaps the scratch folder for a link to elsewhere."""
    sys.path.insert(0, str(Path(isolation.__file__).parent))
    try:
        import worker  # the in-sandbox worker, stdlib only
    finally:
        sys.path.pop(0)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    scratch = tmp_path / "scratch"
    scratch.symlink_to(precious)
    worker._clear(str(scratch))
    assert (precious / "keep.txt").exists()
    isolation.remove_tree(scratch)
    assert (precious / "keep.txt").exists() and not scratch.exists()


@pytest.mark.parametrize("sandbox", ["bwrap", "rlimits"])
def test_a_sandbox_dies_with_the_thread_that_started_it(sandbox, monkeypatch):
    if sandbox == "bwrap" and not HAS_BWRAP:
        pytest.skip("bubblewrap is not usable here")
    if sandbox == "rlimits":
        monkeypatch.setenv("LEDEX_SANDBOX", "rlimits")
    isolation.mode.cache_clear()
    mark = f"ledexorphan{uuid.uuid4().hex[:8]}"
    started: list[isolation.Sandboxed] = []
    spec = Spec([sys.executable, "-I", "-c", "import time; time.sleep(60)", mark])
    thread = threading.Thread(target=lambda: started.append(isolation.Sandboxed(spec)))
    thread.start()
    thread.join()
    try:
        deadline = time.monotonic() + 10
        while _processes_with(mark) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _processes_with(mark) == []
    finally:
        started[0].close()
        isolation.mode.cache_clear()


def _processes_with(text: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if text.encode() in Path(f"/proc/{name}/cmdline").read_bytes():
                    found.append(int(name))
            except OSError:
                continue
    return found


def test_what_a_killed_server_left_in_its_cgroup_is_killed(tmp_path):
    parents = isolation._cgroup_parents()
    if not parents:
        pytest.skip("no writable cgroup here")
    mark = f"ledexleftover{uuid.uuid4().hex[:8]}"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    leftover = parents[0][0] / f"ledex-{dead}-{uuid.uuid4().hex[:8]}"
    leftover.mkdir()
    daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", mark],
                              start_new_session=True)  # fmt: skip
    try:
        (leftover / "cgroup.procs").write_text(str(daemon.pid))
        isolation._reap_leftovers.cache_clear()
        isolation.run(Spec(["/bin/true"]), timeout=30)  # the first sandbox of a new server
        assert daemon.wait(timeout=10) == -9
        assert not leftover.exists()
    finally:
        daemon.kill()
        daemon.wait()
        if leftover.exists():
            leftover.rmdir()


# --- host resources ------------------------------------------------------------------------------


def test_a_memory_cgroup_caps_the_whole_sandbox():
    """Three processes of 200 MB, each well under its address-space limit, 600 MB together."""
    if not any("memory" in controllers for _, controllers in isolation._cgroup_parents()):
        pytest.skip("no writable memory cgroup here")
    code = textwrap.dedent("""\
        import os, time
        for _ in range(3):
            if os.fork() == 0:
                block = bytearray(200 << 20)
                for i in range(0, len(block), 4096):
                    block[i] = 1
                time.sleep(30)
                os._exit(0)
        for _ in range(3):
            os.wait()
        """)
    limits = Limits(memory_mb=1024, sandbox_memory_mb=300)
    done = isolation.run(Spec([sys.executable, "-I", "-c", code], limits=limits), timeout=20)
    assert not done.timed_out and done.returncode != 0, done


def test_the_host_keeps_a_bounded_part_of_a_results_channel():
    read, write = os.pipe()
    reader = isolation.ChannelReader(read, 1 << 20)
    reader.start()
    with os.fdopen(write, "wb") as pipe:
        pipe.write(b"x" * (3 << 20))
    assert len(reader.result()) == 1 << 20 and reader.overflowed


def test_a_shadow_folder_someone_else_could_have_prepared_is_refused(fallback, tmp_path, monkeypatch):
    """Root's shadow copies live at a predictable path (/var/tmp/ledex-shadows-0): one another
    user made (a symlink, a folder of theirs, a writable one) is not used."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "shadows"
    link.symlink_to(elsewhere)
    monkeypatch.setenv("LEDEX_SHADOW_DIR", str(link))
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_one.py").write_text("def test_one():\n    assert True\n")
    run = run_pytest(project, ["tests/test_one.py"], python=sys.executable)
    assert run.status == "error" and "LEDEX_SHADOW_DIR" in run.message, run.message
    assert list(elsewhere.iterdir()) == []


# --- visible where a verdict is shown ------------------------------------------------------------


@pytest.mark.parametrize("chosen", [False, True])
def test_ledex_fix_json_says_which_sandbox_verified(tmp_path, chosen):
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_one.py").write_text("def test_one():\n    assert True\n")
    env = {key: value for key, value in os.environ.items() if key != "LEDEX_SANDBOX"}
    if chosen:
        env |= {"LEDEX_SANDBOX": "rlimits", "LEDEX_SHADOW_DIR": str(tmp_path / "shadows")}
    done = subprocess.run([sys.executable, "-m", "ledex", "fix", str(project), "--json",
                           "--python", sys.executable], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    sandbox = json.loads(done.stdout)["sandbox"]
    assert sandbox["mode"] == ("rlimits" if chosen else isolation.mode())
    assert sandbox["opted_in"] is chosen and sandbox["summary"]


def test_the_language_server_refuses_the_rlimits_mode_unless_chosen(tmp_path):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # no bwrap on it
    env.pop("LEDEX_SANDBOX", None)
    refused = subprocess.run([sys.executable, "-m", "ledex", "serve"], capture_output=True,
                             text=True, env=env, stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip
    assert refused.returncode == 1
    assert "the language server (`ledex serve`) runs model-written code" in refused.stderr
    assert "LEDEX_SANDBOX=rlimits" in refused.stderr
    chosen = subprocess.run([sys.executable, "-m", "ledex", "serve"], capture_output=True,
                            text=True, env={**env, "LEDEX_SANDBOX": "rlimits"},
                            stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip
    assert "runs model-written code" not in chosen.stderr
