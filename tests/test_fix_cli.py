"""`ledex fix` as a user runs it, on small projects with a scripted model: what --apply writes
(all or nothing, line endings kept), its exit codes, and diffs that survive a pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ledex import dialogue
from tests.ledex.test_fix import ALL, GRADE, GRADE_TESTS, make_project
from tests.support.openai_loopback import LoopbackServer


def ledex_fix(project: Path, server: LoopbackServer, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ledex", "fix", str(project), "--model", f"openai:{server.url}#m",
               "-n", "1", "--rounds", "1", "--python", sys.executable, *args]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "60"}
    )


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def test_apply_fixes_a_crlf_file_and_keeps_its_line_endings(tmp_path):
    project = make_project(tmp_path, {"tests/test_grade.py": GRADE_TESTS})
    (project / "marks/grade.py").write_bytes(crlf(GRADE))
    reply = dialogue.format_reply("Every bound excludes its own mark.", ALL)
    with LoopbackServer(reply=lambda messages, params: reply) as server:
        result = ledex_fix(project, server, "--apply")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 of 3 failing tests fixed" in result.stdout and "wrote marks/grade.py" in result.stdout
    assert (project / "marks/grade.py").read_bytes() == crlf(ALL)


def test_apply_refuses_a_file_changed_meanwhile_writes_nothing_and_exits_3(tmp_path):
    project = make_project(tmp_path, {"marks/grade.py": GRADE, "tests/test_grade.py": GRADE_TESTS})
    edited = GRADE + "\n# the user typed this while the model was thinking\n"

    def reply(messages, params):
        (project / "marks/grade.py").write_text(edited)
        return dialogue.format_reply("Every bound excludes its own mark.", ALL)

    with LoopbackServer(reply=reply) as server:
        result = ledex_fix(project, server, "--apply")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "marks/grade.py changed since the tests ran; nothing was written" in result.stdout
    assert (project / "marks/grade.py").read_text() == edited


def test_a_piped_diff_is_never_wrapped(tmp_path):
    """COLUMNS=60 and not a terminal: the diff's long line comes out whole, so it applies."""
    project = make_project(tmp_path, {"marks/grade.py": GRADE, "tests/test_grade.py": GRADE_TESTS})
    long_line = '    """Letter grade: A from 90, B from 80, C from 70, else F; every bound includes its own mark."""'
    fixed = ALL.replace(GRADE.splitlines()[1], long_line)
    reply = dialogue.format_reply("Every bound excludes its own mark.", fixed)
    with LoopbackServer(reply=lambda messages, params: reply) as server:
        result = ledex_fix(project, server)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"+{long_line}" in result.stdout.splitlines()
    diff = "\n".join(
        line
        for line in result.stdout.splitlines()
        if line[:1] in "+-@ " and not line.startswith("─")
    )
    start = diff.index("--- a/")
    patch = diff[start:] + "\n"
    check = subprocess.run(
        ["git", "apply", "--check", "-"], input=patch, text=True, capture_output=True, cwd=project
    )
    assert check.returncode == 0, check.stderr + patch
