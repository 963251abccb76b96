"""Repairing failing tests of real projects: localisation on every benchmark case, verification
and `ledex fix` with a scripted model (the loopback OpenAI server) so outcomes are exact."""

from __future__ import annotations

import json
import os
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
from ledex import dialogue, project_repair
from ledex.models.base import Backend, BackendInfo, Completion, Conversation, Sampling
from ledex.repair import Candidate, RepairConfig, Verdict
from ledex.sandbox.pytest_runner import run_pytest
from tests.support.openai_loopback import LoopbackServer

ROOT = Path(__file__).resolve().parents[2]
CASES = load_cases(ROOT / "benchmarks" / "cases")
EXAMPLE = ROOT / "examples" / "buggy_inventory"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_buggy_function_is_in_the_prompt_for_every_case(case, tmp_path):
    copy_case(case, tmp_path / case.name)
    project = tmp_path / case.name
    run = run_pytest(project, python=sys.executable)
    assert {o.node_id for o in run.failed} == set(case.failing)
    for outcome in run.failed:
        task = project_repair.prepare(project, run, outcome, python=sys.executable)
        assert not isinstance(task, str), task
        names = [task.site.symbol.qualname, *(s.symbol.qualname for s in task.related)]
        assert case.bug_function in names
        prompt, code, failure = project_repair.conversation_parts(task, 20_000)
        assert outcome.node_id in failure and code.strip()
        assert set(task.previously_passing) <= set(case.passing)




def _example_case():
    (case,) = load_cases(ROOT / "examples")
    return case


def _scripted(reply_code: str, explanation: str = "It adds instead of subtracting."):
    return LoopbackServer(reply=lambda messages, params: dialogue.format_reply(explanation, reply_code))


def _ledex_fix(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ledex", "fix", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200"})  # fmt: skip


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_ledex_fix_json_with_a_verified_fix_writes_nothing(tmp_path):
    case = _example_case()
    project = tmp_path / "project"
    copy_case(case, project)
    before = _snapshot(project)
    with _scripted(reference_fix_code(case)) as server:
        result = _ledex_fix(str(project), "--model", f"openai:{server.url}#m", "-n", "1", "--json",
                            "--python", sys.executable)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [f["test"] for f in report["failures"]] == list(case.failing)
    (entry,) = report["results"]
    assert entry["verified"] and entry["rounds"] == 1 and entry["candidates"] == 1
    assert entry["explanation"] == "It adds instead of subtracting."
    assert "-        self._counts[product] = self.count(product) + quantity" in entry["diff"]
    assert entry["files"] == [case.fix_file] and entry["functions"] == ["inventory/stock.py::Inventory.remove"]
    assert _snapshot(project) == before  # nothing written without --apply


def test_ledex_fix_apply_writes_the_verified_fix(tmp_path):
    case = _example_case()
    project = tmp_path / "project"
    copy_case(case, project)
    with _scripted(reference_fix_code(case)) as server:
        result = _ledex_fix(str(project), "--model", f"openai:{server.url}#m", "-n", "1", "--apply",
                            "--python", sys.executable)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "verified fix" in result.stdout and f"wrote {case.fix_file}" in result.stdout
    assert run_pytest(project, python=sys.executable).passes()


def test_a_fix_that_also_fixes_the_next_failing_test_is_reused_without_asking_the_model(tmp_path):
    case = next(c for c in CASES if c.name == "mean_integer_division")  # one bug, two failing tests
    project = tmp_path / "project"
    copy_case(case, project)
    with _scripted(reference_fix_code(case), "It floors the division.") as server:
        result = _ledex_fix(str(project), "--model", f"openai:{server.url}#m", "-n", "1", "--json",
                            "--python", sys.executable)  # fmt: skip
        asked = len(server.chat_requests)
    assert result.returncode == 0, result.stderr
    first, second = json.loads(result.stdout)["results"]
    assert asked == 1  # the second test was fixed by re-verifying the first fix, not by sampling
    assert first["verified"] and second["verified"] and second["fixed_by"] == first["test"]
    assert second["explanation"] == "It floors the division." and second["diff"] == first["diff"]


