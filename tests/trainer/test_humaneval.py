"""The HumanEval loader: all 164 problems, their references pass in the sandbox, wrong code fails,
and a model's answer runs whether it is the whole function or only its body."""

from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path

import pytest

from ledex.sandbox import Program, run_many, run_program
from trainer.data import load_tasks
from trainer.data.humaneval import assemble, split_check
from trainer.prompts import solve_conversation
from trainer.solve import program_for


@pytest.fixture(scope="module")
def tasks():
    return load_tasks("humaneval")


def _function_only(task) -> str:
    """The reference's entry-point function alone, without the prompt's imports and helpers."""
    tree = ast.parse(task.reference)
    (node,) = [
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == task.entry_point
    ]
    segment = ast.get_source_segment(task.reference, node)
    assert segment is not None
    return segment


def test_all_164_problems_load_with_their_parts(tasks):
    assert len(tasks) == 164
    assert len({t.id for t in tasks}) == 164
    first = tasks[0]
    assert first.id == "HumanEval/0" and first.source == "humaneval"
    assert first.entry_point == "has_close_elements"
    assert first.description == first.prompt_code and first.prompt_code.startswith(
        "from typing import List"
    )
    assert first.reference.startswith(first.prompt_code) and "return False" in first.reference
    # check()'s asserts, one test each, with `candidate` renamed to the entry point
    assert len(first.tests) == 7
    assert (
        first.tests[0] == "assert has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True"
    )
    assert all(
        "candidate" not in test for t in tasks for test in t.tests if "def check" not in test
    )
    split = [t for t in tasks if len(t.tests) > 1]
    assert len(split) >= 150  # per-assert granularity for the flat check() bodies
    assert sum(len(t.tests) for t in tasks) > 1000


def test_every_reference_passes_all_its_tests_in_the_sandbox(tasks):
    results = run_many([Program(t.reference, t.tests, t.setup, timeout=20) for t in tasks])
    failed = {t.id: r.feedback[:200] for t, r in zip(tasks, results, strict=True) if not r.ok}
    assert failed == {}
    assert all(
        all(r.passed) and len(r.passed) == len(t.tests) for t, r in zip(tasks, results, strict=True)
    )


def test_answers_as_a_whole_function_or_only_a_body_both_run(tasks):
    """What a model replies: the function alone (imports and helpers left out), the function
    with its imports, or only the body (as a completion model would). All of them complete to a
    passing program."""
    jobs = []
    for task in tasks:
        body = task.reference[len(task.prompt_code) :]
        for code in (_function_only(task), task.reference, body, body.strip("\n")):
            jobs.append((task, program_for(task, code)))
    results = run_many([Program(code, t.tests, t.setup, timeout=20) for t, code in jobs])
    failed = [
        (t.id, code[:300], r.feedback[:200])
        for (t, code), r in zip(jobs, results, strict=True)
        if not r.ok
    ]
    assert failed == []


def test_a_wrong_body_fails_and_the_feedback_names_the_assert(tasks):
    task = tasks[0]
    program = program_for(task, "return False")
    result = run_program(program, task.tests, setup=task.setup)
    assert result.status == "failed"
    assert result.passed[0] is False and result.passed[1] is True  # per-assert verdicts
    assert "has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3)" in result.feedback
    # no code at all: runs as given and fails with a syntax error the model can read
    prose = "I am not sure how to do this."
    assert program_for(task, prose) == prose
    assert run_program(prose, task.tests).status in ("error", "failed")


def test_helpers_from_the_prompt_stay_available(tasks):
    """HumanEval/38 decode_cyclic is tested against encode_cyclic, which only the prompt defines."""
    task = next(t for t in tasks if t.id == "HumanEval/38")
    answer = "def decode_cyclic(s: str):\n    return encode_cyclic(encode_cyclic(s))\n"
    program = assemble(task.prompt_code, task.entry_point, answer)
    assert program.count("def encode_cyclic") == 1 and program.rstrip().endswith(
        "encode_cyclic(s))"
    )
    assert run_program(program, task.tests, setup=task.setup, timeout=20).ok
    # a reply that redefines the helper keeps its own copy only
    own = "def encode_cyclic(s):\n    return s\n\n\ndef decode_cyclic(s):\n    return s\n"
    assert assemble(task.prompt_code, task.entry_point, own).count("def encode_cyclic") == 1


def test_check_bodies_that_are_not_flat_asserts_run_whole():
    code = (
        "METADATA = {}\n\n\ndef check(candidate):\n    xs = [1, 2]\n"
        "    for x in xs:\n        assert candidate(x) == x + 1\n"
    )
    tests, setup = split_check(code, "inc")
    assert len(tests) == 1 and tests[0].endswith("check(inc)") and setup == ""
    assert run_program("def inc(x):\n    return x + 1\n", tests).ok
    assert not run_program("def inc(x):\n    return x\n", tests).ok
    flat = "def check(candidate):\n    assert candidate(1) == 2\n    print('x')\n    assert True\n"
    assert split_check(flat, "inc") == (["assert inc(1) == 2"], "")


def test_a_local_file_and_bad_input(tmp_path: Path, tasks):
    path = tmp_path / "two.jsonl.gz"
    rows = [
        {
            "task_id": "X/0",
            "prompt": "def inc(x):\n    '''x + 1'''\n",
            "entry_point": "inc",
            "canonical_solution": "    return x + 1\n",
            "test": "def check(candidate):\n    assert candidate(1) == 2\n",
        },
    ]
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(json.dumps(r) for r in rows) + "\n")
    (task,) = load_tasks("humaneval", path=str(path))
    assert task.id == "X/0" and task.tests == ("assert inc(1) == 2",)
    assert run_program(task.reference, task.tests).ok
    with pytest.raises(ValueError, match="only a 'test' split"):
        load_tasks("humaneval", split="train")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_tasks("humaneval", path=str(tmp_path / "missing.jsonl"))
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"task_id": "X/1", "prompt": ""}) + "\n")
    with pytest.raises(ValueError, match="lacks canonical_solution, entry_point, test"):
        load_tasks("humaneval", path=str(broken))
    assert len(load_tasks("humaneval", limit=3)) == 3


def test_the_solve_prompt_can_hide_the_tests(tasks):
    (message,) = solve_conversation(tasks[0], shown_tests=0)
    assert message["role"] == "user"
    assert "def has_close_elements" in message["content"] and "```python" in message["content"]
    assert "0.05) == False" not in message["content"]  # a hidden test
    (shown,) = solve_conversation(tasks[0])
    assert "0.05) == False" in shown["content"]


def test_a_reply_whose_code_does_not_parse_runs_as_written(tasks):
    """The model's own syntax error is what it is shown, not an error about its prose."""
    from trainer.solve import extract_code

    reply = (
        "```python\ndef has_close_elements(numbers, threshold):\n    return len(set(numbers)\n```\n"
        "This uses sets."
    )
    code, error = extract_code(reply)
    assert (
        error and code == "def has_close_elements(numbers, threshold):\n    return len(set(numbers)"
    )
    result = run_program(program_for(tasks[0], code), tasks[0].tests)
    assert result.status == "error" and "never closed" in result.feedback
    cut = (
        "```python\ndef has_close_elements(numbers, threshold):\n    return [("  # cut by max_tokens
    )
    assert extract_code(cut)[0].endswith("return [(")
    assert extract_code("no code here") == ("no code here", "the reply contains no Python code")
