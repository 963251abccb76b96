"""The fix workflow (`ledex.fix.fix_tests`) on small real projects: real pytest runs, and a
scripted model (the loopback OpenAI-compatible server) so every candidate is known. Fast: a few
test runs each, no model weights."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from ledex import dialogue, fix, source_text
from ledex.models import load_backend
from ledex.repair import RepairConfig
from ledex.sandbox.pytest_runner import run_pytest
from tests.support.openai_loopback import LoopbackServer

GRADE = '''def grade(score):
    """Letter grade: A from 90, B from 80, C from 70, else F."""
    if score > 90:
        return "A"
    if score > 80:
        return "B"
    if score > 70:
        return "C"
    return "F"
'''
GRADE_TESTS = """import pytest

from marks.grade import grade


@pytest.mark.parametrize(("score", "letter"), [(90, "A"), (80, "B"), (70, "C"), (95, "A"), (10, "F")])
def test_grade(score, letter):
    assert grade(score) == letter
"""
ONLY_A = GRADE.replace("score > 90", "score >= 90")
ALL = GRADE.replace(" > ", " >= ")
CASE_A = "tests/test_grade.py::test_grade[90-A]"
OTHERS = ["tests/test_grade.py::test_grade[80-B]", "tests/test_grade.py::test_grade[70-C]"]


def make_project(root: Path, files: dict[str, str]) -> Path:
    files = {
        "pyproject.toml": '[tool.pytest.ini_options]\npythonpath = ["."]\n',
        "marks/__init__.py": "",
        **files,
    }
    for relpath, text in files.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_text(text)
    return root


def scripted(replies):
    """A loopback model answering candidate i with replies[i] (explanation, code), the last again."""

    def reply(messages, params):
        explanation, code = replies[min(params.get("index", 0), len(replies) - 1)]
        return dialogue.format_reply(explanation, code)

    return LoopbackServer(reply=reply)


def run_fix(project: Path, server: LoopbackServer, tests=None, n=2, rounds=1, pytest_args=(),
            trace_calls=False, **kwargs):  # fmt: skip
    run = run_pytest(project, python=sys.executable, pytest_args=pytest_args)
    wanted = [o for o in run.failed if tests is None or o.node_id in tests]
    config = fix.FixConfig(RepairConfig(n=n, rounds=rounds), python=sys.executable,
                           pytest_args=tuple(pytest_args), trace_calls=trace_calls)  # fmt: skip
    backend = load_backend(f"openai:{server.url}#m")
    with backend:
        return fix.fix_tests(project, run, wanted, backend, config, **kwargs)


def passes_with(project: Path, result: fix.FixResult) -> bool:
    overlay = {rel: f.new for rel, f in result.files.items()}
    return run_pytest(project, python=sys.executable, overlay=overlay).passes()


def test_the_candidate_that_fixes_every_case_of_a_parametrized_test_wins(tmp_path):
    """One case asked for, three failing: the first candidate fixes that case only (the old loop
    took it), the second fixes all three and is the fix."""
    project = make_project(tmp_path, {"marks/grade.py": GRADE, "tests/test_grade.py": GRADE_TESTS})
    events: list[fix.Event] = []
    with scripted(
        [("Only A was off.", ONLY_A), ("Every bound excludes its own mark.", ALL)]
    ) as server:
        result = run_fix(project, server, tests=[CASE_A], on_event=events.append)
    (fixed,) = result.tests
    assert (
        fixed.status == "verified" and fixed.fix.explanation == "Every bound excludes its own mark."
    )
    assert sorted(fixed.task.also_failing) == sorted(OTHERS) and fixed.fixed == [
        CASE_A,
        *fixed.task.also_failing,
    ]
    assert result.files["marks/grade.py"].new == ALL and result.included == [CASE_A]
    assert passes_with(project, result)
    assert (project / "marks/grade.py").read_text() == GRADE  # nothing written
    kinds = [type(e).__name__ for e in events]
    assert (
        kinds[:3] == ["RepairStarted", "RoundStarted", "CandidateWritten"]
        and kinds[-1] == "TestDone"
    )
    written = [e for e in events if isinstance(e, fix.CandidateWritten)]
    assert written[0].explanation == "Only A was off."  # known before the code is verified
    verified = [e for e in events if isinstance(e, fix.CandidateVerified)]
    assert [(v.verdict.passed, v.verdict.total) for v in verified] == [(3, 5), (5, 5)]


def test_a_partial_fix_is_offered_only_when_nothing_fixes_all_and_says_so(tmp_path):
    project = make_project(tmp_path, {"marks/grade.py": GRADE, "tests/test_grade.py": GRADE_TESTS})
    with scripted([("Only A was off.", ONLY_A)]) as server:
        result = run_fix(project, server, tests=[CASE_A], n=1)
    (fixed,) = result.tests
    assert fixed.status == "partial" and not fixed.result.verified
    assert sorted(fixed.still_failing) == sorted(OTHERS) and fixed.fixed == [CASE_A]
    assert result.files["marks/grade.py"].new == ONLY_A and not result.all_fixed


TWO = """def double(x):
    return x + 2