def test_ledex_fix_reports_an_unverified_attempt_and_exit_1(tmp_path):
    case = _example_case()
    project = tmp_path / "project"
    copy_case(case, project)
    wrong = "def remove(self, product, quantity):\n    self._counts[product] = 0\n"
    with _scripted(wrong, "Reset it.") as server:
        result = _ledex_fix(str(project), "--model", f"openai:{server.url}#m", "-n", "2", "--rounds", "2",
                            "--json", "--python", sys.executable)  # fmt: skip
    assert result.returncode == 1, result.stderr
    (entry,) = json.loads(result.stdout)["results"]
    assert not entry["verified"] and entry["rounds"] == 2 and entry["candidates"] == 4


def test_nothing_failing_exits_0(tmp_path):
    case = _example_case()
    project = copy_case(case, tmp_path / "project")
    apply_reference_fix(case, project)
    result = _ledex_fix(str(project), "--python", sys.executable, "--model", "openai:http://127.0.0.1:9/v1#m")
    assert result.returncode == 0 and "nothing to fix" in result.stdout


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        (lambda p: (p / "tests" / "test_broken.py").write_text("def test_x(:\n"), "could not collect"),
        (lambda p: None, "no such test"),
    ],
)
def test_setup_problems_exit_2_with_one_line(tmp_path, setup, fragment):
    case = _example_case()
    project = tmp_path / "project"
    copy_case(case, project)
    setup(project)
    extra = [] if fragment != "no such test" else ["--test", "tests/test_inventory.py::test_nope"]
    result = _ledex_fix(str(project), "--python", sys.executable, *extra)
    assert result.returncode == 2, result.stdout + result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_model_is_a_setup_error(tmp_path):
    case = _example_case()
    project = tmp_path / "project"
    copy_case(case, project)
    result = _ledex_fix(str(project), "--python", sys.executable, "--model", "openai:http://127.0.0.1:9/v1")
    assert result.returncode == 2 and "unreachable" in result.stderr


def _example_task(tmp_path: Path) -> tuple[Path, project_repair.ProjectTask]:
    """A copy of the example project and the repair task of its first failing test."""
    project = tmp_path / "project"
    copy_case(_example_case(), project)
    run = run_pytest(project, python=sys.executable)
    task = project_repair.prepare(project, run, run.failed[0], python=sys.executable)
    assert isinstance(task, project_repair.ProjectTask), task
    return project, task


def test_a_reply_for_the_wrong_function_is_rejected_not_applied(tmp_path):
    project, task = _example_task(tmp_path)
    verdict = project_repair.ProjectVerifier(task).verify("def unrelated():\n    return 1\n")
    assert verdict.status == "rejected" and "matches no function" in verdict.feedback


def test_the_verifier_says_which_replies_change_nothing_before_running_them(tmp_path):
    """What the loop draws again (`ledex.repair`): a reply whose patched files are the same
    programs as before, however it is formatted or returned; a real change is run, imports too."""
    project, task = _example_task(tmp_path)
    verifier = project_repair.ProjectVerifier(task)
    source = (project / "inventory" / "stock.py").read_text()
    remove = source[source.index("    def remove") :]
    method = "class Inventory:\n" + remove
    top_level = "\n".join(line[4:] for line in remove.splitlines())  # returned as a function
    reformatted = method.replace("self.count(product) + quantity", "self.count( product )+quantity  # same")
    assert all(verifier.unchanged(reply) for reply in (method, top_level, reformatted))
    fixed = method.replace("self.count(product) + quantity", "self.count(product) - quantity")
    assert not verifier.unchanged(fixed) and verifier.verify(fixed).ok
    assert not verifier.unchanged("def unrelated():\n    return 1\n")  # rejected, but not as unchanged
    with_import = "import math\n\n" + method.replace("+ quantity", "+ quantity * math.prod([1])")
    assert not verifier.unchanged(with_import)  # a change, with the import it needs
    # whatever the loop does with them, such replies are rejected as unchanged without a run
    runs = len(verifier.runs)
    for reply in (method, top_level, reformatted):
        verdict = verifier.verify(reply)
        assert verdict.status == "rejected" and "identical" in verdict.feedback
    assert len(verifier.runs) == runs


def test_a_fix_that_breaks_a_passing_test_is_not_verified(tmp_path):
    project, task = _example_task(tmp_path)
    # passes the failing test but no longer raises OutOfStock
    breaking = "def remove(self, product, quantity):\n    self._counts[product] = self.count(product) - quantity\n"
    verdict = project_repair.ProjectVerifier(task).verify(breaking)
    assert not verdict.ok and "breaks a test that passed before" in verdict.feedback


