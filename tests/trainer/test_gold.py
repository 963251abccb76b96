"""The gold teacher: the known fix of a generated bug, through the same repair loop and the same
sandboxed test runs as a model's reply. Its records must verify for the reason every record does
(the tests passed), its explanation must name the test, the slip and the line, and its reply must be
the repaired definition alone (a short reply is a fast one on a CPU)."""

from __future__ import annotations

from dataclasses import replace
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


def test_a_problem_reply_quotes_the_changed_line_alone_whatever_the_whitespace_of_the_reference():
    from trainer import gold
    from trainer.data import Task
    from trainer.mutants import mutations
    from trainer.records import Sample

    # MBPP references end lines with spaces; the mutants are made from the stripped text
    reference = "def f(x):   \n    y = x + 1   \n    return y   \n\n"
    task = Task("t/1", "jsonl", "Add one.", ("assert f(1) == 2",), "f", reference=reference)
    mutation = next(m for m in mutations(gold.reference(task)) if m.description == "`+` became `-`")
    sample = Sample(
        key="t/1/x", problem_id="t/1", source="jsonl", code=mutation.apply(gold.reference(task)),
        passed=[False], status="failed", model="mutants", sampling={"operator": "arithmetic", "function": "f"},
        feedback="The code fails this test:\nassert f(1) == 2\nf(1) returned 0, expected 2",
    )  # fmt: skip
    reply = gold.problem_reply(task, sample)
    assert reply.startswith(
        "`assert f(1) == 2` fails (it returned 0, expected 2) because of a bug in `f`: an arithmetic "
        "operator is wrong. `y = x - 1` should be `y = x + 1`."
    )
    assert dialogue.parse_reply(reply).code == reference.strip()


def test_a_student_program_one_line_away_names_the_function_at_that_lines_place():
    """The changed line's text may recur in another function: the explanation names the function
    where the change is, not the first that holds the same text."""
    from trainer import gold
    from trainer.data import Task
    from trainer.records import Sample

    reference = "def g(x):\n    y = x + 1\n    return y\n\ndef f(x):\n    y = g(x) * 2\n    return y\n"
    wrong = reference.replace("g(x) * 2", "g(x) * 3")
    twice = "def g(x):\n    y = x + 1\n    return y\n\ndef f(x):\n    y = x + 1\n    return y\n"
    task = Task("t/2", "jsonl", "Double g.", ("assert f(1) == 4",), "f", reference=reference)

    def cause(code: str) -> str:
        sample = Sample(
            key="t/2/x", problem_id="t/2", source="jsonl", code=code, passed=[False], status="failed",
            model="embedded:0.5b", feedback="The code fails this test:\nassert f(1) == 4\nf(1) returned 6, expected 4",
        )  # fmt: skip
        return gold.problem_reply(task, sample).split("```")[0]

    assert "a bug in `f`" in cause(wrong) and "`y = g(x) * 3` should be `y = g(x) * 2`" in cause(wrong)
    # the wrong line `y = x + 1` also opens g: the change is in f all the same
    assert "a bug in `f`" in cause(twice) and "`y = x + 1` should be `y = g(x) * 2`" in cause(twice)


def test_hidden_feedback_is_explained_without_inventing_a_test():
    """Feedback on hidden tests (`collect --shape signature`, HumanEval's protocol) names no assert:
    the explanation says how many fail and how, in a sentence, not the feedback pasted whole."""
    from ledex.feedback import hidden_feedback
    from trainer import gold
    from trainer.data import Task
    from trainer.records import Sample

    reference = "def f(xs):\n    return sorted(xs)[0]\n"
    task = Task("t/3", "jsonl", "Smallest.", ("assert f([2, 1]) == 1",) * 3, "f", reference=reference)

    def explained(feedback: str) -> str:
        sample = Sample(
            key="t/3/x", problem_id="t/3", source="jsonl", code="def f(xs):\n    xs.sort()\n    return xs[-1]\n",
            passed=[False, False, True], status="failed", model="embedded:0.5b", feedback=feedback,
        )  # fmt: skip
        return gold.problem_reply(task, sample).split("```")[0].strip()

    wrong_value = hidden_feedback(None, 1, 3) + " A returned value is wrong."
    assert explained(wrong_value) == (
        "The code fails 2 of 3 hidden tests (a returned value is wrong) because `f` does not do "
        "what the task asks: it is written again below."
    )
    traceback = "The code fails 3 of 3 hidden tests.\nTraceback (most recent call last):\n  File \"<string>\", line 2, in f\nIndexError: list index out of range"  # fmt: skip
    assert explained(traceback).startswith("The code fails 3 of 3 hidden tests (IndexError: list index out of range) because")  # fmt: skip
    assert explained(hidden_feedback(None, 0, 3)).startswith("The code fails 3 of 3 hidden tests because")  # fmt: skip


def test_a_span_change_quotes_the_wrong_line_then_only_the_tokens_that_differ():
    def change(wrong: str, right: str) -> str:
        return _cause("f", "comparison", [wrong], [right], "span").split(". ", 1)[1]

    assert change("if a > b or c:", "if a > b and c:") == "In `if a > b or c:`, `or` should be `and`."
    # one side empty: widened by the operand before, else by the token after
    assert change("for i in range(n):", "for i in range(n + 1):").endswith("`n` should be `n + 1`.")
    assert change("for i in range(1, n):", "for i in range(n):").endswith("`1, n` should be `n`.")
    # nothing shorter than the line, or a line that is part of a longer statement: the whole lines
    assert change("a = 1", "b = 2 + 3") == "`a = 1` should be `b = 2 + 3`."
    assert change("if (a or", "if (a and") == "`if (a or` should be `if (a and`."
    # a missing line has no span
    assert _cause("f", "missing-return", [], ["return x"], "span").endswith("`return x` is missing.")


def test_a_run_quotes_the_change_as_its_folder_was_started(tmp_path: Path):
    import pytest

    from ledex.errors import LedexError

    out = tmp_path / "out"
    config = ProjectCollectConfig(
        teacher="gold", per_project=1, refinements=1, hint=False, gold_change="span",
        output_dir=str(out), progress=False, timeout=60.0,
    )  # fmt: skip
    ProjectCollector(config).run([account_project()])
    (record,) = trajectories(out)
    assert record.verified and "`, `" in record.explanation  # "In `...`, `>=` should be `>`."
    with pytest.raises(LedexError, match="gold_change='span'"):
        ProjectCollector(replace(config, gold_change="line")).run([account_project()])
    with pytest.raises(ValueError, match="--gold_change"):
        replace(config, gold_change="word").check()
    with pytest.raises(ValueError, match="needs --teacher gold"):
        replace(config, teacher="embedded").check()