def half(x):
    return x // 3
"""
TWO_TESTS = """from marks.two import double, half


def test_double():
    assert double(5) == 10


def test_half():
    assert half(8) == 4


def test_small():
    assert double(2) == 4
"""
DOUBLE = "def double(x):\n    return x * 2\n"
HALF = "def half(x):\n    return x // 2\n"


def _asks_about(messages, test: str) -> bool:
    return any(f"def {test}(" in str(m.get("content", "")) for m in messages)


def _by_function(messages, params):
    """The fix for the function whose test the prompt shows."""
    if _asks_about(messages, "test_half"):
        return dialogue.format_reply("It divides by three.", HALF)
    return dialogue.format_reply("It adds two.", DOUBLE)


def test_fixes_of_two_functions_in_one_file_are_verified_together(tmp_path):
    project = make_project(tmp_path, {"marks/two.py": TWO, "tests/test_two.py": TWO_TESTS})
    with LoopbackServer(reply=_by_function) as server:
        result = run_fix(project, server, n=1)
    assert [t.status for t in result.tests] == ["verified", "verified"]
    assert sorted(result.included) == [
        "tests/test_two.py::test_double",
        "tests/test_two.py::test_half",
    ]
    new = result.files["marks/two.py"].new
    assert "return x * 2" in new and "return x // 2" in new and result.all_fixed
    assert passes_with(project, result)


def test_a_fix_that_breaks_another_fix_is_left_out_of_the_combination(tmp_path):
    project = make_project(tmp_path, {"marks/two.py": TWO, "tests/test_two.py": TWO_TESTS})

    def reply(messages, params):
        if _asks_about(messages, "test_half"):  # fixes half, and puts double back as it was
            return dialogue.format_reply(
                "It divides by three.", "def double(x):\n    return x + 2\n\n\n" + HALF
            )
        return dialogue.format_reply("It adds two.", DOUBLE)

    with LoopbackServer(reply=reply) as server:
        result = run_fix(project, server, n=1)
    assert [t.status for t in result.tests] == ["verified", "verified"]  # each verifies alone
    assert result.included == ["tests/test_two.py::test_double"]
    assert any("test_half does not verify together" in note for note in result.notes)
    assert "return x * 2" in result.files["marks/two.py"].new
    # `ledex fix` must not say every test is fixed: with the offered files test_half still fails
    assert result.fixed_tests == ["tests/test_two.py::test_double"] and not result.all_fixed


def test_a_fix_that_breaks_a_passing_test_in_another_file_is_not_offered(tmp_path):
    """A candidate is judged by the failing test's file alone; the tests of the project's other
    files that passed must pass with the offered fix too. The fix is not kept in the cache either:
    the model is asked again next time."""
    from ledex.fix_cache import FixCache

    elsewhere = "from marks.grade import grade\n\n\ndef test_fail_below_seventy():\n    assert grade(55) == 'F'\n"
    project = make_project(tmp_path / "project", {"marks/grade.py": GRADE, "tests/test_grade.py": GRADE_TESTS,
                                                  "tests/test_report.py": elsewhere})  # fmt: skip
    breaks_elsewhere = ALL.replace('    return "F"', '    if score >= 50:\n        return "E"\n    return "F"')
    cache = FixCache(tmp_path / "cache", model="the-model")
    with scripted([("Every bound excludes its own mark.", breaks_elsewhere)]) as server:
        result = run_fix(project, server, n=1, cache=cache)
    assert {t.status for t in result.tests} == {"verified", "fixed_by"}  # by its own file's tests
    assert result.files == {} and result.fixed_tests == [] and not result.all_fixed
    assert any("makes tests/test_report.py::test_fail_below_seventy fail" in n for n in result.notes)
    assert any("asked again with tests/test_report.py::test_fail_below_seventy checked" in n
               for n in result.notes), result.notes  # fmt: skip
    with scripted([("Every bound excludes its own mark.", ALL)]) as server:
        result = run_fix(project, server, n=1, cache=cache)
        assert server.chat_requests  # asked again: the left-out fix was not kept
    assert result.all_fixed and passes_with(project, result)


def test_a_fix_left_out_for_breaking_another_files_test_is_repaired_from_it_once_more(tmp_path):
    """The model is asked again, from its fix and shown the test of the other file that the fix
    made fail; the fix it then gives keeps that test passing and is offered."""
    elsewhere = "from marks.grade import grade\n\n\ndef test_fail_below_seventy():\n    assert grade(55) == 'F'\n"
    project = make_project(tmp_path / "project", {"marks/grade.py": GRADE, "tests/test_grade.py": GRADE_TESTS,
                                                  "tests/test_report.py": elsewhere})  # fmt: skip
    breaks_elsewhere = ALL.replace('    return "F"', '    if score >= 50:\n        return "E"\n    return "F"')
    asked: list[str] = []

    def reply(messages, params):
        asked.append("\n".join(str(m.get("content", "")) for m in messages))
        if "test_fail_below_seventy" in str(messages[-1].get("content", "")):  # the failure its first fix caused
            return dialogue.format_reply("Scores below seventy are an F, not an E.", ALL)
        return dialogue.format_reply("Every bound excludes its own mark.", breaks_elsewhere)

    events: list[fix.Event] = []
    with LoopbackServer(reply=reply) as server:
        result = run_fix(project, server, n=1, on_event=events.append)
    again = [e for e in events if isinstance(e, fix.RepairingAgain)]
    assert [e.broken for e in again] == ["tests/test_report.py::test_fail_below_seventy"]
    assert result.all_fixed and not result.notes, result.notes
    assert passes_with(project, result)
    assert 'return "E"' in asked[-1]  # the loop started from the fix it left out
    (redone,) = [t for t in result.tests if t.superseded]  # the first repair is kept, and counted
    assert redone.status == "verified" and 'return "E"' in redone.superseded[0].fix.code


def test_with_trace_calls_the_model_sees_what_the_helper_returned(tmp_path):
    """The test calls `total`, which is right; the bug is in the helper it calls. The failure the
    model is shown says what each project function was given and returned."""
    cart = ("def discounted(price, percent):\n    return price * percent / 100\n\n\n"
            "def total(prices, percent):\n    return discounted(sum(prices), percent)\n")  # fmt: skip
    tests = "from marks.cart import total\n\n\ndef test_total():\n    assert total([10, 10], 0) == 20\n"
    project = make_project(tmp_path, {"marks/cart.py": cart, "tests/test_cart.py": tests})
    fixed = "def discounted(price, percent):\n    return price * (100 - percent) / 100\n"
    shown: list[str] = []

    def reply(messages, params):
        shown.append(str(messages[-1].get("content", "")))
        return dialogue.format_reply("`discounted` returns the discount, not the price.", fixed)

    with LoopbackServer(reply=reply) as server:
        result = run_fix(project, server, n=1, trace_calls=True)
        untraced = run_fix(project, server, n=1)
    assert result.all_fixed and passes_with(project, result)
    assert "total(prices=[10, 10], percent=0) returned 0.0" in shown[0]
    assert "\n    discounted(price=20, percent=0) returned 0.0" in shown[0]  # one call deeper
    assert untraced.all_fixed and "returned" not in shown[-1]


def test_the_users_pytest_arguments_reach_every_verification_run(tmp_path):
    """The language server's `pytestArgs` collect more tests (here doctests); verification runs
    that did not get them would miss those tests and refuse every fix."""
    example = '"""\n    >>> grade(100)\n    \'A\'\n\n    Letter grade'
    documented = GRADE.replace('"""Letter grade', example)
    project = make_project(tmp_path, {"marks/grade.py": documented, "tests/test_grade.py": GRADE_TESTS})
    fixed = ALL.replace('"""Letter grade', example)
    with scripted([("Every bound excludes its own mark.", fixed)]) as server:
        result = run_fix(project, server, n=1, pytest_args=("--doctest-modules",))
    assert result.all_fixed and not result.notes, result.notes


