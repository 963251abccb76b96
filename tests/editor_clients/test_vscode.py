"""The VS Code extension (editor-clients/vscode): its unit tests (vitest), its type check, that its
settings mirror the server's, that `npm run package` builds a self-contained .vsix, and the
end-to-end tests in a real VS Code (code-server) in Debian's chromium (editor-clients/vscode/e2e/
run.mjs, driven with playwright-core): the diagnostic appears, "Explain and fix" is chosen from the
quick-fix menu and the saved file is fixed; the extension's commands Run Tests and Explain and Fix
Failing Test do the same; a killed server is restarted; an interpreter without ledex gets the
install command. The model is the scripted loopback server (tests/support/openai_loopback.py).

`make test` installs what these need (`make vscode-client`: npm packages, code-server, chromium).
Nothing here skips: a missing tool is a failure that says what to run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from dataclasses import fields
from pathlib import Path

import pytest

from benchmarks.cases.check_cases import (
    copy_case,
    load_cases,
    reference_fix_code,
)
from ledex import dialogue
from lsp_server.settings import RUN_ON, Settings
from tests.support.openai_loopback import LoopbackServer

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "editor-clients" / "vscode"
E2E = EXTENSION / "e2e"
ARTIFACTS = E2E / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SETUP_HINT = "run `make vscode-client` (part of `make test`)"


def _run(command: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None):
    """Run a command, echo its output (pytest shows it on failure), fail with its tail."""
    if shutil.which(command[0]) is None:
        pytest.fail(f"`{command[0]}` is not installed; {SETUP_HINT}")
    try:
        result = subprocess.run(
            command,
            cwd=cwd,
            env={**os.environ, "CI": "1", "NO_COLOR": "1", **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as error:
        output = (error.stdout or b"").decode() if isinstance(error.stdout, bytes) else error.stdout
        pytest.fail(f"{' '.join(command)} timed out after {timeout}s:\n{(output or '')[-4000:]}")
    output = result.stdout + result.stderr
    print(output)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({result.returncode}):\n{output[-6000:]}")
    return output


@pytest.fixture(scope="module")
def node_modules() -> Path:
    modules = EXTENSION / "node_modules"
    if not (modules / ".bin" / "vitest").exists():
        pytest.fail(f"the extension's npm packages are not installed in {modules}; {SETUP_HINT}")
    return modules


def test_unit_tests(node_modules):
    output = _run(["npm", "test", "--silent"], EXTENSION, timeout=300)
    assert " passed" in output, output


def test_typecheck(node_modules):
    _run(["npm", "run", "typecheck", "--silent"], EXTENSION, timeout=300)


def _default(value):
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def test_contributed_settings_mirror_the_server():
    """package.json's `contributes.configuration` has every server setting (lsp_server/settings.py)
    with the server's default, and `runOn`'s enum is the server's."""
    manifest = json.loads((EXTENSION / "package.json").read_text())
    properties = manifest["contributes"]["configuration"]["properties"]
    defaults = Settings()
    expected = {}
    for field in fields(Settings):
        head, *rest = field.name.split("_")
        expected["ledex." + head + "".join(part.title() for part in rest)] = _default(
            getattr(defaults, field.name)
        )
    server_keys = {key for key in properties if not key.startswith("ledex.trace.")}
    assert server_keys == set(expected)
    for key, default in expected.items():
        contributed = properties[key]["default"]
        if key == "ledex.runOn":
            assert sorted(contributed) == default
            assert sorted(properties[key]["items"]["enum"]) == sorted(RUN_ON)
        else:
            assert contributed == default, key
        assert properties[key].get("markdownDescription") or properties[key].get("description")
    # what the extension sends the server (src/settings.ts) is exactly the server's keys
    source = (EXTENSION / "src" / "settings.ts").read_text()
    listed = source.split("SERVER_KEYS = [", 1)[1].split("]", 1)[0]
    assert {k.strip().strip('"') for k in listed.split(",") if k.strip()} == {
        key.removeprefix("ledex.") for key in expected
    }


@pytest.fixture(scope="module")
def vsix(node_modules, tmp_path_factory) -> Path:
    """`npm run package`: type check, production bundle, .vsix (dist/ledex.vsix)."""
    _run(["npm", "run", "package", "--silent"], EXTENSION, timeout=300)
    built = EXTENSION / "dist" / "ledex.vsix"
    assert built.is_file()
    copy = tmp_path_factory.mktemp("vsix") / "ledex.vsix"
    shutil.copy(built, copy)
    return copy


