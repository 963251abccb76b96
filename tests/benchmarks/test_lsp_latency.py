"""benchmarks/lsp_latency.py runs end to end on one case (a real server, real pytest runs, the
scripted model) and writes the times it measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_lsp_latency_measures_both_ratios_on_one_case(tmp_path):
    out = tmp_path / "times.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "lsp_latency.py"), "--cases", "gradebook_empty_guard",
         "--repeat", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (times,) = json.loads(out.read_text())
    assert times["case"] == "gradebook_empty_guard" and times["notes"] == []
    for name in ("pytest_alone", "save_to_diagnostics", "fix_command", "action_to_edit", "save_to_fix",
                 "prefetch_save_to_fix", "prefetch_action_to_edit"):  # fmt: skip
        (seconds,) = times[name]
        assert 0 < seconds < 300, (name, seconds)
    assert "prefetch on: save->fix / ledex fix" in result.stdout
    # the fix was ready when asked for: the action only delivers it
    assert times["prefetch_action_to_edit"][0] < times["action_to_edit"][0] + 1