def test_an_earlier_result_for_the_same_files_is_reused_without_the_model(tmp_path):
    project = make_project(tmp_path, {"marks/grade.py": GRADE, "tests/test_grade.py": GRADE_TESTS})
    with scripted([("Every bound excludes its own mark.", ALL)]) as server:
        first = run_fix(project, server, tests=[CASE_A], n=1)
        asked = len(server.chat_requests)
        again = run_fix(project, server, tests=[CASE_A], n=1, earlier=first.tests)
        assert len(server.chat_requests) == asked
    assert again.files == first.files and again.tests[0].status == "verified"


def test_a_cancelled_fix_asks_nothing_and_says_so(tmp_path):
    project = make_project(tmp_path, {"marks/grade.py": GRADE, "tests/test_grade.py": GRADE_TESTS})
    cancel = threading.Event()
    cancel.set()
    with scripted([("x", ALL)]) as server:
        result = run_fix(project, server, cancel=cancel)
        assert server.chat_requests == []
    assert result.cancelled and result.files == {}


# --- writing (ledex.source_text) -----------------------------------------------------------------


def test_write_all_keeps_line_endings_encoding_and_mode(tmp_path):
    crlf = tmp_path / "crlf.py"
    crlf.write_bytes(b"def f():\r\n    return 1\r\n")
    crlf.chmod(0o754)
    bom = tmp_path / "bom.py"
    bom.write_bytes(b"\xef\xbb\xbfdef g():\n    return '\xc3\xa9'\n")
    latin = tmp_path / "latin.py"
    latin.write_bytes(b"# -*- coding: latin-1 -*-\ndef h():\n    return '\xe9'\n")
    texts = {p.name: source_text.read_text(p) or "" for p in (crlf, bom, latin)}
    assert texts["crlf.py"] == "def f():\n    return 1\n" and texts["bom.py"].startswith("def g")
    written = source_text.write_all(tmp_path, {
        "crlf.py": (texts["crlf.py"], "def f():\n    return 2\n"),
        "bom.py": (texts["bom.py"], texts["bom.py"].replace("é", "è")),
        "latin.py": (texts["latin.py"], texts["latin.py"].replace("é", "è")),
    })  # fmt: skip
    assert written == ["bom.py", "crlf.py", "latin.py"]
    assert (
        crlf.read_bytes() == b"def f():\r\n    return 2\r\n"
        and crlf.stat().st_mode & 0o777 == 0o754
    )
    assert bom.read_bytes() == b"\xef\xbb\xbfdef g():\n    return '\xc3\xa8'\n"
    assert latin.read_bytes() == b"# -*- coding: latin-1 -*-\ndef h():\n    return '\xe8'\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bom.py",
        "crlf.py",
        "latin.py",
    ]  # no temporaries


