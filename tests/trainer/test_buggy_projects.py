"""Buggy projects from correct code: MBPP problems as pytest projects, bugs kept only when a test
catches them, cases consistent by `benchmarks/cases/check_cases.py`'s own checks, and the held-out
split never touching the training one. Every test run is a real sandboxed pytest run."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.cases.check_cases import check_case, load_case, load_cases
from ledex.errors import LedexError
from trainer import buggy_projects
from trainer.buggy_projects import (
    SourceProject,
    generate,
    heldout_suite,
    mbpp_project,
    mbpp_projects,
)
from trainer.data import mbpp

ROOT = Path(__file__).resolve().parents[2]
MBPP_DIR = ROOT.parent / "shared" / "data" / "mbpp"

ACCOUNT = """\
class Account:
    def __init__(self, balance):
        self.balance = balance

    def withdraw(self, amount):
        if amount > self.balance:
            raise ValueError("insufficient funds")
        self.balance -= amount
        return self.balance


def untested(x):
    return x * 2 + 1
"""
ACCOUNT_TESTS = """\
import pytest

from bank import Account


def test_withdraw_part():
    assert Account(10).withdraw(4) == 6


def test_withdraw_everything():
    assert Account(10).withdraw(10) == 0


def test_overdraft_refused():
    with pytest.raises(ValueError):
        Account(10).withdraw(11)
