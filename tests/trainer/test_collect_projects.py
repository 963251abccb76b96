"""`ledex-train collect_projects` end to end, with a scripted model on a real OpenAI-compatible
loopback server and every candidate verified by real sandboxed pytest runs: the records, the
rationalisation pass, resuming (also from a committed snapshot), and the one property the stage
exists for: the prompt a model is trained on is the prompt `ledex fix` sends for the same bug."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledex import dialogue
from ledex.sandbox import isolation
from tests.support.openai_loopback import LoopbackServer
from tests.trainer.test_buggy_projects import ACCOUNT, account_project
from tests.trainer.test_extracted_helper import BISECT
from trainer import collect_projects
from trainer.buggy_projects import generate, mbpp_project
from trainer.chat_data import load_examples, to_example
from trainer.collect_projects import ProjectCollectConfig, ProjectCollector
from trainer.records import Trajectory, read_records

FIXED = ACCOUNT.split("\n\n\ndef untested")[0] + "\n"  # the class as it was before the bug
EXPLANATION = "The method was changed in one place; this is the original logic."


def right(messages, params) -> str:
    return dialogue.format_reply(EXPLANATION, FIXED)


def wrong_unless_hinted(messages, params) -> str:
    if "Hint: the bug is in" in messages[0]["content"]:
        return right(messages, params)
    return dialogue.format_reply("Maybe this.", FIXED.replace("return self.balance", "return 0"))


def config(tmp_path: Path, server: LoopbackServer, **overrides) -> ProjectCollectConfig:
    settings = {
        "teacher": f"openai:{server.url}#m",
        "per_project": 2,
        "refinements": 2,
        "output_dir": str(tmp_path / "out"),
        "progress": False,
        "timeout": 60.0,
        **overrides,
    }
    return ProjectCollectConfig(**settings)


def trajectories(out: Path) -> list[Trajectory]:
    return list(read_records(out / "trajectories.jsonl", Trajectory))


def test_each_bug_gets_a_verified_repair_in_the_editor_prompt(tmp_path):
    with LoopbackServer(reply=right) as server:
        table = ProjectCollector(config(tmp_path, server)).run([account_project()])
        requests = server.chat_requests
    out = tmp_path / "out"
    bugs = [json.loads(line) for line in (out / "bugs.jsonl").read_text().splitlines()]
    assert len(bugs) == 2 and all(bug["function"].startswith("Account.") for bug in bugs)
    records = trajectories(out)
    assert len(records) == 2 and all(
        r.verified and r.source == "mbpp-bugs" and not r.hint for r in records
    )
    assert len(requests) == 2  # the loop stops at the first verified candidate
    for record, request in zip(records, requests, strict=True):
        # The record rebuilds exactly the conversation the teacher was sent ...
        sent = request.body["messages"]
        assert (
            dialogue.build_conversation(
                record.task, record.wrong_code, record.feedback, style="explain+refine"
            )
            == sent
        )
        # ... and the SFT example is that conversation plus the verified answer.
        example = to_example(record)
        assert example["prompt"] == sent
        assert example["completion"][0]["content"] == dialogue.format_reply(
            EXPLANATION, record.refinement
        )
        assert "class Account" in record.wrong_code and "tests/test_bank.py" in record.feedback
    assert table["bugs"] == 2 and table["repaired"] == 2 and table["repaired_with_hint_only"] == 0
    assert table["timing"]["verified"] == 2 and table["timing"]["verification"] > 0
    assert "| 1 | 2 |" in (out / "table.md").read_text()
    assert table["sandbox"]["mode"] == isolation.mode()  # what verified the repairs
    assert "Verified in the sandbox: " in (out / "table.md").read_text()


def test_the_training_prompt_is_the_prompt_ledex_fix_sends(tmp_path):
    with LoopbackServer(reply=right) as server:
        ProjectCollector(config(tmp_path, server, per_project=1)).run([account_project()])
        collected = server.chat_requests[0].body["messages"]
    (bug,) = generate([account_project()], per_project=1, seed=0)
    project = bug.write(tmp_path / "project")
    (project / "case.json").unlink()
    with LoopbackServer(reply=right) as server:
        command = [
            sys.executable,
            "-m",
            "ledex",
            "fix",
            str(project),
            "--model",
            f"openai:{server.url}#m",
            "-n",
            "2",
            "--rounds",
            "1",
            "--test",
            bug.failing[0],
            "--python",
            sys.executable,
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=300, env=dict(os.environ)
        )
        assert result.returncode == 0, result.stdout + result.stderr
        served = server.chat_requests[0].body["messages"]
    assert served == collected


def test_the_hint_pass_repairs_what_the_teacher_could_not_and_stays_out_of_the_prompt(tmp_path):
    with LoopbackServer(reply=wrong_unless_hinted) as server:
        table = ProjectCollector(config(tmp_path, server, per_project=1)).run([account_project()])
    records = trajectories(tmp_path / "out")
    plain = [r for r in records if not r.hint]
    hinted = [r for r in records if r.hint]
    assert plain and not any(r.verified for r in plain)
    assert hinted and all(r.verified for r in hinted) and all("/hint/" in r.key for r in hinted)
    assert all("Hint" not in r.task and r.task == plain[0].task for r in hinted)
    assert table["repaired"] == 0 and table["repaired_with_hint_only"] == 1


def test_the_fix_hint_alone_shows_the_teacher_the_diff_and_never_the_student(tmp_path):
    def only_with_the_diff(messages, params) -> str:
        shown = messages[0]["content"]
        if "```diff" in shown and "+" in shown.split("```diff")[1]:
            return right(messages, params)
        return dialogue.format_reply("Maybe this.", FIXED.replace("return self.balance", "return 0"))

    overrides = {"per_project": 1, "plain_pass": False, "hint_shows": "fix"}
    with LoopbackServer(reply=only_with_the_diff) as server:
        table = ProjectCollector(config(tmp_path, server, **overrides)).run([account_project()])
        asked = [request.body["messages"][0]["content"] for request in server.chat_requests]
    records = trajectories(tmp_path / "out")
    assert records and all(r.hint and r.verified for r in records)  # one pass, the hinted one
    assert all("```diff" in shown for shown in asked)
    assert all("Hint" not in r.task and "```diff" not in r.task for r in records)
    assert table["repaired"] == 0 and table["repaired_with_hint_only"] == 1
    with pytest.raises(ValueError, match="hint_shows"):
        ProjectCollectConfig(hint_shows="answer").check()
    with pytest.raises(ValueError, match="no_plain_pass"):
        ProjectCollectConfig(plain_pass=False, hint=False).check()


def test_a_rerun_resumes_and_a_fresh_folder_resumes_from_the_committed_snapshot(tmp_path):
    data = tmp_path / "data"
    with LoopbackServer(reply=right) as server:
        ProjectCollector(config(tmp_path, server, data_dir=str(data))).run([account_project()])
        assert len(server.chat_requests) == 2
        ProjectCollector(config(tmp_path, server, data_dir=str(data))).run([account_project()])
        assert len(server.chat_requests) == 2  # nothing asked again
        fresh = config(tmp_path, server, data_dir=str(data), output_dir=str(tmp_path / "fresh"))
        ProjectCollector(fresh).run([account_project()])
        assert len(server.chat_requests) == 2
    snapshot = gzip.decompress((data / "trajectories.jsonl.gz").read_bytes()).decode()
    assert [json.loads(line)["key"] for line in snapshot.splitlines()] == [
        r.key for r in trajectories(tmp_path / "out")
    ]
    assert (tmp_path / "fresh" / "trajectories.jsonl").read_text() == snapshot
    assert "| 1 | 2 |" in (data / "table.md").read_text()
    examples, counts = load_examples(data)  # SFT reads the committed snapshot as it is
    assert counts["used"] == 2 and examples[0]["completion"][0]["content"].startswith(EXPLANATION)


def test_changed_settings_and_held_out_splits_are_refused(tmp_path):
    with LoopbackServer(reply=right) as server:
        ProjectCollector(config(tmp_path, server, per_project=1)).run([account_project()])
        with pytest.raises(collect_projects.LedexError, match="per_project=1 \\(now 2\\)"):
            ProjectCollector(config(tmp_path, server)).run([account_project()])
    with pytest.raises(ValueError, match="held-out"):
        ProjectCollectConfig(split="heldout").check()


def test_a_folder_from_before_shapes_holds_functions_and_refuses_other_shapes(tmp_path):
    with LoopbackServer(reply=right) as server:
        ProjectCollector(config(tmp_path, server, per_project=1)).run([account_project()])
        settings = tmp_path / "out" / "config.json"
        old = json.loads(settings.read_text())
        assert old.pop("shapes") == ["function"] and old.pop("bugs") == "anywhere"
        settings.write_text(json.dumps(old))  # as written before --shapes and --bugs existed
        ProjectCollector(config(tmp_path, server, per_project=1)).run([account_project()])
        with pytest.raises(collect_projects.LedexError, match="shapes=\\['function'\\]"):
            ProjectCollector(config(tmp_path, server, per_project=1, shapes=["method"])).run(
                [account_project()]
            )
    with pytest.raises(ValueError, match="shapes must be among"):
        ProjectCollectConfig(shapes=["class"]).check()


def test_bugs_in_helpers_are_all_one_call_from_the_tests_and_the_folder_keeps_to_them(tmp_path):
    asserts = ["assert find([1, 3, 5, 7], 5) == 2", "assert find([1, 3, 5, 7], 8) == 4",
               "assert find([2, 4], 3) == 1", "assert find([], 1) == 0"]  # fmt: skip
    source = mbpp_project("mbpp/9", BISECT, asserts, "", "find", "extracted-helper")
    assert source is not None
    helper = source.files["find.py"].split("\n\ndef find")[0]  # the helper as extracted

    def fixed_helper(messages, params) -> str:
        return dialogue.format_reply("The helper's comparison was changed.", helper)

    with LoopbackServer(reply=fixed_helper) as server:
        table = ProjectCollector(config(tmp_path, server, per_project=1, bugs="helpers")).run(
            [source]
        )
        assert table["repaired"] == 1
        bugs = [json.loads(line) for line in (tmp_path / "out" / "bugs.jsonl").read_text().splitlines()]
        assert [bug["function"] for bug in bugs] == ["_find_condition"]  # the tests call `find`
        with pytest.raises(collect_projects.LedexError, match="bugs='helpers' \\(now 'anywhere'\\)"):
            ProjectCollector(config(tmp_path, server, per_project=1)).run([source])
    with pytest.raises(ValueError, match="bugs must be one of"):
        ProjectCollectConfig(bugs="tests").check()