def test_write_all_writes_nothing_when_one_file_changed(tmp_path):
    one, two = tmp_path / "one.py", tmp_path / "two.py"
    one.write_text("a = 1\n")
    two.write_text("b = 2  # edited by the user\n")
    with pytest.raises(source_text.WriteRefused, match="two.py changed since the tests ran"):
        source_text.write_all(
            tmp_path, {"one.py": ("a = 1\n", "a = 10\n"), "two.py": ("b = 2\n", "b = 20\n")}
        )
    assert one.read_text() == "a = 1\n" and two.read_text() == "b = 2  # edited by the user\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.py", "two.py"]


def test_write_all_refuses_a_character_the_files_encoding_cannot_hold(tmp_path):
    latin = tmp_path / "latin.py"
    latin.write_bytes(b"# -*- coding: latin-1 -*-\nx = 1\n")
    text = source_text.read_text(latin)
    assert text is not None
    with pytest.raises(source_text.WriteRefused, match="cannot hold"):
        source_text.write_all(tmp_path, {"latin.py": (text, text + "y = '\u2603'\n")})
    assert latin.read_bytes() == b"# -*- coding: latin-1 -*-\nx = 1\n"


def test_a_cached_fix_is_verified_again_and_offered_without_the_model(tmp_path):
    from ledex.fix_cache import FixCache

    project = make_project(
        tmp_path / "project", {"marks/grade.py": GRADE, "tests/test_grade.py": GRADE_TESTS}
    )
    with scripted([("Every bound excludes its own mark.", ALL)]) as server:
        cache = FixCache(tmp_path / "cache", model="the-model")
        first = run_fix(project, server, tests=[CASE_A], n=1, cache=cache)
        asked = len(server.chat_requests)
        again = run_fix(project, server, tests=[CASE_A], n=1, cache=cache)
        assert len(server.chat_requests) == asked  # no model: the cached fix, verified again
        (cached,) = again.tests
        assert cached.cached and cached.status == "verified" and again.files == first.files
        assert cached.fix.explanation == "Every bound excludes its own mark."
        # another model, or the file changed: another key
        other_model = FixCache(cache.directory, "other")
        assert (
            run_fix(project, server, tests=[CASE_A], n=1, cache=other_model).tests[0].cached
            is False
        )
        (project / "marks/grade.py").write_text(GRADE + "\n")
        assert run_fix(project, server, tests=[CASE_A], n=1, cache=cache).tests[0].cached is False


