"""`ledex-train collect` end to end: a real OpenAI-compatible server on loopback with scripted
replies (exact Table 1 numbers), resume after a torn write and after kill -9, a dead server, and
one real run with the embedded SmolLM2 model. Every solution runs in the real sandbox."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ledex import dialogue
from ledex.sandbox import isolation
from tests.support.openai_loopback import LoopbackServer
from trainer import collect
from trainer.data import load_tasks
from trainer.prompts import task_text
from trainer.records import Sample, Trajectory, read_records

ROOT = Path(__file__).resolve().parents[2]
MBPP_DIR = ROOT.parent / "shared" / "data" / "mbpp"

PROBLEMS = [
    {"id": "add", "description": "Add two numbers.", "tests": ["assert add(1, 2) == 3", "assert add(2, 0) == 2"], "entry_point": "add"},  # fmt: skip
    {"id": "mul", "description": "Multiply two numbers.", "tests": ["assert mul(2, 3) == 6"], "entry_point": "mul"},  # fmt: skip
    {"id": "rev", "description": "Print the input line reversed.", "tests": [{"input": "abc\n", "output": "cba\n"}]},  # fmt: skip
]


def fenced(code: str, before: str = "") -> str:
    return f"{before}\n\n```python\n{code}\n```" if before else f"```python\n{code}\n```"


# Sampled solutions, by problem, by candidate index (k = 4).
SOLUTIONS = {
    "Add two": [
        fenced("def add(a, b):\n    return a + b"),  # correct
        "def add(a, b):\n    return a - b",  # wrong, unfenced
        fenced("def add(a, b):\n    # subtract\n    return a - b", "Here:"),  # the same, by AST
        fenced("def add(a, b):\n    return 0"),  # wrong
    ],
    "Multiply": [
        fenced("def mul(a, b):\n    return a + b"),  # wrong
        "I cannot solve this.",  # no code
        fenced("def mul(a, b):\n    return a + b"),
        "I cannot solve this.",
    ],
    "reversed": [
        fenced("print(input()[::-1])"),  # correct
        fenced("print(input())"),  # wrong
        fenced("print(input()[::-1])"),
        fenced("print(input()[::-1])"),
    ],
}


def refinement(wrong: str, style: str, index: int) -> str:
    """The teacher (m = 3): fixes `a - b` with its first reply in both styles, fixes `mul` only
    when asked to explain (second reply), never fixes `return 0` or the stdin program."""
    explain = style == "explain+refine"
    if "a - b" in wrong:
        return [
            fenced("def add(a, b):\n    return a + b", "It subtracts instead of adding." if explain else ""),  # fmt: skip
            fenced("def add(a, b):\n    return a - b + 0"),  # still wrong, passes one test
            "No idea.",
        ][index]
    if "def mul" in wrong:
        if explain and index == 1:
            return fenced("def mul(a, b):\n    return a * b", "It adds instead of multiplying.")
        return fenced("def mul(a, b):\n    return a ** b")
    if "return 0" in wrong:
        return fenced("def add(a, b):\n    return 1")
    return fenced("print(input()[::1])")


def scripted(messages, params) -> str:
    if len(messages) == 1:  # a solution is asked for
        key = next(k for k in SOLUTIONS if k in messages[0]["content"])
        return SOLUTIONS[key][params["index"]]
    style = "refine" if "without any explanation" in messages[2]["content"] else "explain+refine"
    return refinement(messages[1]["content"], style, params["index"])


EXPECTED_TABLE = {
    "problems": 3,
    "problems_with_samples": 3,
    "unique_solutions": 6,  # add: 3 (a duplicate dropped), mul: 1, rev: 2
    "correct": 2,
    "wrong": 4,
    "wrong_refined": 2,  # add's `a - b` and mul
    "refinement_rate": 0.5,
    "styles": {
        "explain+refine": {"refinements": 12, "verified": 2, "wrong_refined": 2, "refinement_rate": 0.5},  # fmt: skip
        "refine": {"refinements": 12, "verified": 1, "wrong_refined": 1, "refinement_rate": 0.25},
    },
}


@pytest.fixture
def problems(tmp_path) -> Path:
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    return path


@pytest.fixture
def server():
    with LoopbackServer(reply=scripted) as running:
        yield running


def args(problems: Path, url: str, out: Path, *extra: str) -> list[str]:
    return [
        "--source", "jsonl", "--path", str(problems), "--model", f"openai:{url}#loopback-model",
        "--samples", "4", "--refinements", "3", "--styles", "explain+refine", "refine",
        "--output_dir", str(out), "--batch_size", "1", "--workers", "2", "--no_progress",
        *extra,
    ]  # fmt: skip


def table_of(out: Path) -> dict:
    table = json.loads((out / collect.TABLE_JSON).read_text())
    return {k: v for k, v in table.items() if k not in ("timing", "settings", "sandbox")}


def keys(path: Path) -> list[str]:
    return [json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip()]


def test_collect_end_to_end_gives_the_exact_table(tmp_path, problems, server, capsys):
    out = tmp_path / "run"
    assert collect.main(args(problems, server.url, out)) == 0
    printed = capsys.readouterr().out
    assert "| 3 | 6 | 2 | 4 | 2 | 50.0% |" in printed
    assert "% of wall time" in printed
    assert table_of(out) == EXPECTED_TABLE
    assert (out / collect.TABLE_MD).read_text() == printed
    timing = json.loads((out / collect.TABLE_JSON).read_text())["timing"]
    assert timing["programs_verified"] > 0 and 0 < timing["verification_share"] < 1
    sandbox = json.loads((out / collect.TABLE_JSON).read_text())["sandbox"]  # what verified it
    assert sandbox["mode"] == isolation.mode() and f"Verified in the sandbox: {sandbox['summary']}" in printed

    samples = {s.key: s for s in read_records(out / "samples.jsonl", Sample)}
    assert Counter(s.problem_id for s in samples.values()) == {"add": 3, "mul": 1, "rev": 2}
    by_code = {(s.problem_id, s.code): s for s in samples.values()}
    minus = by_code[("add", "def add(a, b):\n    return a - b")]
    assert (minus.passed, minus.status) == ([False, True], "failed")
    assert "add(1, 2) returned -1, expected 3" in minus.feedback
    assert minus.model == f"openai:{server.url}#loopback-model"
    assert minus.sampling["n"] == 4 and minus.sampling["temperature"] == 1.0 and minus.seed == 0
    assert by_code[("rev", "print(input()[::-1])")].correct
    assert by_code[("rev", "print(input())")].status == "failed"

    trajectories = list(read_records(out / "trajectories.jsonl", Trajectory))
    assert len(trajectories) == 24 == len({t.key for t in trajectories})
    first = next(t for t in trajectories if t.key == f"{minus.key}/explain+refine/0")
    assert first.verified and first.explanation == "It subtracts instead of adding."
    assert first.refinement == "def add(a, b):\n    return a + b"
    assert first.teacher == minus.model and first.sampling["temperature"] == 0.8
    half = next(t for t in trajectories if t.key == f"{minus.key}/refine/1")
    assert (half.passed, half.pass_fraction, half.verified) == ([False, True], 0.5, False)
    unparsed = next(t for t in trajectories if t.key == f"{minus.key}/refine/2")
    assert unparsed.status == collect.UNPARSED and unparsed.parse_error and not unparsed.refinement
    # the prompt on record is the prompt that was sent, rebuilt by dialogue.py
    tasks = {t.id: t for t in load_tasks("jsonl", path=str(problems))}
    assert first.task == task_text(tasks["add"], 3)
    sent = [r.body["messages"] for r in server.chat_requests if len(r.body["messages"]) > 1]
    rebuilt = dialogue.build_conversation(first.task, first.wrong_code, first.feedback, style="explain+refine")  # fmt: skip
    assert rebuilt in sent
    # correct solutions are never sent for refinement
    correct = [s.code for s in samples.values() if s.correct]
    assert not [m for m in sent if any(code in m[1]["content"] for code in correct)]

    # a rerun finds everything done: no request, no new record, the same table
    before = len(server.chat_requests)
    assert collect.main(args(problems, server.url, out)) == 0
    assert len(server.chat_requests) == before
    assert len(keys(out / "trajectories.jsonl")) == 24 and table_of(out) == EXPECTED_TABLE


def test_resume_after_a_torn_write_gives_the_same_records_and_table(tmp_path, problems, server):
    full = tmp_path / "full"
    assert collect.main(args(problems, server.url, full)) == 0
    # What a kill during the second batch leaves: the first problem's records, and half a line.
    cut = tmp_path / "cut"
    cut.mkdir()
    shutil.copy(full / collect.CONFIG_FILE, cut)
    lines = {name: (full / name).read_text().splitlines(keepends=True) for name in ("samples.jsonl", "trajectories.jsonl", "problems.jsonl")}  # fmt: skip
    add_samples = [line for line in lines["samples.jsonl"] if '"problem_id": "add"' in line]
    (cut / "samples.jsonl").write_text("".join(add_samples))
    (cut / "problems.jsonl").write_text(lines["problems.jsonl"][0])
    (cut / "trajectories.jsonl").write_text("".join(lines["trajectories.jsonl"][:5]) + lines["trajectories.jsonl"][5][:70])  # fmt: skip

    assert collect.main(args(problems, server.url, cut)) == 0
    assert table_of(cut) == table_of(full) == EXPECTED_TABLE
    for name in ("samples.jsonl", "trajectories.jsonl", "problems.jsonl"):
        assert len(keys(cut / name)) == len(set(keys(cut / name)))
        assert sorted((cut / name).read_text().splitlines()) == sorted((full / name).read_text().splitlines())  # fmt: skip


def test_kill_9_mid_run_loses_at_most_the_batch_in_flight(tmp_path, problems):
    arrived, release = threading.Event(), threading.Event()

    def blocking(messages, params):
        if len(messages) == 1 and "Multiply" in messages[0]["content"]:
            arrived.set()  # the second batch started: the first is on disk
            release.wait(60)
        return scripted(messages, params)

    out = tmp_path / "run"
    with LoopbackServer(reply=blocking) as server:
        command = [sys.executable, "-m", "trainer.cli", "collect", *args(problems, server.url, out)]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        try:
            assert arrived.wait(120), process.communicate(timeout=5)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
            release.set()
        assert process.returncode == -signal.SIGKILL
        assert Counter(json.loads(line)["problem_id"] for line in (out / "samples.jsonl").read_text().splitlines()) == {"add": 3}  # fmt: skip
        assert len(keys(out / "trajectories.jsonl")) == 2 * 2 * 3  # add's two wrong, two styles, m=3
        assert collect.main(args(problems, server.url, out)) == 0
    assert table_of(out) == EXPECTED_TABLE
    for name in ("samples.jsonl", "trajectories.jsonl", "problems.jsonl"):
        assert len(keys(out / name)) == len(set(keys(out / name)))


def test_a_dead_model_server_is_a_clear_error_and_keeps_what_was_written(tmp_path, problems, capsys):  # fmt: skip
    out = tmp_path / "run"
    with LoopbackServer(reply=scripted) as server:
        url = server.url
        assert collect.main([*args(problems, url, out), "--limit", "1"]) == 0
    written = {name: (out / name).read_bytes() for name in ("samples.jsonl", "trajectories.jsonl")}
    capsys.readouterr()
    assert collect.main(args(problems, url, out)) == 1  # the server is gone now
    error = capsys.readouterr().err
    assert "ledex-train collect: error: model server at" in error and "unreachable" in error
    assert f"kept in {out}" in error
    assert {name: (out / name).read_bytes() for name in written} == written


def test_settings_that_shape_records_cannot_change_on_resume(tmp_path, problems, server, capsys):
    out = tmp_path / "run"
    assert collect.main([*args(problems, server.url, out), "--limit", "1"]) == 0
    assert collect.main([*args(problems, server.url, out), "--limit", "1", "--samples", "5"]) == 1
    assert "samples=4 (now 5)" in capsys.readouterr().err


def test_bad_settings_are_usage_errors(tmp_path, problems, server, capsys):
    assert collect.main([*args(problems, server.url, tmp_path / "a"), "--samples", "0"]) == 2
    assert collect.main([*args(problems, server.url, tmp_path / "b")[:-1], "--styles", "poem"]) == 2
    assert "--styles must be among" in capsys.readouterr().err


def test_yaml_config_and_few_shot_prompts_for_base_models(tmp_path, problems, server, monkeypatch):
    monkeypatch.setenv("LEDEX_MBPP_PATH", str(MBPP_DIR))
    config = tmp_path / "collect.yaml"
    config.write_text(
        f"source: jsonl\npath: {problems}\nmodel: openai:{server.url}#loopback-model\n"
        f"samples: 4\nrefinements: 0\nchat: false\nshots: 3\nlimit: 1\n"
        f"output_dir: {tmp_path / 'run'}\nprogress: false\n"
    )
    assert collect.main(["--config", str(config)]) == 0
    (request,) = server.chat_requests
    messages = request.body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3 + ["user"]
    assert "similar elements" in messages[0]["content"]  # MBPP task 2, the paper's first shot
    assert messages[1]["content"].startswith("```python\ndef similar_elements")
    assert request.body["n"] == 4 and request.body["temperature"] == 1.0
    assert table_of(tmp_path / "run")["styles"]["explain+refine"]["refinements"] == 0


@pytest.mark.model
@pytest.mark.timeout(1200)  # minutes on a loaded 2-core machine; seconds on an idle one
def test_a_real_run_with_the_embedded_smollm2(tmp_path, smollm2_path, capsys):
    out = tmp_path / "run"
    argv = [
        "--source", "mbpp", "--path", str(MBPP_DIR), "--limit", "2", "--model",
        "embedded:smollm2-135m", "--samples", "2", "--refinements", "1", "--max_tokens", "96",
        "--n_ctx", "2048", "--n_threads", "1", "--output_dir", str(out), "--workers", "2", "--no_progress",
    ]  # fmt: skip
    assert collect.main(argv) == 0
    print(capsys.readouterr().out, file=sys.stderr)  # the table, for the log
    table = table_of(out)
    samples = list(read_records(out / "samples.jsonl", Sample))
    trajectories = list(read_records(out / "trajectories.jsonl", Trajectory))
    assert table["problems"] == 2 and table["unique_solutions"] == len(samples) <= 4
    assert {s.problem_id for s in samples} <= {"mbpp/601", "mbpp/602"}
    assert table["correct"] + table["wrong"] == len(samples)
    assert len(trajectories) == table["wrong"]  # m = 1, one style
    assert all(s.model == "embedded:smollm2-135m" and len(s.passed) == 3 for s in samples)
    assert all(t.teacher == "embedded:smollm2-135m" and t.reply for t in trajectories)
    assert len({t.key for t in trajectories}) == len(trajectories)


def test_mutants_answered_by_the_gold_teacher_are_ledex_data_made_without_a_model(tmp_path):
    """`--model mutants --teacher gold`: wrong solutions are MBPP-train references with one bug, each
    answered with the reference after an explanation naming the failing assert, the slip and the
    line, in LeDex's prompt; every record is verified by running the tests. The committed snapshot
    trains as it is, and a run on a fresh machine resumes from it with nothing to add."""
    from trainer import chat_data

    out, data = tmp_path / "run", tmp_path / "datasets" / "mbpp-mutants-gold"
    argv = [
        "--source", "mbpp", "--path", str(MBPP_DIR), "--limit", "6", "--model", "mutants",
        "--teacher", "gold", "--samples", "2", "--refinements", "1", "--styles", "explain+refine",
        "refine", "--workers", "2", "--no_progress", "--data_dir", str(data),
    ]  # fmt: skip
    assert collect.main([*argv, "--output_dir", str(out)]) == 0
    tasks = {t.id: t for t in load_tasks("mbpp", split="train", path=str(MBPP_DIR), limit=6)}
    samples = list(read_records(out / "samples.jsonl", Sample))
    trajectories = list(read_records(out / "trajectories.jsonl", Trajectory))
    assert len(samples) >= 8 and all(not s.correct and s.model == "mutants" for s in samples)
    assert max(Counter(s.problem_id for s in samples).values()) == 2
    assert len({s.sampling["operator"] for s in samples}) >= 4  # the operators are spread
    assert len(trajectories) == 2 * len(samples) and all(t.verified for t in trajectories)
    for t in trajectories:
        task = tasks[t.problem_id]
        assert t.task == task_text(task, 3) and t.refinement == task.reference.strip()
        assert t.wrong_code != t.refinement and t.teacher == "gold"
        if t.style == "refine":
            assert not t.explanation and t.reply.startswith("```python")
        else:
            assert t.explanation.startswith("`assert ") and "because of a bug in `" in t.explanation
            assert "should be" in t.explanation or "is missing" in t.explanation
    fresh = tmp_path / "fresh-machine"
    assert collect.main([*argv, "--output_dir", str(fresh)]) == 0  # seeded from the snapshot
    assert keys(fresh / "trajectories.jsonl") == keys(out / "trajectories.jsonl")
    assert sorted(p.name for p in data.iterdir()) == [
        "config.json", "problems.jsonl.gz", "samples.jsonl.gz", "table.md", "trajectories.jsonl.gz",
    ]  # fmt: skip
    examples, counts = chat_data.load_examples(data)
    assert counts["used"] == len(trajectories)
    assert examples[0]["prompt"][0]["content"] == trajectories[0].task  # LeDex's turn 1


def test_the_gold_teacher_answers_a_models_own_wrong_programs(tmp_path, server, capsys):
    """LeDex's student samples (a model's wrong programs) answered with the reference solution: the
    explanation says what failed, and quotes a change only for a program one line away from
    the reference. Problems without a reference are refused before anything runs."""
    references = {"add": "def add(a, b):\n    return a + b\n", "mul": "def mul(x, y):\n    product = x * y\n    return product\n"}  # fmt: skip
    rows: list[dict[str, Any]] = json.loads(json.dumps(PROBLEMS))
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps({**p, "reference": references.get(p["id"], "")}) + "\n" for p in rows))  # fmt: skip
    out = tmp_path / "run"
    argv = args(problems, server.url, out, "--teacher", "gold")
    argv[argv.index("--refinements") + 1] = "1"
    assert collect.main(argv) == 2 and not out.exists() and not server.chat_requests
    assert "1 of 3 problems have none (rev)" in capsys.readouterr().err
    references["rev"] = "print(input()[::-1])\n"
    problems.write_text("".join(json.dumps({**p, "reference": references[p["id"]]}) + "\n" for p in rows))  # fmt: skip
    assert collect.main(argv) == 0
    trajectories = {(t.problem_id, t.wrong_code, t.style): t for t in read_records(out / "trajectories.jsonl", Trajectory)}  # fmt: skip
    assert {k[0] for k in trajectories} == {"add", "mul", "rev"}
    assert all(t.verified and t.teacher == "gold" for t in trajectories.values())
    minus = trajectories[("add", "def add(a, b):\n    return a - b", "explain+refine")]
    assert minus.refinement == references["add"].strip()
    assert minus.explanation == (
        "`assert add(1, 2) == 3` fails (it returned -1, expected 3) because of a bug in `add`: "
        "one line is wrong. `return a - b` should be `return a + b`."
    )
    # `return a + b` for `product = x * y; return product`: another approach, no slip to name
    plus = trajectories[("mul", "def mul(a, b):\n    return a + b", "explain+refine")]
    assert plus.explanation.endswith("because `mul` does not do what the task asks: it is written again below.")  # fmt: skip
    assert not trajectories[("mul", "def mul(a, b):\n    return a + b", "refine")].explanation
    rev = trajectories[("rev", "print(input())", "explain+refine")]  # a program without a function
    assert rev.explanation.endswith("because of a bug in the program: one line is wrong. `print(input())` should be `print(input()[::-1])`.")  # fmt: skip


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "mutants"], "name a --teacher"),
        (["--model", "mutants", "--teacher", "gold", "--refinements", "2"], "use --refinements 1"),
    ],
)
def test_mutants_and_the_gold_teacher_go_together(tmp_path, capsys, extra, message):
    assert collect.main(["--source", "mbpp", "--path", str(MBPP_DIR), "--output_dir", str(tmp_path / "o"), *extra]) == 2  # fmt: skip
    assert message in capsys.readouterr().err


def test_only_mutants_that_fail_like_a_bug_are_wrong_solutions():
    from ledex.feedback import FailureInfo
    from ledex.sandbox.programs import ProgramResult

    def result(status, kind=None, exception=""):
        failure = FailureInfo(kind, exception=exception) if kind else None
        return ProgramResult(status, [False], "feedback", 0.1, "", failure)

    assert collect._teachable(result("failed", "assertion"))
    assert collect._teachable(result("error", "exception", "IndexError"))
    assert not collect._teachable(ProgramResult("passed", [True], "", 0.1))  # equivalent
    assert not collect._teachable(result("timeout", "timeout"))
    assert not collect._teachable(result("error", "exception", "MemoryError"))
    assert not collect._teachable(result("error", "harness"))
    assert not collect._teachable(result("killed", "crashed"))


def test_the_reference_hint_reaches_the_teacher_and_never_the_recorded_prompt(tmp_path):
    """`--hint reference` (a rationalisation pass): the teacher's last turn carries the problem's
    reference solution, the record keeps the prompt without it (and the hint beside it), the reply
    is still verified by the tests, a problem without a reference gets the plain prompt, and SFT
    leaves out a reply that talks about the hint."""
    from trainer.chat_data import load_examples

    problems = tmp_path / "problems.jsonl"
    rows = [
        {"id": "add", "description": "Add two numbers.", "tests": ["assert add(1, 2) == 3"], "entry_point": "add", "reference": "def add(a, b):\n    return a + b"},  # fmt: skip
        {"id": "mul", "description": "Multiply two numbers.", "tests": ["assert mul(2, 3) == 6"], "entry_point": "mul", "reference": "def mul(a, b):\n    return a * b"},  # fmt: skip
        {"id": "sub", "description": "Subtract.", "tests": ["assert sub(3, 1) == 2"], "entry_point": "sub"},  # fmt: skip
    ]
    problems.write_text("".join(json.dumps(row) + "\n" for row in rows))
    headers = {"Add": "def add(a, b):", "Multiply": "def mul(a, b):", "Subtract": "def sub(a, b):"}
    wrong = {"Add": "return a - b", "Multiply": "return a + b", "Subtract": "return b - a"}
    right = {"Add": "return a + b", "Multiply": "return a * b", "Subtract": "return a - b"}

    def teacher(messages, params) -> str:
        name = next(k for k in wrong if k in messages[0]["content"])
        header = headers[name]
        if len(messages) == 1:
            return fenced(f"{header}\n    {wrong[name]}")
        if "Hint: a correct solution is" not in messages[-1]["content"]:
            return fenced(f"{header}\n    {wrong[name]}", "Maybe.")
        why = "It subtracts." if name == "Add" else "As the hint shows, it should multiply."
        return fenced(f"{header}\n    {right[name]}", why)

    out = tmp_path / "run"
    with LoopbackServer(reply=teacher) as server:
        argv = args(problems, server.url, out, "--hint", "reference")
        argv[argv.index("--samples") + 1], argv[argv.index("--refinements") + 1] = "1", "1"
        assert collect.main(argv) == 0
        sent = [r.body["messages"] for r in server.chat_requests if len(r.body["messages"]) > 1]
    records = {f"{t.problem_id}/{t.style}": t for t in read_records(out / "trajectories.jsonl", Trajectory)}  # fmt: skip
    hinted, leaky, plain = (records[f"{p}/explain+refine"] for p in ("add", "mul", "sub"))
    assert hinted.verified and hinted.explanation == "It subtracts." and leaky.verified
    assert not plain.verified and plain.hint == ""
    assert "return a + b" in hinted.hint and "Explain what is wrong" in hinted.hint
    assert "Explain" not in records["add/refine"].hint  # the refine style asks for code alone
    tasks = {t.id: t for t in load_tasks("jsonl", path=str(problems))}
    assert hinted.task == task_text(tasks["add"], 3) and "Hint" not in hinted.feedback
    recorded = dialogue.build_conversation(hinted.task, hinted.wrong_code, hinted.feedback, style="explain+refine")  # fmt: skip
    assert recorded not in sent  # the teacher saw more than the record's prompt: the hint, last
    assert [*recorded[:-1], {**recorded[-1], "content": recorded[-1]["content"] + "\n\n" + hinted.hint}] in sent  # fmt: skip
    assert dialogue.build_conversation(plain.task, plain.wrong_code, plain.feedback, style="explain+refine") in sent  # fmt: skip
    assert json.loads((out / "config.json").read_text())["hint"] == "reference"
    examples, _ = load_examples(out, styles=["explain+refine"])
    assert [e["key"] for e in examples] == [hinted.key]  # the leaky reply is not trained on


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--hint", "line"], "--hint must be 'reference'"),
        (["--model", "mutants", "--teacher", "gold", "--refinements", "1", "--hint", "reference"], "for a model teacher"),  # fmt: skip
    ],
)
def test_bad_hints_are_usage_errors(tmp_path, capsys, extra, message):
    assert collect.main(["--source", "mbpp", "--path", str(MBPP_DIR), "--output_dir", str(tmp_path / "o"), *extra]) == 2  # fmt: skip
    assert message in capsys.readouterr().err


def test_signature_shape_asks_mbpp_as_humaneval_and_hides_its_tests(tmp_path, capsys):
    """`--shape signature`: MBPP train asked in HumanEval's shape (signature and docstring, no
    assert), a student's wrong programs answered by the gold teacher, and the refinement prompt as
    `eval` builds HumanEval's: the feedback says how the code failed, never an assert or a value."""
    import re

    from ledex.feedback import hidden_feedback
    from trainer.data import mbpp

    def student(messages, params) -> str:
        name = re.search(r"named `(\w+)`", messages[0]["content"]).group(1)
        return fenced(f"def {name}(*args):\n    return None")

    out = tmp_path / "run"
    argv = [
        "--source", "mbpp", "--path", str(MBPP_DIR), "--limit", "3", "--teacher", "gold",
        "--samples", "1", "--refinements", "1", "--shape", "signature", "--workers", "2",
        "--no_progress", "--output_dir", str(out),
    ]  # fmt: skip
    with LoopbackServer(reply=student) as server:
        model = f"openai:{server.url}#student"
        assert collect.main([*argv, "--model", model]) == 0
        asked = [r.body["messages"][0]["content"] for r in server.chat_requests]
    tasks = {t.id: mbpp.as_signature(t) for t in load_tasks("mbpp", split="train", path=str(MBPP_DIR), limit=3)}  # fmt: skip
    assert len(asked) == 3 and all("assert" not in text and text.startswith("```python\n") for text in asked)  # fmt: skip
    assert any("class Pair" in text for text in asked)  # the tests' own class comes with the signature
    trajectories = list(read_records(out / "trajectories.jsonl", Trajectory))
    assert len(trajectories) == 3 and all(t.verified for t in trajectories)
    for t in trajectories:
        task = tasks[t.problem_id]
        assert task is not None and t.task == task_text(task, 0) and any(a.startswith(t.task) for a in asked)
        assert t.feedback == hidden_feedback(None, 0, 3) + " A returned value is wrong."
        assert t.explanation.startswith("The code fails 3 of 3 hidden tests (a returned value is wrong) because")  # fmt: skip
        assert f"def {task.entry_point}(*args)" in t.wrong_code  # under the prompt's own classes
    assert json.loads((out / "config.json").read_text())["shape"] == "signature"
    assert collect.main([*argv, "--model", model, "--shape", "text"]) == 1  # no resume into it
    assert "shape='signature' (now 'text')" in capsys.readouterr().err


