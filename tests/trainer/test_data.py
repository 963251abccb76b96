"""Data sources: MBPP from the shared upstream files, APPS/CodeContests/JSONL from fixtures built here.

Every loader is checked by running solutions in the real sandbox: a known-correct one passes,
a wrong one fails. Nothing is fetched from the network; the hub code path is exercised with
`datasets.load_dataset` answering from local rows.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from ledex.sandbox import IOTest, Program, ProgramPool
from trainer import prompts
from trainer.data import Task, apps, codecontests, load_tasks, mbpp
from trainer.data._common import DataError

ROOT = Path(__file__).resolve().parents[2]
MBPP_DIR = ROOT.parent / "shared" / "data" / "mbpp"


@pytest.fixture(scope="module")
def pool():
    with ProgramPool(2) as programs:
        yield programs


def run(pool: ProgramPool, task: Task, *codes: str) -> list[bool]:
    results = pool.run_many([Program(code, task.tests, task.setup) for code in codes])
    return [result.ok for result in results]


# --- MBPP ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mbpp_all() -> list[Task]:
    assert (MBPP_DIR / "mbpp.jsonl").exists(), f"MBPP is expected in {MBPP_DIR} (see its README)"
    return mbpp.load(None, str(MBPP_DIR))


@pytest.mark.parametrize(
    ("split", "count", "first", "last"),
    [("prompt", 10, 1, 10), ("test", 500, 11, 510), ("validation", 90, 511, 600),
     ("train", 374, 601, 974)],
)  # fmt: skip
def test_mbpp_splits_go_by_task_id(split, count, first, last):
    tasks = load_tasks("mbpp", split=split, path=str(MBPP_DIR / "mbpp.jsonl"))
    assert len(tasks) == count
    assert (tasks[0].id, tasks[-1].id) == (f"mbpp/{first}", f"mbpp/{last}")
    assert all(task.source == "mbpp" and len(task.tests) == 3 for task in tasks)


def test_mbpp_rows_become_tasks_with_entry_point_setup_and_reference(mbpp_all):
    assert len(mbpp_all) == 974
    by_id = {task.id: task for task in mbpp_all}
    task = by_id["mbpp/2"]
    assert task.description == "Write a function to find the similar elements from the given two tuple lists."  # fmt: skip
    # The first call in `assert set(similar_elements(...)) == ...` is a builtin; the reference's
    # function is the one the model must write.
    assert task.entry_point == "similar_elements"
    assert all(task.entry_point for task in mbpp_all)
    assert "\r" not in task.reference
    assert [t.id for t in mbpp_all if t.setup] == ["mbpp/367", "mbpp/927"]
    # turn 1 names the function and shows the asserts
    text = prompts.task_text(task)
    assert "The function must be named `similar_elements`." in text
    assert task.tests[0] in text


def test_mbpp_references_pass_and_a_wrong_solution_fails_in_the_sandbox(mbpp_all, pool):
    by_id = {task.id: task for task in mbpp_all}
    # 367 needs its setup to run after the solution (it builds trees with the solution's Node)
    chosen = [by_id[i] for i in ("mbpp/601", "mbpp/602", "mbpp/367", "mbpp/11", "mbpp/974")]
    results = pool.run_many([Program(t.reference, t.tests, t.setup) for t in chosen])
    assert [r.status for r in results] == ["passed"] * len(chosen)
    wrong = run(pool, by_id["mbpp/11"], "def remove_Occ(s, ch):\n    return s\n")
    assert wrong == [False]


def test_mbpp_in_humaneval_shape_hides_the_asserts_and_still_runs(mbpp_all, pool):
    """`mbpp.as_signature`: the signature with the text and the first assert as a doctest, the
    classes the asserts build before it, no assert in the prompt; the references (assembled as
    HumanEval's are) pass and a body under the signature runs."""
    from trainer.solve import program_for

    shaped = [mbpp.as_signature(task) for task in mbpp_all]
    assert all(task is not None for task in shaped)  # every MBPP reference defines its function
    by_id = {task.id: task for task in shaped if task is not None}
    first = by_id["mbpp/602"]
    assert first.description == first.prompt_code == (
        "def first_repeated_char(str1):\n"
        '    """Write a python function to find the first repeated character in a given string.\n'
        "\n    >>> first_repeated_char('abcabc')\n    'a'\n    \"\"\"\n"
    )
    assert prompts.hides_tests(first) and not prompts.hides_tests(mbpp_all[601])
    text = prompts.task_text(first, 0)
    assert "assert" not in text and "The function must be named `first_repeated_char`." in text
    assert by_id["mbpp/601"].description.startswith("class Pair(object):")
    # 927's trees are built by hidden setup from the solution's `Node`: the class is shown, and
    # `max_height(root)` is no example, as `root` is nowhere in the prompt
    assert by_id["mbpp/927"].description.startswith("class Node:") and ">>>" not in by_id["mbpp/927"].description  # fmt: skip
    chosen = [by_id[i] for i in ("mbpp/601", "mbpp/602", "mbpp/367", "mbpp/11", "mbpp/974")]
    results = pool.run_many([Program(program_for(t, t.reference), t.tests, t.setup) for t in chosen])
    assert [r.status for r in results] == ["passed"] * len(chosen)
    body = "for i, c in enumerate(str1):\n    if c in str1[:i]:\n        return c\nreturn 'None'"
    assert run(pool, first, program_for(first, body)) == [True]


def test_mbpp_text_with_quotes_and_backslashes_stays_a_docstring():
    task = Task("mbpp/1", "mbpp", 'Split on "\\n" and """quotes"""', ("assert f(1) >= 0",), "f",
                reference="import re\ndef f(x: int) -> int:\n    return x\n")  # fmt: skip
    shaped = mbpp.as_signature(task)
    assert shaped is not None and shaped.prompt_code.startswith("def f(x: int) -> int:\n")
    assert ">>>" not in shaped.prompt_code  # only `f(...) == value` becomes an example
    namespace: dict = {}
    exec(shaped.prompt_code + "    pass\n", namespace)  # noqa: S102 - our own generated stub
    assert namespace["f"].__doc__.strip() == task.description.replace('"""', "'''")
    assert mbpp.as_signature(Task("mbpp/2", "mbpp", "Sort.", ("assert g() == 1",), "g", reference="g = sorted\n")) is None  # fmt: skip


def test_mbpp_sanitized_subset_and_the_default_location(monkeypatch):
    sanitized = mbpp.load("test", str(MBPP_DIR / "sanitized-mbpp.json"))
    assert len(sanitized) == 257
    assert all(task.entry_point for task in sanitized)
    monkeypatch.setenv(mbpp.ENV_VAR, str(MBPP_DIR))
    assert mbpp.default_location() == str(MBPP_DIR)
    assert len(mbpp.load("validation")) == 90
    monkeypatch.delenv(mbpp.ENV_VAR)
    assert mbpp.default_location() in (str(MBPP_DIR), mbpp.HUB_ID)


def test_mbpp_hub_id_goes_through_datasets_with_the_full_config(monkeypatch):
    import datasets

    rows = [json.loads(line) for line in (MBPP_DIR / "mbpp.jsonl").read_text().splitlines()]
    calls = []

    def fake_load_dataset(path, name=None, split=None, **kwargs):  # answers from local rows
        calls.append((path, name, split))
        return datasets.Dataset.from_list([r for r in rows if r["task_id"] in mbpp.SPLITS[split]])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    tasks = mbpp.load("validation", "google-research-datasets/mbpp")
    assert calls == [("google-research-datasets/mbpp", "full", "validation")]
    assert len(tasks) == 90 and tasks[0].id == "mbpp/511"


def test_mbpp_parquet_folder_and_bad_split(tmp_path):
    import datasets

    rows = [json.loads(line) for line in (MBPP_DIR / "mbpp.jsonl").read_text().splitlines()[:12]]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "train-00000-of-00001.parquet"))
    tasks = mbpp.load("test", str(tmp_path))
    assert [t.id for t in tasks] == ["mbpp/11", "mbpp/12"]
    with pytest.raises(ValueError, match="unknown MBPP split 'dev'"):
        mbpp.load("dev", str(MBPP_DIR))