def test_the_cache_key_names_the_weights_not_only_the_spec_string(tmp_path, monkeypatch):
    """A new release's adapter under the same name, or a user's adapter retrained in place, is
    another model: its cached fixes carry the old model's explanation."""
    import dataclasses
    import os
    from types import SimpleNamespace
    from typing import cast

    from ledex import weights
    from ledex.fix_cache import FixCache
    from ledex.fix_cache import model_identity as key
    from ledex.project_repair import ProjectTask

    task = cast(ProjectTask, SimpleNamespace(node_id="t.py::t", also_failing=[], sources={}))
    shipped, entry = key("embedded:0.5b-ledex"), FixCache(tmp_path, "embedded:0.5b-ledex").key(task)
    assert key("embedded:0.5b-ledex") == shipped
    released = dataclasses.replace(weights.ADAPTERS["0.5b-ledex"], sha256="0" * 64)
    monkeypatch.setitem(weights.ADAPTERS, "0.5b-ledex", released)
    assert key("embedded:0.5b-ledex") != shipped
    assert FixCache(tmp_path, "embedded:0.5b-ledex").key(task) != entry

    adapter = tmp_path / "mine.gguf"
    adapter.write_bytes(b"first training")
    own = key(f"embedded:0.5b+{adapter}")
    assert key(f"embedded:0.5b+{adapter}") == own
    adapter.write_bytes(b"retrained, longer")
    os.utime(adapter, ns=(1, 1))
    assert key(f"embedded:0.5b+{adapter}") != own
    folder = tmp_path / "sft"  # a transformers/peft folder: its files are rewritten in place
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(b"first")
    hf = key(f"hf:{folder}")
    (folder / "adapter_model.safetensors").write_bytes(b"second, longer")
    assert key(f"hf:{folder}") != hf
    assert key("hf:~nosuchuser-ledex/model") == key("hf:~nosuchuser-ledex/model")
    # what cannot be told apart is still keyed by its text, never refused
    assert key("openai:http://127.0.0.1:1/v1#m") != key("openai:http://127.0.0.1:1/v1#n")
    assert key("not a spec") == key("not a spec")


