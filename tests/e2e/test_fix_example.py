"""End to end with the real default model: `ledex fix` on the bundled example explains the bug
and finds a fix verified by the example's own tests (seeded, so the run is reproducible here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.cases.check_cases import copy_case, load_cases
from ledex.sandbox.pytest_runner import run_pytest

ROOT = Path(__file__).resolve().parents[2]


def test_ledex_fix_repairs_the_example_with_the_embedded_model(tmp_path):
    (case,) = load_cases(ROOT / "examples")
    project = copy_case(case, tmp_path / "project")
    command = [sys.executable, "-m", "ledex", "fix", str(project), "--json", "-n", "2", "--rounds", "2",
               "--seed", "0", "--python", sys.executable, "--apply", "--no-cache"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert result.returncode == 0, result.stdout + result.stderr
    (entry,) = json.loads(result.stdout)["results"]
    assert entry["verified"] and entry["explanation"]
    assert entry["functions"] == [f"{case.bug_file}::{case.bug_function}"]
    assert run_pytest(project, python=sys.executable).passes()
