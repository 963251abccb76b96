"""The gold teacher: the known fix of a generated bug, through the same repair loop and the same
sandboxed test runs as a model's reply. Its records must verify for the reason every record does
(the tests passed), its explanation must name the test, the slip and the line, and its reply must be
the repaired definition alone (a short reply is a fast one on a CPU)."""

from __future__ import annotations

from pathlib import Path

from ledex import dialogue
from tests.trainer.test_buggy_projects import account_project
from tests.trainer.test_collect_projects import trajectories
from trainer.buggy_projects import generate
from trainer.collect_projects import ProjectCollectConfig, ProjectCollector
from trainer.gold import _cause


def test_every_gold_reply_is_verified_by_the_tests_and_names_the_line(tmp_path: Path):
    config = ProjectCollectConfig(
        teacher="gold", per_project=3, refinements=1, hint=False,
        output_dir=str(tmp_path / "out"), progress=False, timeout=60.0,
    )  # fmt: skip
    table = ProjectCollector(config).run([account_project()])
    records = trajectories(tmp_path / "out")
    assert table["bugs"] >= 2 and table["repaired"] == table["bugs"] == len(records)
    for record in records:
        reply = dialogue.parse_reply(record.reply)
        assert record.verified and record.teacher == "gold" and not record.hint
        assert "`test_" in record.explanation and "Account.withdraw" in record.explanation
        assert "should be" in record.explanation or "is missing" in record.explanation
        assert "def withdraw" in reply.code and "def untested" not in reply.code  # the fix alone
        assert "def __init__" not in reply.code


def test_the_change_names_the_wrong_line_and_the_right_one():
    source = account_project()
    bugs = {bug.mutation.operator: bug for bug in generate([source], per_project=20, tries=40, seed=0)}

    def change(bug):  # the sentence after the slip's
        return _cause(bug.mutation.function, bug.mutation.operator, *bug.changed_lines()).split(". ", 1)[1]

    assert change(bugs["comparison"]) == "`if amount >= self.balance:` should be `if amount > self.balance:`."
    assert change(bugs["missing-return"]) == "`return self.balance` is missing."


def test_the_refine_style_gets_the_fix_alone(tmp_path: Path):
    config = ProjectCollectConfig(
        teacher="gold", per_project=2, refinements=1, hint=False, styles=["refine"],
        output_dir=str(tmp_path / "out"), progress=False, timeout=60.0,
    )  # fmt: skip
    table = ProjectCollector(config).run([account_project()])
    records = trajectories(tmp_path / "out")
    assert table["repaired"] == table["bugs"] == len(records) >= 1
    for record in records:
        assert record.verified and record.style == "refine" and not record.explanation
        assert record.reply.startswith("```python") and "def withdraw" in record.reply