def test_a_cached_fix_that_no_longer_verifies_is_not_offered(tmp_path):
    from ledex.fix_cache import FixCache

    project = make_project(
        tmp_path / "project", {"marks/grade.py": GRADE, "tests/test_grade.py": GRADE_TESTS}
    )
    with scripted([("Every bound excludes its own mark.", ALL)]) as server:
        cache = FixCache(tmp_path / "cache", model="the-model")
        first = run_fix(project, server, tests=[CASE_A], n=1, cache=cache)
        (entry,) = cache.directory.glob("*.json")
        entry.write_text(entry.read_text().replace(">=", "<"))  # a fix that is wrong now
        asked = len(server.chat_requests)
        again = run_fix(project, server, tests=[CASE_A], n=1, cache=cache)
        assert len(server.chat_requests) == asked + 1 and not again.tests[0].cached
    assert again.files == first.files


CALLS = """def double(x):
    return x + 2


def scaled(x):
    return double(x) * 10
"""
CALLS_TESTS = """import pytest

from marks.calls import double, scaled


def test_double():
    assert double(3) == 6


@pytest.mark.parametrize("x", [1, 3])
def test_scaled(x):
    assert scaled(x) == 20 * x
"""


def test_a_test_fixed_through_a_reused_fix_counts_as_fixed_by_the_offered_one(tmp_path):
    """test_double's fix is offered; test_scaled[1] reuses it (no model asked) and its group brings
    test_scaled[3] along: both point to the offered fix, so every test counts as fixed."""
    project = make_project(tmp_path, {"marks/calls.py": CALLS, "tests/test_calls.py": CALLS_TESTS})
    fixed = "def double(x):\n    return x * 2\n"
    with scripted([("It adds two instead of doubling.", fixed)]) as server:
        result = run_fix(project, server, n=1)
        asked = len(server.chat_requests)
    statuses = {t.test.rsplit("::", 1)[1]: (t.status, t.fixed_by) for t in result.tests}
    double = "tests/test_calls.py::test_double"
    assert statuses == {
        "test_double": ("verified", ""),
        "test_scaled[1]": ("fixed_by", double),
        "test_scaled[3]": ("fixed_by", double),
    }
    assert asked == 1 and result.included == [double]
    assert len(result.fixed_tests) == 3 and result.all_fixed and passes_with(project, result)


RIDER = """def double(x):
    return x + 2


def offset():
    return 0


def scaled(x):
    return double(x) * 10 + offset()


def label(x):
    return "n" + str(x)
"""
RIDER_TESTS = """from marks.rider import double, label, scaled


def test_double():
    assert double(3) == 6


def test_scaled():
    assert scaled(1) == 20


def test_label():
    assert label(3) == "n=3"
"""


