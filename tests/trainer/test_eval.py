"""`ledex-train eval` end to end: a scripted OpenAI-compatible server whose answers are known gives
exact pass@k, success-refinement rates and per-round pass@1 (computed by hand below); resume,
a dying server, the reports, and a real run with the embedded SmolLM2."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ledex import dialogue
from ledex.models.base import Backend
from ledex.models.openai_http import OpenAIBackend
from ledex.repair import RepairConfig, repair_problem
from tests.support.openai_loopback import Failure, LoopbackServer
from trainer import eval as ev
from trainer.data import load_tasks

# HumanEval/0 has_close_elements and HumanEval/1 separate_paren_groups, as the model "answers"
CLOSE_BODY = """\
    for i, a in enumerate(numbers):
        for j, b in enumerate(numbers):
            if i != j and abs(a - b) < threshold:
                return True
    return False
"""
CLOSE_FULL = "def has_close_elements(numbers, threshold):\n" + CLOSE_BODY
PAREN_FULL = """\
def separate_paren_groups(paren_string):
    result, current, depth = [], [], 0
    for c in paren_string:
        if c == '(':
            depth += 1
            current.append(c)
        elif c == ')':
            depth -= 1
            current.append(c)
            if depth == 0:
                result.append(''.join(current))
                current = []
    return result