def test_package_builds_a_vsix(vsix):
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("extension/package.json"))
    assert "extension/dist/extension.js" in names
    assert not any("node_modules" in name for name in names), "the bundle must be self-contained"
    assert not any(name.startswith("extension/src/") for name in names)
    assert manifest["main"] == "./dist/extension.js"
    # one bundle, with the language client inside and `vscode` left to the editor
    with zipfile.ZipFile(vsix) as archive:
        bundle = archive.read("extension/dist/extension.js").decode()
    assert 'require("vscode")' in bundle
    assert 'require("vscode-languageclient' not in bundle


# --- end to end ---------------------------------------------------------------------------------

(EXAMPLE,) = load_cases(ROOT / "examples")




def _clear(artifacts: Path) -> None:
    """Remove an earlier run's screenshots and logs (the files directly in `artifacts`)."""
    for path in artifacts.glob("*"):
        if path.is_file():
            path.unlink()


def _stop_code_server(pid_file: Path) -> None:
    """run.mjs stops code-server (its own process group, with the extension host and `ledex
    serve`) when it ends; if it was killed first (a timeout), stop the group here."""
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return  # never started, or gone
    if b"code-server" in cmdline:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)


def test_explain_and_fix_in_code_server(vsix, tmp_path):
    """code-server + chromium: open the buggy example, wait for ledex's diagnostic, choose
    "Explain and fix" in the quick-fix menu, save: the file on disk is fixed and the diagnostic
    gone. Screenshots and logs: editor-clients/vscode/e2e/artifacts/."""
    code_server = E2E / "node_modules" / ".bin" / "code-server"
    if not code_server.exists():
        pytest.fail(f"code-server is not installed in {E2E / 'node_modules'}; {SETUP_HINT}")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` ({SETUP_HINT})")
    workspace = copy_case(EXAMPLE, tmp_path / "workspace").resolve()
    fixed_function = reference_fix_code(EXAMPLE)
    stock = workspace / EXAMPLE.fix_file
    expected = "self._counts[product] = self.count(product) - quantity"
    assert expected in fixed_function and expected not in stock.read_text()
    _clear(ARTIFACTS)
    explanation = "It adds the quantity instead of subtracting it, so stock grows when sold."
    model = LoopbackServer(
        reply=lambda messages, params: dialogue.format_reply(explanation, fixed_function)
    )
    with model:
        env = {
            "LEDEX_E2E_WORKSPACE": str(workspace),
            "LEDEX_E2E_PYTHON": sys.executable,
            "LEDEX_E2E_MODEL": f"openai:{model.url}#loopback-model",
            "LEDEX_E2E_VSIX": str(vsix),
            "LEDEX_E2E_ARTIFACTS": str(ARTIFACTS),
            "LEDEX_E2E_FILE": EXAMPLE.fix_file,
            "LEDEX_E2E_EXPECT": expected,
            "LEDEX_E2E_PREFETCH": "1",  # the fix is repaired in the background (a local model)
            "CHROMIUM": CHROMIUM,
        }
        try:
            output = _run(["node", str(E2E / "run.mjs")], E2E, timeout=540, env=env)
        finally:
            _stop_code_server(ARTIFACTS / "code-server.pid")
        assert len(model.chat_requests) == 1, "the model was asked once, in the background"
        assert "quick fix: ledex: It adds the quantity" in output, output[-3000:]
    print(f"screenshot of the fixed state: {ARTIFACTS / 'vscode-fixed.png'}")
    assert (ARTIFACTS / "vscode-fixed.png").stat().st_size > 10_000
    assert expected in stock.read_text()
    # the project's tests pass with the fix, run the way a user would
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_says_how_to_install_ledex_in_code_server(vsix, tmp_path):
    """An interpreter without ledex: the extension does not start the server but says so, with the
    command that installs it (`<python> -m pip install ledex`)."""
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    python = bare / "bin" / "python"
    probe = subprocess.run(
        [python, "-c", "import ledex"], cwd=tmp_path, capture_output=True, timeout=60
    )
    assert probe.returncode != 0, "the bare venv must not see ledex"
    workspace = copy_case(EXAMPLE, tmp_path / "workspace").resolve()
    artifacts = ARTIFACTS / "not-installed"
    _clear(artifacts)
    env = {
        "LEDEX_E2E_SCENARIO": "not-installed",
        "LEDEX_E2E_WORKSPACE": str(workspace),
        "LEDEX_E2E_PYTHON": str(python),
        "LEDEX_E2E_MODEL": "embedded",
        "LEDEX_E2E_VSIX": str(vsix),
        "LEDEX_E2E_ARTIFACTS": str(artifacts),
        "LEDEX_E2E_FILE": EXAMPLE.fix_file,
        "LEDEX_E2E_EXPECT": "unused",
        "CHROMIUM": CHROMIUM,
    }
    try:
        output = _run(["node", str(E2E / "run.mjs")], E2E, timeout=300, env=env)
    finally:
        _stop_code_server(artifacts / "code-server.pid")
    assert f"{python} -m pip install ledex" in output