def test_a_fix_that_breaks_a_test_fixed_through_another_fix_is_left_out(tmp_path):
    """test_scaled is fixed by test_double's fix (reused, no model asked); test_label's fix also
    changes `offset`, which breaks test_scaled only when both fixes are applied: the joint
    verification runs test_scaled too, so test_label's fix is left out and no test is claimed
    that the offered files do not fix."""
    project = make_project(tmp_path, {"marks/rider.py": RIDER, "tests/test_rider.py": RIDER_TESTS})

    def reply(messages, params):
        if _asks_about(messages, "test_label"):
            return dialogue.format_reply(
                "It forgets the `=`.",
                'def offset():\n    return 1\n\n\ndef label(x):\n    return "n=" + str(x)\n',
            )
        return dialogue.format_reply("It adds two.", "def double(x):\n    return x * 2\n")

    with LoopbackServer(reply=reply) as server:
        result = run_fix(project, server, n=1)
    statuses = {t.test.rsplit("::", 1)[1]: (t.status, t.fixed_by) for t in result.tests}
    assert statuses == {
        "test_double": ("verified", ""),
        "test_scaled": ("fixed_by", "tests/test_rider.py::test_double"),
        "test_label": ("verified", ""),  # alone, test_scaled was failing anyway
    }
    assert result.included == ["tests/test_rider.py::test_double"]
    assert any("test_label does not verify together" in note for note in result.notes)
    assert sorted(result.fixed_tests) == ["tests/test_rider.py::test_double", "tests/test_rider.py::test_scaled"]
    overlay = {rel: f.new for rel, f in result.files.items()}
    assert run_pytest(project, python=sys.executable, overlay=overlay).passes(result.fixed_tests)


LATE = """def grade(score):
    return "A" if score > 90 else "B"
"""
LATE_TESTS = """from marks.late import grade


def test_a():
    assert grade(90) == "A"


def test_b():
    assert grade(95) == "A" and grade(90) == "A"
"""


def test_a_test_whose_own_repair_failed_is_fixed_by_a_later_tests_fix(tmp_path):
    """test_a's candidate fails; test_b's fix, verified against its whole group, fixes test_a
    too: every test counts as fixed, and the offered files are test_b's fix alone."""
    project = make_project(tmp_path, {"marks/late.py": LATE, "tests/test_late.py": LATE_TESTS})

    def reply(messages, params):
        if _asks_about(messages, "test_a"):
            return dialogue.format_reply("It swaps the grades.", LATE.replace('"A" if', '"B" if').replace('else "B"', 'else "A"'))
        return dialogue.format_reply("90 is an A.", LATE.replace("score > 90", "score >= 90"))

    with LoopbackServer(reply=reply) as server:
        result = run_fix(project, server, n=1)
    statuses = {t.test.rsplit("::", 1)[1]: (t.status, t.fixed_by) for t in result.tests}
    assert statuses == {"test_a": ("fixed_by", "tests/test_late.py::test_b"), "test_b": ("verified", "")}
    assert result.included == ["tests/test_late.py::test_b"] and result.all_fixed
    assert passes_with(project, result)


def test_a_later_full_fix_supersedes_a_partial_one_and_what_it_covered(tmp_path):
    """[90-A]'s repair finds only a partial fix (A and B, not C), which covers [80-B]; [70-C]'s
    repair fixes all three: the partial fix is not offered, and every test counts as fixed by
    [70-C]'s fix."""
    project = make_project(tmp_path, {"marks/grade.py": GRADE, "tests/test_grade.py": GRADE_TESTS})
    a_and_b = GRADE.replace("score > 90", "score >= 90").replace("score > 80", "score >= 80")

    def reply(messages, params):
        if any("'F' == 'C'" in str(m.get("content", "")) for m in messages):  # [70-C]'s prompt
            return dialogue.format_reply("Every bound excludes its own mark.", ALL)
        return dialogue.format_reply("A and B exclude their marks.", a_and_b)

    with LoopbackServer(reply=reply) as server:
        result = run_fix(project, server, n=1)
    c = "tests/test_grade.py::test_grade[70-C]"
    assert {t.test: (t.status, t.fixed_by) for t in result.tests} == {
        CASE_A: ("fixed_by", c),
        OTHERS[0]: ("fixed_by", c),
        c: ("verified", ""),
    }
    assert result.included == [c] and result.all_fixed and passes_with(project, result)