def test_signature_shape_is_for_mbpp(tmp_path, problems, capsys):
    argv = ["--source", "jsonl", "--path", str(problems), "--shape", "signature", "--output_dir", str(tmp_path / "o")]  # fmt: skip
    assert collect.main(argv) == 2 and "--source mbpp" in capsys.readouterr().err
    assert collect.main([*argv[:4], "--shape", "docstring", *argv[6:]]) == 2
    assert "--shape must be one of text, signature" in capsys.readouterr().err


def test_tests_the_prompt_hides_stay_hidden_in_feedback(tmp_path, problems, server):
    """`--shown_tests 0` on a problem in its own shape: no assert in the prompt, and the recorded
    feedback (the refinement turn) says only how the code failed."""
    out = tmp_path / "run"
    assert collect.main([*args(problems, server.url, out), "--limit", "2", "--shown_tests", "0"]) == 0
    samples = [s for s in read_records(out / "samples.jsonl", Sample) if not s.correct]
    assert samples and all(s.feedback.startswith("The code fails ") for s in samples)
    assert all("assert" not in s.feedback and "add(" not in s.feedback for s in samples)
    trajectories = list(read_records(out / "trajectories.jsonl", Trajectory))
    assert trajectories and all("assert" not in t.task + t.feedback for t in trajectories)
