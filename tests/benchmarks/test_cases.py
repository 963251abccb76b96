"""The fixture set of benchmarks/repair.py: every buggy project (and the `make run` example) fails
exactly as its case.json says, and its reference fix applies and makes every test pass."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.cases.check_cases import (  # noqa: E402
    CASES_ROOT,
    EXAMPLES_ROOT,
    KINDS,
    CaseError,
    apply_reference_fix,
    check_case,
    check_cases,
    copy_case,
    load_case,
    load_cases,
)

CASES = load_cases(CASES_ROOT)
EXAMPLES = load_cases(EXAMPLES_ROOT)
ALL = CASES + EXAMPLES


@pytest.fixture(scope="module")
def reports():
    """Every case checked once, in parallel (each check is two pytest runs in a scratch copy)."""
    return {report.case.path: report for report in check_cases(ALL)}


@pytest.mark.parametrize("case", ALL, ids=[case.name for case in ALL])
def test_case_is_consistent(case, reports):
    report = reports[case.path]
    assert report.ok, f"{case.name}:\n" + "\n".join(f"  - {p}" for p in report.problems)
    assert set(report.before) == set(case.tests)
    assert all(outcome == "passed" for outcome in report.after.values())


def test_fixture_set_is_big_and_varied():
    assert len(CASES) >= 20
    names = [case.name for case in ALL]
    assert len(set(names)) == len(names), "case names must be unique"
    assert all(case.name == case.path.name for case in ALL), "a case's name is its directory's"
    assert {case.kind for case in CASES} == set(KINDS)
    tags = {tag for case in CASES for tag in case.tags}
    for needed in ("parametrized", "async", "two-module", "helper", "class", "decorator"):
        assert needed in tags, f"no case tagged {needed!r}"
    assert any("." in case.bug_function for case in CASES), "no method bug"
    assert any(case.kind == "exception" for case in CASES if "async" in case.tags)


def test_example_for_make_run_exists():
    assert [case.name for case in EXAMPLES] == ["buggy_inventory"]
    example = EXAMPLES[0]
    assert (example.path / "README.md").is_file()
    assert len(example.failing) == 1


def test_cases_directory_stays_clean(reports):
    """Checking never writes into the case directories (no __pycache__, no .pytest_cache)."""
    assert reports
    for root in (CASES_ROOT, EXAMPLES_ROOT):
        for case in load_cases(root):
            caches = ("__pycache__", ".pytest_cache")
            written = [p for p in case.path.rglob("*") if p.name in caches]
            assert not written, f"{case.name}: {written}"


def test_apply_reference_fix_edits_only_the_copy(tmp_path):
    case = CASES[0]
    original = (case.path / case.fix_file).read_text(encoding="utf-8")
    project = copy_case(case, tmp_path / case.name)
    assert not (project / "case.json").exists(), "the fix must not travel with the project"
    fixed = apply_reference_fix(case, project)
    assert fixed == project / case.fix_file
    assert fixed.read_text(encoding="utf-8") != original
    assert (case.path / case.fix_file).read_text(encoding="utf-8") == original


def _broken_copy(tmp_path: Path, **changes) -> Path:
    case = next(c for c in CASES if c.name == "stack_pop_wrong_end")
    dest = tmp_path / case.name
    shutil.copytree(case.path, dest)
    spec = json.loads((dest / "case.json").read_text(encoding="utf-8"))
    spec.update(changes)
    (dest / "case.json").write_text(json.dumps(spec), encoding="utf-8")
    return dest


def test_checker_catches_a_wrong_listing(tmp_path):
    spec = json.loads((CASES_ROOT / "stack_pop_wrong_end" / "case.json").read_text())
    # Claim a passing test fails and leave one test unlisted.
    path = _broken_copy(
        tmp_path, failing=spec["failing"] + spec["passing"][:1], passing=spec["passing"][2:]
    )
    problems = check_case(load_case(path)).problems
    assert any("passed, expected failed" in p for p in problems), problems
    assert any("not listed" in p for p in problems), problems


def test_checker_catches_a_bad_fix(tmp_path):
    wrong = _broken_copy(tmp_path / "a", fix={
        "file": "stackkit/stack.py", "replace": [["return self._items.pop(0)", "return None"]],
    })  # fmt: skip
    problems = check_case(load_case(wrong)).problems
    assert any(p.startswith("after the fix") for p in problems), problems
    missing = _broken_copy(tmp_path / "b", fix={
        "file": "stackkit/stack.py", "replace": [["no such text", "x"]],
    })  # fmt: skip
    assert any("occurs 0 times" in p for p in check_case(load_case(missing)).problems)
    peek = {"file": "stackkit/stack.py", "function": "Stack.peek"}
    outside = _broken_copy(tmp_path / "c", bug=peek)
    assert any("outside Stack.peek" in p for p in check_case(load_case(outside)).problems)
    wrong_kind = _broken_copy(tmp_path / "d", kind="exception")
    assert any("kind is exception" in p for p in check_case(load_case(wrong_kind)).problems)


def test_malformed_case_json_is_rejected(tmp_path):
    path = _broken_copy(tmp_path, kind="crash")
    with pytest.raises(CaseError, match="kind"):
        load_case(path)