"""


def account_project(tests: str = ACCOUNT_TESTS) -> SourceProject:
    files = {
        "bank.py": ACCOUNT,
        "tests/test_bank.py": tests,
        "pyproject.toml": buggy_projects.PYPROJECT,
    }
    return SourceProject("bank", files, "test/bank", "MIT")


def test_every_kept_bug_is_caught_by_a_test_and_makes_a_consistent_case(tmp_path):
    bugs = list(generate([account_project()], per_project=3, tries=12, seed=1))
    assert len(bugs) == 3
    assert len({bug.mutation.operator for bug in bugs}) == 3  # spread over operators
    for bug in bugs:
        assert bug.failing and bug.mutation.function.startswith(
            "Account."
        )  # `untested` is never caught
        assert set(bug.failing) | set(bug.passing) == {
            "tests/test_bank.py::test_withdraw_part",
            "tests/test_bank.py::test_withdraw_everything",
            "tests/test_bank.py::test_overdraft_refused",
        }
        report = check_case(load_case(bug.write(tmp_path / bug.name)))
        assert report.ok, report.problems


def test_bugs_in_helpers_are_only_in_functions_the_tests_do_not_call(tmp_path):
    """The bug is one call away from what the failing test calls (the hand-made cases' hardest
    kind): `covers` is never called by a test, `withdraw` is."""
    helped = ACCOUNT.replace("        if amount > self.balance:\n",
                             "        if not covers(self.balance, amount):\n") + (
        "\n\ndef covers(balance, amount):\n    return 0 <= amount <= balance\n")  # fmt: skip
    source = account_project()
    source = SourceProject("bank", {**source.files, "bank.py": helped}, "test/bank", "MIT")
    assert buggy_projects.called_by_tests(source) >= {"Account", "withdraw"}
    bugs = list(generate([source], per_project=3, tries=12, seed=0, bugs="helpers"))
    assert bugs and {bug.mutation.function for bug in bugs} == {"covers"}
    for bug in bugs:
        report = check_case(load_case(bug.write(tmp_path / bug.name)))
        assert report.ok, report.problems
    assert {bug.mutation.function for bug in generate([source], per_project=3, tries=12)} != {"covers"}
    with pytest.raises(ValueError, match="bugs must be one of"):
        list(generate([source], bugs="nowhere"))


def test_a_source_whose_tests_cannot_catch_a_bug_yields_none():
    trivial = "from bank import Account\n\n\ndef test_nothing():\n    assert Account\n"
    assert list(generate([account_project(trivial)], per_project=2, tries=20)) == []


def test_a_source_whose_own_tests_fail_is_skipped():
    failing = ACCOUNT_TESTS.replace("== 6", "== 7")
    assert list(generate([account_project(failing)], per_project=1)) == []


def test_the_same_seed_gives_the_same_bugs():
    first = [bug.name for bug in generate([account_project()], per_project=2, seed=3)]
    again = [bug.name for bug in generate([account_project()], per_project=2, seed=3)]
    assert first == again and len(first) == 2


def test_an_mbpp_problem_becomes_a_project_whose_tests_pass(tmp_path):
    (task,) = [t for t in mbpp.load("train", str(MBPP_DIR)) if t.id == "mbpp/602"]
    project = mbpp_project(task.id, task.reference, task.tests, task.setup, task.entry_point)
    assert project is not None and project.origin == "mbpp/602"
    assert sorted(project.files) == [
        "first_repeated_char.py",
        "pyproject.toml",
        "tests/test_first_repeated_char.py",
    ]
    test_file = project.files["tests/test_first_repeated_char.py"]
    assert "from first_repeated_char import first_repeated_char" in test_file
    assert "def test_first_repeated_char_1():\n    assert first_repeated_char(" in test_file
    (bug,) = generate([project], per_project=1, seed=0)
    report = check_case(load_case(bug.write(tmp_path / bug.name)))
    assert report.ok, report.problems
    case = json.loads((tmp_path / bug.name / "case.json").read_text())
    assert case["origin"] == "mbpp/602" and "CC BY 4.0" in case["licence"]


def test_training_and_held_out_sources_never_share_a_problem():
    train = {p.origin for p in mbpp_projects("train", str(MBPP_DIR))}
    heldout = {p.origin for p in mbpp_projects("heldout", str(MBPP_DIR))}
    assert len(train) > 300 and len(heldout) > 500
    assert not train & heldout
    assert all(601 <= int(origin.split("/")[1]) <= 974 for origin in train)
    assert all(11 <= int(origin.split("/")[1]) <= 600 for origin in heldout)
    with pytest.raises(ValueError, match="unknown use"):
        mbpp_projects("test")


def test_the_held_out_suite_is_written_once_and_reused(tmp_path, monkeypatch):
    cases = heldout_suite(tmp_path / "suite", size=2, path=str(MBPP_DIR))
    assert len(cases) == 2
    loaded = load_cases(tmp_path / "suite")
    assert [case.name for case in loaded] == sorted(path.name for path in cases)
    assert all(case.tags[1:] == ("generated", "mbpp") for case in loaded)
    marker = json.loads((tmp_path / "suite" / "suite.json").read_text())
    assert marker["cases"] == 2 and sum(marker["operators"].values()) == 2

    def no_generation(*args, **kwargs):
        raise AssertionError("a written suite must be reused, not generated again")

    monkeypatch.setattr(buggy_projects, "generate", no_generation)
    assert heldout_suite(tmp_path / "suite", size=2, path=str(MBPP_DIR)) == cases


def test_operators_kept_least_so_far_go_first_so_none_dominates():
    source = account_project()
    candidates = buggy_projects._candidates(source)
    operators = {m.operator for _, m in candidates}
    kept = Counter({op: 5 for op in operators if op != "comparison"})
    order = buggy_projects.spread(candidates, random.Random(0), kept)
    assert order[0][1].operator == "comparison"  # the only one never kept yet
    first_round = [m.operator for _, m in order[: len(operators)]]
    assert sorted(first_round) == sorted(operators)  # one of each before a second of any
    bugs = list(generate([source], per_project=2, tries=12, seed=5, kept=kept))
    assert sum(kept.values()) == 5 * (len(operators) - 1) + 2  # the counts are kept up to date
    assert all(kept[bug.mutation.operator] >= 1 for bug in bugs)


def test_a_suite_folder_of_other_settings_is_refused(tmp_path):
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "suite.json").write_text(json.dumps({"settings": {"generator": 0}}))
    with pytest.raises(LedexError, match="other settings"):
        heldout_suite(tmp_path / "suite", size=2, path=str(MBPP_DIR))