"""


def fenced(code: str, explanation: str = "") -> str:
    return (f"{explanation}\n\n" if explanation else "") + f"```python\n{code}```"


def paren_wrong(i: int) -> str:
    return f"def separate_paren_groups(paren_string):\n    return ['wrong-{i}']\n"


def first_samples(task: str, index: int) -> str:
    """Samples, by task and index: HumanEval/0 right (full function), wrong, right (body only),
    no code; HumanEval/1 four different wrong answers."""
    if "has_close_elements" in task:
        return [
            fenced(CLOSE_FULL),
            fenced("def has_close_elements(numbers, threshold):\n    return False\n"),
            fenced(CLOSE_BODY),
            "I would rather not write code today.",
        ][index]
    return fenced(paren_wrong(index))


def scripted(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """The scripted model. Refinements, per style (known from the instruction of the last turn):

    explain+refine: fixes every wrong HumanEval/0 sample; HumanEval/1: fixes wrong-0 and wrong-1 in
    round 1, wrong-2 in round 2 (when it sees its own failed round-1 attempt), never wrong-3;
    refine: fixes HumanEval/0 sample 1 (not the no-code one 3) and HumanEval/1 wrong-0; otherwise
    replies without code.
    """
    task = messages[0]["content"]
    if len(messages) == 1:
        return first_samples(task, int(params["seed"]) + int(params["index"]))
    style = "refine" if "without any explanation" in messages[-1]["content"] else "explain+refine"
    wrong = messages[1]["content"]
    marker = re.search(r"wrong-(\d)", wrong)
    if style == "explain+refine":
        if "has_close_elements" in task:
            return fenced(CLOSE_FULL, "The loop never compared the numbers.")
        assert marker is not None
        n = int(marker.group(1))
        second_round = len(messages) == 5
        if n in (0, 1) or (n == 2 and second_round and "still-wrong-2" in messages[3]["content"]):
            return fenced(PAREN_FULL, "It returned a constant list.")
        return fenced(paren_wrong(0).replace("wrong-0", f"still-wrong-{n}"), "Oops.")
    if "has_close_elements" in task and "return False" in wrong:
        return fenced(CLOSE_FULL)
    if marker is not None and marker.group(1) == "0":
        return fenced(PAREN_FULL)
    return "Sorry, I cannot fix this."


@pytest.fixture
def server():
    with LoopbackServer(reply=scripted) as server:
        yield server


def config(tmp_path: Path, server: LoopbackServer, **overrides: Any) -> ev.EvalConfig:
    settings: dict[str, Any] = dict(
        source="humaneval",
        model=f"openai:{server.url}#loopback-model",
        samples=4,
        k=[1, 2, 10],
        limit=2,
        rounds=1,
        output_dir=str(tmp_path / "out"),
        batch_size=4,
        progress=False,
        workers=2,
    )
    settings.update(overrides)
    return ev.EvalConfig(**settings)


def test_pass_at_k_and_success_refinement_rate_are_exact(tmp_path: Path, server: LoopbackServer):
    results = ev.run_eval(config(tmp_path, server))
    assert results["tasks"] == 2 and results["samples"] == 8
    assert (results["correct"], results["wrong"], results["samples_without_code"]) == (2, 6, 1)
    # before: HumanEval/0 2 of 4 correct, HumanEval/1 0 of 4.
    # pass@1 = mean(c/n) = (0.5 + 0) / 2; pass@2 = mean(1 - C(n-c,2)/C(n,2)) = (1 - 1/6 + 0) / 2
    assert results["before"]["pass@1"] == pytest.approx(0.25)
    assert results["before"]["pass@2"] == pytest.approx(5 / 12)
    assert results["before"]["pass@10"] is None  # k > n is not reported
    er = results["styles"]["explain+refine"]["rounds"][0]
    # explain+refine fixes both wrong HumanEval/0 samples and 2 of 4 HumanEval/1: c = 4 and 2
    assert er["refined"] == 4 and er["success_refinement_rate"] == pytest.approx(4 / 6)
    assert er["pass@1"] == pytest.approx((1 + 0.5) / 2)
    assert er["pass@2"] == pytest.approx((1 + (1 - 1 / 6)) / 2)
    rf = results["styles"]["refine"]["rounds"][0]
    # refine fixes one of each: c = 3 and 1
    assert rf["refined"] == 2 and rf["success_refinement_rate"] == pytest.approx(2 / 6)
    assert rf["pass@1"] == pytest.approx((0.75 + 0.25) / 2)
    assert rf["pass@2"] == pytest.approx((1 + (1 - 3 / 6)) / 2)
    assert results["styles"]["refine"]["refinements_without_code"] == 4

    asked = [
        r.body["messages"][0]["content"]
        for r in server.chat_requests
        if len(r.body["messages"]) == 1
    ]
    assert len(asked) == 2 and "def has_close_elements" in asked[0]
    assert "0.05) == False" not in asked[0]  # HumanEval's tests stay hidden from the first prompt
    refinements = [r.body["messages"] for r in server.chat_requests if len(r.body["messages"]) > 1]
    assert refinements
    for messages in refinements:  # ... and from every refinement turn: no assert, no checked value
        text = "\n".join(m["content"] for m in messages if m["role"] == "user")
        assert "assert " not in text and "0.05) == False" not in text and "expected" not in text
        assert "hidden tests." in messages[2]["content"]

    out = tmp_path / "out"
    assert json.loads((out / "results.json").read_text())["before"] == results["before"]
    md = (out / "results.md").read_text()
    assert "| Prompt style | Pass@1 | Pass@2 | Pass@10 | Success refinement rate |" in md
    assert "| explain+refine | 25.00 → 75.00 (+50.00) | 41.67 → 91.67 (+50.00) | — | 66.67 |" in md
    assert "| refine | 25.00 → 50.00 (+25.00) | 41.67 → 75.00 (+33.33) | — | 33.33 |" in md
    for name in ("pass_at_1_by_round.png", "pass_at_k.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / name).stat().st_size > 5000
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["key"] for s in samples if s["task_id"] == "HumanEval/0"] == [
        f"HumanEval/0/{i}" for i in range(4)
    ]
    no_code = next(s for s in samples if s["key"] == "HumanEval/0/3")
    assert no_code["parse_error"] and no_code["status"] != "passed"
    body_only = next(s for s in samples if s["key"] == "HumanEval/0/2")
    assert body_only["status"] == "passed" and body_only["code"].startswith(
        "from typing import List"
    )


def test_iterative_rounds_carry_the_history_and_give_pass_at_1_per_round(tmp_path: Path, server):
    results = ev.run_eval(config(tmp_path, server, rounds=2, styles=["explain+refine"], k=[1]))
    rounds = results["styles"]["explain+refine"]["rounds"]
    assert [r["refined"] for r in rounds] == [4, 5]  # wrong-2 is fixed in round 2
    assert rounds[0]["pass@1"] == pytest.approx((1 + 0.5) / 2)
    assert rounds[1]["pass@1"] == pytest.approx((1 + 0.75) / 2)
    round_two = [r.body for r in server.chat_requests if len(r.body["messages"]) == 5]
    # only the two samples still wrong after round 1 get a round 2, each with its own history
    assert len(round_two) == 2
    for body in round_two:
        turns = body["messages"]
        assert "still-wrong" in turns[3]["content"] and "fails 4 of 4 hidden tests" in turns[4]["content"]
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| explain+refine | 25.00 | 75.00 | 87.50 |" in md


def test_a_round_asks_what_repair_problem_asks(tmp_path: Path, server: LoopbackServer):
    """The batched refinement is the repair loop: round 1's prompt equals `repair_problem`'s
    (with the tests shown, as `repair_problem` shows them; hidden tests stay hidden in eval)."""
    ev.run_eval(config(tmp_path, server, styles=["refine"], samples=2, limit=1, k=[1], show_tests=True))
    ours = [r.body["messages"] for r in server.chat_requests if len(r.body["messages"]) == 3]
    assert len(ours) == 1
    sample = json.loads((tmp_path / "out" / "samples.jsonl").read_text().splitlines()[1])
    task = load_tasks("humaneval", limit=1)[0]
    backend = OpenAIBackend(server.url, "loopback-model")
    before = len(server.chat_requests)
    result = repair_problem(
        task.problem(sample["code"]), backend, RepairConfig(n=1, rounds=1, style="refine")
    )
    backend.close()
    theirs = server.chat_requests[before].body["messages"]
    assert theirs == ours[0]
    assert result.verified  # the scripted fix passes there too


def test_a_rerun_skips_finished_work_and_grows_with_more_samples(tmp_path: Path, server):
    first = ev.run_eval(config(tmp_path, server))
    requests = len(server.chat_requests)
    # 2 sample requests (n=4 each) + 6 wrong samples x 2 styles
    assert requests == 2 + 12
    loaded = []

    def load() -> Backend:
        loaded.append(1)
        raise AssertionError("the model was loaded")

    again = ev.run_eval(config(tmp_path, server), backend=load)
    assert len(server.chat_requests) == requests and loaded == []  # the model was not even loaded
    assert again["before"] == first["before"] and again["styles"] == first["styles"]
    # one more task: only its samples and refinements are new
    ev.run_eval(config(tmp_path, server, limit=3))
    new = server.chat_requests[requests:]
    assert [len(r.body["messages"]) for r in new].count(1) == 1
    assert all(
        "HumanEval/2" in json.dumps(r.body) or "truncate_number" in json.dumps(r.body) for r in new
    )


def test_other_settings_in_the_same_folder_are_refused(tmp_path: Path, server):
    ev.run_eval(config(tmp_path, server, rounds=0))
    with pytest.raises(ev.EvalError, match="temperature=0.8 there, 0.2 now"):
        ev.run_eval(config(tmp_path, server, rounds=0, temperature=0.2))


def test_a_dying_server_is_a_clear_error_and_the_rerun_resumes(tmp_path: Path, server, capsys):
    args = [
        "--model",
        f"openai:{server.url}#loopback-model",
        "--samples",
        "4",
        "--limit",
        "2",
        "--k",
        "1",
        "--output_dir",
        str(tmp_path / "out"),
        "--batch_size",
        "2",
        "--progress",
        "false",
    ]

    def dying(messages, params):
        # 4 sample requests (n=2 each), then a batch of 2 refinements; then every request fails
        if len(server.chat_requests) == 6:
            server.fail(*[Failure(status=400, message="the model crashed")] * 100)
        return scripted(messages, params)

    server.reply = dying
    assert ev.main(args) == 1
    err = capsys.readouterr().err
    assert "ledex-train eval: error:" in err and "the model crashed" in err
    assert "kept 8 samples and 2 refinements" in err and "resume" in err
    assert not (tmp_path / "out" / "results.json").exists()
    kept = (tmp_path / "out" / "refinements.jsonl").read_text().splitlines()
    assert len(kept) == 2

    server.failures.clear()
    server.reply = scripted
    before = len(server.chat_requests)
    assert ev.main(args) == 0
    redone = server.chat_requests[before:]
    assert len(redone) == 12 - 2  # neither the samples nor the kept refinements again
    out = capsys.readouterr().out
    assert "| explain+refine | 25.00 → 75.00 (+50.00) | 66.67 |" in out


def test_a_dead_server_from_the_start(tmp_path: Path):
    with LoopbackServer() as gone:
        url = gone.url
    code = ev.main(
        [
            "--model",
            f"openai:{url}#m",
            "--samples",
            "1",
            "--limit",
            "1",
            "--output_dir",
            str(tmp_path / "out"),
            "--progress",
            "false",
        ]
    )
    assert code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "nope"], "unknown source 'nope'"),
        (["--styles", "explain"], "unknown style 'explain'"),
        (["--samples", "0"], "--samples must be at least 1"),
        (["--k", "0"], "--k values must be at least 1"),
        (["--bogus", "1"], "--bogus"),
    ],
)
def test_bad_settings_are_usage_errors(args: list[str], message: str, capsys):
    assert ev.main(args) == 2
    assert message in capsys.readouterr().err


def test_a_yaml_config_file(tmp_path: Path, server: LoopbackServer):
    path = tmp_path / "eval.yaml"
    path.write_text(
        f"model: openai:{server.url}#loopback-model\nsamples: 2\nlimit: 1\nk: [1]\n"
        f"styles: [refine]\noutput_dir: {tmp_path / 'out'}\nprogress: false\n"
    )
    assert ev.main(["--config", str(path), "--samples", "4"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["settings"]["samples"] == 4 and list(results["styles"]) == ["refine"]


@pytest.mark.model
def test_a_real_run_with_smollm2(tmp_path: Path, smollm2_path: Path):
    """The embedded path end to end: real generation, real sandbox, real reports (SmolLM2 fixes
    little, so the numbers are only checked to be consistent)."""
    out = tmp_path / "out"
    code = ev.main(
        [
            "--model",
            "embedded:smollm2-135m",
            "--samples",
            "2",
            "--limit",
            "2",
            "--max_tokens",
            "64",
            "--output_dir",
            str(out),
            "--n_ctx",
            "4096",
            "--progress",
            "false",
            "--k",
            "1",
            "--n_threads",
            "1",  # on a shared, busy machine llama.cpp's spinning threads crawl
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["samples"] == 4 and results["correct"] + results["wrong"] == 4
    for style in dialogue.STYLES:
        data = results["styles"][style]
        assert data["refinements"] == results["wrong"]
        assert results["before"]["pass@1"] <= data["rounds"][0]["pass@1"] <= 1
    assert results["timing"]["completions_generated"] == 4 + 2 * results["wrong"]
    assert (out / "results.md").exists() and (out / "pass_at_1_by_round.png").exists()
    records = [json.loads(line) for line in (out / "refinements.jsonl").read_text().splitlines()]
    assert len(records) == 2 * results["wrong"] and all(r["reply"] for r in records)


def test_mbpp_test_split_shows_the_tests_and_scores_the_references(tmp_path: Path):
    """MBPP through the same path: its first prompt shows the tests (MBPP's standard prompt); a
    model that answers with the reference for the first sample and a wrong one after scores
    pass@1 = 1/2 exactly."""
    tasks = {t.id: t for t in load_tasks("mbpp", split="test", limit=3)}

    def reply(messages, params):
        task = next(t for t in tasks.values() if t.description in messages[0]["content"])
        if len(messages) > 1 or params["index"] == 0:
            return fenced(task.reference.strip() + "\n")
        return fenced(f"def {task.entry_point}(*args):\n    return None\n")

    with LoopbackServer(reply=reply) as server:
        results = ev.run_eval(config(tmp_path, server, source="mbpp", limit=3, samples=2, k=[1, 2]))
        first = [r.body["messages"][0]["content"] for r in server.chat_requests]
    assert results["settings"]["split"] == "test" and results["tasks"] == 3
    assert results["before"]["pass@1"] == pytest.approx(0.5)
    assert results["before"]["pass@2"] == pytest.approx(1.0)
    for style in dialogue.STYLES:  # the reference as the refinement fixes every wrong sample
        assert results["styles"][style]["rounds"][0]["success_refinement_rate"] == 1.0
    # requests are not in task order: look for task 11's first prompt among them
    assert any('assert remove_Occ("hello","l") == "heo"' in text for text in first)


def test_a_torn_last_record_is_redone_alone(tmp_path: Path, server: LoopbackServer):
    """A run killed mid-write leaves half a line: the rerun regenerates that one sample only."""
    first = ev.run_eval(config(tmp_path, server))
    path = tmp_path / "out" / "samples.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    assert json.loads(lines[-1])["key"] == "HumanEval/1/3"
    path.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    before = len(server.chat_requests)
    again = ev.run_eval(config(tmp_path, server))
    (request,) = server.chat_requests[before:]
    assert (request.body.get("n", 1), request.body["seed"]) == (1, 3)  # sample 3, its own seed
    assert again["before"] == first["before"] and again["styles"] == first["styles"]
    assert len(path.read_text().splitlines()) == 8


def fixes_everything(messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    """A better model for the paired comparison: explain+refine fixes every wrong sample."""
    if len(messages) > 1 and "without any explanation" not in messages[-1]["content"]:
        full = CLOSE_FULL if "has_close_elements" in messages[0]["content"] else PAREN_FULL
        return fenced(full, "Fixed.")
    return scripted(messages, params)


def test_a_paired_comparison_refines_the_same_samples_and_tests_the_difference(tmp_path: Path, server, capsys):
    from trainer import compare

    base = ev.run_eval(config(tmp_path / "a", server))
    with LoopbackServer(reply=fixes_everything) as better:
        other = ev.run_eval(config(tmp_path / "b", better, samples_from=str(tmp_path / "a" / "out")))
        assert all(len(r.body["messages"]) > 1 for r in better.chat_requests)  # no sampling: reused
    assert other["before"] == base["before"]
    code = compare.main(["--runs", str(tmp_path / "a" / "out"), str(tmp_path / "b" / "out")])
    assert code == 0
    result = json.loads((tmp_path / "b" / "out" / "compare.json").read_text())
    assert result["wrong"] == 6 and result["pass@1_before"] == pytest.approx(0.25)
    er = result["styles"]["explain+refine"]
    assert [a["refined"] for a in er["arms"]] == [4, 6] and er["ratio"] == pytest.approx(1.5)
    assert (er["fixed_by_base_only"], er["fixed_by_other_only"]) == (0, 2)
    assert er["mcnemar_p"] == pytest.approx(0.5)  # 2 discordant pairs, both one way: 2 * 0.5**2
    low, high = er["arms"][0]["ci95"]
    assert low < 4 / 6 < high and er["arms"][1]["ci95"][1] == pytest.approx(1.0)
    rf = result["styles"]["refine"]
    assert rf["ratio"] == pytest.approx(1.0) and rf["mcnemar_p"] == 1.0
    assert "| explain+refine | 1.50× | 0 | 2 | 0.5 |" in capsys.readouterr().out


def test_unpaired_runs_and_missing_samples_are_refused(tmp_path: Path, server, capsys):
    from trainer import compare

    ev.run_eval(config(tmp_path / "a", server, samples=2))
    with pytest.raises(ev.EvalError, match="lacks 4 of the 8 samples"):
        ev.run_eval(config(tmp_path / "b", server, samples_from=str(tmp_path / "a" / "out")))
    ev.run_eval(config(tmp_path / "c", server, samples=2, limit=1))
    assert compare.main(["--runs", str(tmp_path / "a" / "out"), str(tmp_path / "c" / "out")]) == 1
    assert "must be paired" in capsys.readouterr().err