# --- APPS ----------------------------------------------------------------------------------------

APPS_ROWS = [
    {  # stdin/stdout; outputs stored as a list of lines in one case, as APPS sometimes does
        "problem_id": 10,
        "question": "Read two integers and print their sum.",
        "solutions": json.dumps(["a, b = map(int, input().split())\nprint(a + b)\n"]),
        "input_output": json.dumps({"inputs": ["1 2\n", "10 -3\n"], "outputs": ["3\n", ["7"]]}),
        "difficulty": "introductory",
        "url": "",
        "starter_code": "",
    },
    {  # call-based, result wrapped in a one-element list
        "problem_id": 11,
        "question": "Return the largest element of a list, or None when it is empty.",
        "solutions": json.dumps(["def largest(xs):\n    return max(xs) if xs else None\n"]),
        "input_output": json.dumps(
            {"fn_name": "largest", "inputs": [[[3, 1, 2]], [[]]], "outputs": [[3], [None]]}
        ),
        "difficulty": "introductory",
        "url": "",
        "starter_code": "def largest(xs):\n",
    },
    {  # LeetCode style
        "problem_id": 12,
        "question": "Is the number even?",
        "solutions": json.dumps(
            ["class Solution:\n    def isEven(self, n):\n        return n % 2 == 0\n"]
        ),
        "input_output": json.dumps({"fn_name": "isEven", "inputs": [[4], [7]], "outputs": [True, False]}),  # fmt: skip
        "difficulty": "interview",
        "url": "",
        "starter_code": "class Solution:\n    def isEven(self, n: int) -> bool:\n        ",
    },
    {  # no tests (APPS' train split has such rows): left out
        "problem_id": 13,
        "question": "Untested.",
        "solutions": "",
        "input_output": "",
        "difficulty": "interview",
        "url": "",
        "starter_code": "",
    },
]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _load_apps(path: Path, split: str | None = "test") -> list[Task]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tasks = apps.load(split, str(path))
    assert any("left out 1 APPS problems" in str(w.message) for w in caught)
    return tasks


