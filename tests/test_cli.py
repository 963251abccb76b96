"""`ledex` as a user runs it: a real process, one clear line on bad input, tracebacks on --debug."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledex import weights


def ledex(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ledex", *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})}, input=stdin,
    )  # fmt: skip


def assert_clean_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ledex: error: "), result.stderr
    assert fragment in lines[0]


def test_model_list_shows_every_model_and_the_default():
    result = ledex("model", "list")
    assert result.returncode == 0
    for name in weights.MODELS:
        assert name in result.stdout
    assert "(default)" in result.stdout


def test_model_path_and_verify(smollm2_path: Path):
    path = ledex("model", "path", "smollm2-135m")
    assert path.returncode == 0 and path.stdout.strip() == str(smollm2_path)
    verify = ledex("model", "verify", "smollm2-135m")
    assert verify.returncode == 0 and "SHA-256 OK" in verify.stdout


def test_model_commands_take_the_spec_strings_model_takes(smollm2_path: Path):
    for spec in ("embedded:smollm2-135m", "embedded:smollm2-135m+/nowhere/lora.gguf"):
        path = ledex("model", "path", spec)
        assert path.returncode == 0 and path.stdout.strip() == str(smollm2_path), path.stderr
    verify = ledex("model", "verify", "embedded:smollm2-135m")
    assert verify.returncode == 0 and "smollm2-135m: SHA-256 OK" in verify.stdout, verify.stderr
    install = ledex("model", "install", "embedded:smollm2-135m")
    assert install.returncode == 0 and "is installed" in install.stdout, install.stderr


def test_model_path_of_a_gguf_spec_is_its_file(smollm2_path: Path):
    result = ledex("model", "path", f"embedded:{smollm2_path}")
    assert result.returncode == 0 and result.stdout.strip() == str(smollm2_path.resolve())


def test_the_default_spec_is_the_default_model(tmp_path):
    result = ledex("model", "path", "embedded", env={"LEDEX_CACHE_DIR": str(tmp_path)})
    assert_clean_error(result, f"run: ledex model install {weights.DEFAULT_MODEL}")


def test_model_install_is_a_no_op_when_installed(smollm2_path: Path):
    result = ledex("model", "install", "smollm2-135m")
    assert result.returncode == 0 and "is installed" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("generate", "--model", "gpt-5", "hi"), "unknown model spec 'gpt-5'"),
        (("generate", "--model", "embedded:70b", "hi"), "unknown embedded model '70b'"),
        (("model", "install", "70b"), "unknown embedded model '70b'"),
        (("model", "install", "embedded:70b"), "unknown embedded model '70b'"),
        (("model", "verify", "openai:http://127.0.0.1:9/v1#m"), "is not an embedded model"),
        (("model", "install", "embedded:/models/mine.gguf"), "is a GGUF file of your own"),
        (("model", "path", "embedded:/models/mine.gguf"), "GGUF file not found: /models/mine.gguf"),
        (("model", "verify", "embedded:"), "empty model name"),
        (("generate", "--model", "openai:http://127.0.0.1:9/v1#m", "hi"), "127.0.0.1:9/v1 is unreachable"),
    ],
)
def test_bad_input_is_one_clear_line(args, fragment):
    assert_clean_error(ledex(*args), fragment)


def test_missing_weights_say_how_to_install(tmp_path):
    result = ledex("generate", "--model", "embedded:0.5b", "hi", env={"LEDEX_CACHE_DIR": str(tmp_path)})
    assert_clean_error(result, "run: ledex model install 0.5b")
    assert list(tmp_path.rglob("*.gguf")) == []


def test_a_corrupt_model_is_refused_and_not_used(tmp_path, smollm2_path):
    model = weights.MODELS["smollm2-135m"]
    broken = tmp_path / "models" / model.filename
    broken.parent.mkdir(parents=True)
    broken.write_bytes(smollm2_path.read_bytes()[:-1] + b"\0")
    result = ledex("generate", "--model", "embedded:smollm2-135m", "hi", env={"LEDEX_CACHE_DIR": str(tmp_path)})
    assert_clean_error(result, "is corrupt")


def test_debug_shows_the_traceback():
    result = ledex("--debug", "generate", "--model", "gpt-5", "hi")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ModelSpecError" in result.stderr


def test_context_overflow_is_one_clear_line(smollm2_path):
    result = ledex("generate", "--model", "embedded:smollm2-135m", "-", stdin="word " * 9000)
    assert_clean_error(result, "does not fit the model's context window")


def test_generate_streams_a_real_reply(smollm2_path):
    result = ledex("generate", "--model", "embedded:smollm2-135m", "--max-tokens", "16", "--seed", "1", "Say hello.")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_generate_n_replies_warns_about_truncation(smollm2_path):
    result = ledex(
        "generate", "--model", "embedded:smollm2-135m", "-n", "2", "--max-tokens", "3", "Count to 50."
    )
    assert result.returncode == 0, result.stderr
    assert "--- reply 2 ---" in result.stdout
    assert "was cut at --max-tokens 3" in result.stderr


def test_demo_runs_the_ledex_dialogue_end_to_end(smollm2_path):
    # SmolLM2's fixes are useless, but the whole path (dialogue -> model -> parser) must run.
    result = ledex("demo", "--model", "embedded:smollm2-135m", "--max-tokens", "200", "--seed", "0")
    assert "Explain briefly why the code is wrong" in result.stdout
    assert "the model's reply" in result.stdout
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr
