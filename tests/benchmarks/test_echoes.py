"""benchmarks/echoes.py on a results file written as benchmarks/repair.py writes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import echoes

UNCHANGED = "The fix could not be applied: the fix is identical to the current code"


def candidate(explanation: str, status: str, feedback: str = "") -> dict:
    return {"explanation": explanation, "status": status, "feedback": feedback, "duplicate_of": None}


def test_an_echo_is_a_text_given_as_its_own_fix():
    assert echoes.echoes("`t` fails. `if a >= b:` should be `if a >= b:`.")
    assert echoes.echoes("In `x = y`, `y` should be `y `.")  # trailing whitespace does not count
    assert not echoes.echoes("`if a >= b:` should be `if a > b:`.")
    assert not echoes.echoes("`return x` is missing.") and not echoes.echoes(None)
    # a reply that did not parse: its text before the code
    assert echoes.echoes(None, "`a` should be `a`.\n\n```python\ndef f(:\n```")
    assert echoes.echoes(None, "`a` should be `a`.\n~~~python\ndef f(:\n~~~")  # either fence
    assert not echoes.echoes(None, "`a` should be `b`.\n~~~python\n# `a` should be `a`.\n~~~")


def test_counts_per_model_the_unchanged_candidates_with_and_without_an_echo(tmp_path: Path, capsys):
    rows = [
        {"model": "m", "style": "explain+refine", "test": "t::a", "candidates": [
            candidate("`a` should be `a`.", "rejected", UNCHANGED),
            candidate("`a` should be `a`.", "failed", "assert 1 == 2"),
            candidate("`a` should be `b`.", "rejected", UNCHANGED),
            candidate("`a` should be `b`.", "passed"),
            candidate("`a` should be `b`.", "rejected", "The fix could not be applied: the fix defines test_x"),
        ]},
        {"model": "other", "style": "anchor", "test": "t::a", "candidates": [candidate("", "passed")]},
    ]  # fmt: skip
    counts = echoes.count(rows)
    mine = counts[("m", "explain+refine")]
    assert (mine.candidates, mine.echoed, mine.echoed_unchanged, mine.other_unchanged) == (5, 2, 1, 1)
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert echoes.main([str(results)]) == 0
    lines = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert "5 2 ( 40%) 1/2 ( 50%) 1/3 ( 33%) 1.5x m / explain+refine" in lines
    assert "1 0 ( 0%) 0/0 ( 0%) 0/1 ( 0%) - other / anchor" in lines
    with pytest.raises(SystemExit):
        echoes.main([str(tmp_path / "missing.jsonl")])