def test_apps_rows_become_stdin_and_call_based_tasks(tmp_path):
    tasks = _load_apps(_write_jsonl(tmp_path / "apps.jsonl", APPS_ROWS))
    assert [t.id for t in tasks] == ["apps/test/10", "apps/test/11", "apps/test/12"]
    stdin, call, leetcode = tasks
    assert stdin.tests == (IOTest("1 2\n", "3\n"), IOTest("10 -3\n", "7"))
    assert stdin.entry_point is None
    assert call.tests == ("assert largest([3, 1, 2]) == 3", "assert largest([]) == None")
    assert call.entry_point == "largest" and "Start from this code" in call.description
    assert leetcode.tests == ("assert Solution().isEven(4) == True", "assert Solution().isEven(7) == False")  # fmt: skip
    # turn 1 shows stdin/stdout cases as example runs
    text = prompts.task_text(stdin)
    assert "reads standard input" in text and "Input:\n```\n1 2\n```\nOutput:\n```\n3\n```" in text


def test_apps_tasks_verify_correct_and_wrong_solutions(tmp_path, pool):
    stdin, call, leetcode = _load_apps(_write_jsonl(tmp_path / "apps.jsonl", APPS_ROWS))
    assert run(pool, stdin, stdin.reference, "a, b = map(int, input().split())\nprint(a - b)\n") == [True, False]  # fmt: skip
    assert run(pool, call, call.reference, "def largest(xs):\n    return max(xs)\n") == [True, False]  # fmt: skip
    wrong = "class Solution:\n    def isEven(self, n):\n        return n % 2 == 1\n"
    assert run(pool, leetcode, leetcode.reference, wrong) == [True, False]


def test_apps_parquet_copy_through_datasets(tmp_path):
    import datasets

    folder = tmp_path / "apps"
    folder.mkdir()
    datasets.Dataset.from_list(APPS_ROWS).to_parquet(str(folder / "test-00000-of-00001.parquet"))
    tasks = _load_apps(folder, "test")
    assert [t.id for t in tasks] == ["apps/test/10", "apps/test/11", "apps/test/12"]
    single = _load_apps(folder / "test-00000-of-00001.parquet", None)
    assert [t.id for t in single] == ["apps/10", "apps/11", "apps/12"]


def test_apps_bad_rows_are_named(tmp_path):
    broken = dict(APPS_ROWS[0], input_output='{"inputs": ["1"]')
    with pytest.raises(DataError, match=r"row 0\).*'input_output' is not valid JSON"):
        apps.load("test", str(_write_jsonl(tmp_path / "a.jsonl", [broken])))
    with pytest.raises(DataError, match="not an APPS row"):
        apps.load("test", str(_write_jsonl(tmp_path / "b.jsonl", [{"name": "x"}])))


# --- CodeContests --------------------------------------------------------------------------------

CC_ROWS = [
    {
        "name": "1000_A. Double It",
        "description": "Given n, print 2n.",
        "public_tests": {"input": ["3\n"], "output": ["6\n"]},
        "private_tests": {"input": ["0\n", "3\n"], "output": ["0\n", "6\n"]},  # one repeats
        "generated_tests": {"input": ["-5\n"], "output": ["-10\n"]},
        "source": 2,
        "difficulty": 7,
        "solutions": {
            "language": [2, 3],
            "solution": ["#include <cstdio>\nint main(){}", "print(2 * int(input()))\n"],
        },
        "incorrect_solutions": {"language": [], "solution": []},
    },
    {
        "name": "1000_B. Nothing To Test",
        "description": "No tests.",
        "public_tests": {"input": [], "output": []},
        "private_tests": {"input": [], "output": []},
        "generated_tests": {"input": [], "output": []},
        "source": 2,
        "difficulty": 7,
        "solutions": {"language": [], "solution": []},
        "incorrect_solutions": {"language": [], "solution": []},
    },
]