def test_pytest_feedback_masks_object_addresses_so_prompts_are_reproducible():
    from ledex.feedback import pytest_feedback

    report = "E  +  where count = <inventory.stock.Inventory object at 0x7f01c207d890>.count"
    text = pytest_feedback("t.py::test_x", "AssertionError: <Foo object at 0xDEADbeef>", report)
    assert "0x7f01c207d890" not in text and "0xDEADbeef" not in text
    assert text.count("object at 0x...") == 2


def test_the_feedback_leaves_out_frames_outside_the_project_and_position_markers(tmp_path):
    # asyncio.run puts three standard-library frames between the test and the bug
    case = next(c for c in CASES if c.name == "async_portfolio_zip")
    project = copy_case(case, tmp_path / "project")
    run = run_pytest(project, python=sys.executable)
    (outcome,) = run.failed
    assert "asyncio/runners.py" in outcome.longrepr and "^^^" in outcome.longrepr
    text = project_repair.pytest_feedback(outcome)
    assert "[3 frames outside the project not shown]" in text and sys.base_prefix not in text
    assert "asyncio" not in text.replace("asyncio.run(", "") and "^" not in text
    # what the model needs stays: the test line, the frame in the user's code, the error
    assert "quotes/portfolio.py:10: in portfolio_value" in text
    assert "E   TypeError: can't multiply sequence by non-int of type 'float'" in text
    assert len(text) < len(outcome.longrepr) * 0.75


def test_when_the_test_itself_fails_the_function_it_is_named_after_is_the_first_suspect(tmp_path):
    # test_remove_decreases_count: the failing line only reads `count`; the bug is in `remove`
    project = copy_case(_example_case(), tmp_path / "project")
    run = run_pytest(project, python=sys.executable)
    (outcome,) = run.failed
    site = project_repair.locate_site(project, outcome)
    assert site.symbol.qualname == "Inventory.remove" and site.reason == "the failing test calls this function"


def test_a_fix_that_makes_the_failing_test_skip_is_not_verified(tmp_path):
    """Generated code can skip its own test without naming pytest (the screen refuses that):
    `unittest.SkipTest` is a skip to pytest too. No failure, but no pass either."""
    project, task = _example_task(tmp_path)
    source = (project / "inventory" / "stock.py").read_text()
    remove = source[source.index("    def remove") :]
    body = remove.splitlines()[0] + '\n        import unittest\n\n        raise unittest.SkipTest("later")\n'
    verdict = project_repair.ProjectVerifier(task).verify("class Inventory:\n" + body)
    assert not verdict.ok and verdict.passed < verdict.total
    assert "instead of passing" in verdict.feedback and "A skipped test is not a fixed one" in verdict.feedback


class _Recording(Backend):
    """Answers every conversation with `reply` and keeps what it was sent; a small window."""

    def __init__(self, reply: str, window: int) -> None:
        self.info = BackendInfo(spec="recording", model="recording", context_window=window)
        self.reply = reply
        self.sent: list[Conversation] = []

    def generate(self, conversations, sampling=Sampling()):
        self.sent += conversations
        return [[Completion(self.reply) for _ in range(sampling.n)] for _ in conversations]

    def stream(self, conversation, sampling=Sampling()):
        self.sent.append(conversation)
        yield self.reply


def test_a_repair_from_a_refused_fix_keeps_to_the_prompt_budget(tmp_path):
    """The loop started from a candidate (`start`) shows its verdict as the failure: a long one is
    shortened to the budget that the project's own failure was fitted to."""
    project, task = _example_task(tmp_path)
    source = (project / "inventory" / "stock.py").read_text()
    method = "class Inventory:\n" + source[source.index("    def remove") :]
    report = "E   AssertionError: the stock went below zero\n" * 2000  # ~90,000 characters
    start = Candidate(1, 0, "", code=method, verdict=Verdict(0, 1, "failed", report))
    backend = _Recording(dialogue.format_reply("Same.", method), window=2048)
    budget = project_repair.prompt_budget(backend, RepairConfig(n=1, rounds=1))
    project_repair.repair_test(task, backend, RepairConfig(n=1, rounds=1), start=start)
    (sent, *_) = backend.sent
    assert sum(len(m["content"]) for m in sent) <= budget + 500  # the template's own words
    assert "characters left out" in sent[-1]["content"]