@pytest.mark.parametrize("form", ["jsonl", "parquet", "save_to_disk"])
def test_codecontests_tests_and_reference(tmp_path, pool, form):
    import datasets

    if form == "jsonl":
        path = _write_jsonl(tmp_path / "cc.jsonl", CC_ROWS)
    elif form == "parquet":
        path = tmp_path / "cc.parquet"
        datasets.Dataset.from_list(CC_ROWS).to_parquet(str(path))
    else:
        path = tmp_path / "cc"
        datasets.DatasetDict({"valid": datasets.Dataset.from_list(CC_ROWS)}).save_to_disk(str(path))
    with pytest.warns(UserWarning, match="left out 1 CodeContests problems"):
        (task,) = codecontests.load("valid", str(path))
    assert task.id == "codecontests/1000_A. Double It"
    assert task.tests == (IOTest("3\n", "6\n"), IOTest("0\n", "0\n"), IOTest("-5\n", "-10\n"))
    assert task.reference == "print(2 * int(input()))\n"
    assert run(pool, task, task.reference, "print(2 * abs(int(input())))\n") == [True, False]


def test_unknown_split_without_a_path_is_refused_before_any_network():
    with pytest.raises(ValueError, match="unknown CodeContests split"):
        codecontests.load("dev", None)
    with pytest.raises(ValueError, match="unknown APPS split"):
        apps.load("valid", None)


# --- a user's own problems -----------------------------------------------------------------------

USER_ROWS = [
    {"id": "add", "description": "Add two numbers.", "tests": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"], "entry_point": "add", "split": "train"},  # fmt: skip
    {"id": "rev", "description": "Print the input line reversed.", "tests": [{"input": "abc\n", "output": "cba\n"}], "reference": "print(input()[::-1])", "split": "test"},  # fmt: skip
    {"id": "tree", "description": "Count nodes.", "tests": ["assert count(root) == 2"], "setup": "root = Node(Node(None))", "entry_point": "count"},  # fmt: skip
]


def test_user_jsonl_loads_and_verifies(tmp_path, pool):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(USER_ROWS[0]) + "\n\n" + "".join(json.dumps(r) + "\n" for r in USER_ROWS[1:]))  # fmt: skip
    tasks = load_tasks("jsonl", path=str(path))
    assert [t.id for t in tasks] == ["add", "rev", "tree"]
    assert [t.id for t in load_tasks("jsonl", split="test", path=str(path))] == ["rev"]
    add, rev, tree = tasks
    assert rev.tests == (IOTest("abc\n", "cba\n"),) and rev.reference == "print(input()[::-1])"
    assert run(pool, add, "def add(a, b):\n    return a + b", "def add(a, b):\n    return a * b") == [True, False]  # fmt: skip
    assert run(pool, rev, rev.reference, "print(input())") == [True, False]
    node = "class Node:\n    def __init__(self, child):\n        self.child = child\n"
    good = node + "def count(n):\n    return 0 if n is None else 1 + count(n.child)\n"
    assert run(pool, tree, good, node + "def count(n):\n    return 1\n") == [True, False]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "x", "description": "d", "tests": ["assert 1"]', "not valid JSON"),
        ('["a list"]', "expected a JSON object, got list"),
        ('{"description": "d", "tests": ["assert 1"]}', "missing required field 'id'"),
        ('{"id": "x", "description": "d", "tests": []}', "'tests' is empty"),
        ('{"id": "x", "description": "d", "tests": "assert 1"}', "field 'tests' must be a list, not str"),  # fmt: skip
        ('{"id": "x", "description": 3, "tests": ["assert 1"]}', "field 'description' must be a string"),  # fmt: skip
        ('{"id": "x", "description": "d", "tests": [{"input": "1"}]}', r"tests\[0\] must have exactly the keys"),  # fmt: skip
        ('{"id": "x", "description": "d", "tests": ["assert (("]}', r"tests\[0\] is not valid Python"),  # fmt: skip
        ('{"id": "x", "description": "d", "tests": [7]}', r"tests\[0\] must be an assert string"),
        ('{"id": "x", "description": "d", "tests": ["assert 1"], "answer": 1}', "unknown field"),
        ('{"id": "add", "description": "d", "tests": ["assert 1"]}', "id 'add' already used on line 1"),  # fmt: skip
    ],
)
def test_malformed_user_jsonl_names_the_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(USER_ROWS[0]) + "\n\n" + line + "\n")
    with pytest.raises(DataError, match=rf"bad\.jsonl:3: .*{message}"):
        load_tasks("jsonl", path=str(path))


def test_user_jsonl_needs_an_existing_file(tmp_path):
    with pytest.raises(DataError, match="needs a file"):
        load_tasks("jsonl")
    with pytest.raises(DataError, match="no such file"):
        load_tasks("jsonl", path=str(tmp_path / "missing.jsonl"))
