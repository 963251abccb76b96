"""benchmarks/fix_projects.py: `ledex fix` per project, and its own check of the outcome."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import fix_projects as bench  # noqa: E402
from benchmarks.cases.check_cases import CASES_ROOT, load_cases, reference_fix_code  # noqa: E402
from benchmarks.repair import prepare_case, read_records  # noqa: E402

CASE = "bank_withdraw_comparison"  # two failing tests, one bug in `withdraw`


def _case():
    (case,) = [c for c in load_cases(CASES_ROOT) if c.name == CASE]
    return case


def test_a_model_that_fixes_against_one_that_does_not(tmp_path, capsys):
    """Two real runs of the workflow over the loopback protocol: the fixing model's project passes
    the benchmark's own run of every test, the other's does not; the report pairs them."""
    from ledex import dialogue
    from tests.support.openai_loopback import LoopbackServer

    fixing = dialogue.format_reply("`>=` refuses the whole balance.", reference_fix_code(_case()))
    out = tmp_path / "projects.jsonl"
    with LoopbackServer(reply=lambda m, p: fixing) as good, \
            LoopbackServer(reply=lambda m, p: "I cannot tell.") as bad:  # fmt: skip
        models = [f"openai:{good.url}#m", f"openai:{bad.url}#m"]
        code = bench.main(["--models", *models, "-n", "1", "--rounds", "1", "--cases", CASE,
                           "--out", str(out), "--baseline", models[1]])  # fmt: skip
        asked = len(good.chat_requests)
    assert code == 0
    first, second = read_records(out, kind="project")
    assert (first["model"], first["fixed"], first["claimed"], first["tests_fixed"]) == (
        models[0],
        True,
        True,
        2,
    )
    assert first["check"] == "0 failed" and "account.py" in first["diff"]
    (tried,) = [c for cs in first["tried"].values() for c in cs]  # each candidate, in brief
    assert tried["status"] == "passed" and "account.py" in tried["diff"]
    # one repair fixed both tests: the second is judged with the first, not asked again
    assert asked == 1 and sorted(first["statuses"].values()) in (
        ["fixed_by", "verified"],
        ["verified", "verified"],
    )
    assert (second["fixed"], second["claimed"], second["tests_fixed"]) == (False, False, 0)
    printed = capsys.readouterr().out
    assert "1/1 (100%)" in printed and "0/1 (0%)" in printed
    assert "1 fixed only here, 0 only by the baseline" in printed

    # resumed: nothing is run again, and --report prints the same table from the file
    assert (
        bench.main(
            ["--models", *models, "-n", "1", "--rounds", "1", "--cases", CASE, "--out", str(out)]
        )
        == 0
    )
    assert len(read_records(out, kind="project")) == 2
    capsys.readouterr()
    assert (
        bench.main(
            [
                "--report",
                "--markdown",
                "-n",
                "1",
                "--rounds",
                "1",
                "--cases",
                CASE,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert f"| {models[0]} | 1 x 1 | 1/1 (100%) | 2/2 |" in capsys.readouterr().out


def test_the_check_does_not_take_the_workflows_word(tmp_path, monkeypatch):
    """A workflow that calls a project fixed while its files fix nothing: the benchmark's own run
    of every test says not fixed, and the row counts a disagreement."""
    from ledex import fix

    prepared = prepare_case(_case(), tmp_path, timeout=60)
    relpath = "bank/account.py"
    original = (prepared.project / relpath).read_text()

    def forged(project, run, tests, backend, config, **_):
        claimed = [fix.TestFix(t.node_id, t.message, fixed_by=tests[0].node_id) for t in tests]
        return fix.FixResult(
            project,
            claimed,
            files={relpath: fix.FileFix(relpath, original, original + "\n# fixed\n")},
            included=[tests[0].node_id],
        )

    monkeypatch.setattr(fix, "fix_tests", forged)
    record = bench.fix_project(prepared, backend=None, config=fix.FixConfig(python=sys.executable))
    assert (record["claimed"], record["fixed"], record["tests_fixed"]) == (True, False, 0)
    assert record["check"] == "2 failed"
    row = bench.summarize([{**record, "model": "m", "n": 1, "rounds": 1, "project": CASE}])[0]
    assert (row.fixed, row.disagreements) == (0, 1)


def test_parse_args_defaults_are_ledex_fix_s(tmp_path):
    args = bench.parse_args(["--out", str(tmp_path / "x.jsonl")])
    assert (args.n, args.rounds, args.seed, args.suite) == (4, 3, 0, "cases")
    with pytest.raises(SystemExit):
        bench.parse_args(["--rounds", "0"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--report", "--out", str(tmp_path / "missing.jsonl")])


def test_a_project_that_raised_is_run_again_and_its_new_record_wins():
    key = {"model": "m", "n": 4, "rounds": 3, "seed": 0, "project": "p"}
    failed = {**key, "failing": ["t::a"], "claimed": False, "fixed": False, "tests_fixed": 0,
              "error": "fix_tests raised ConnectionError()", "seconds": 1.0}  # fmt: skip
    again = {
        **failed,
        "error": None,
        "fixed": True,
        "claimed": True,
        "tests_fixed": 1,
        "seconds": 9.0,
    }
    assert bench.latest([failed]) == [failed] and bench.latest([failed, again]) == [again]
    (row,) = bench.summarize([failed])
    assert (row.fixed, row.errors) == (0, 1)
    assert bench.table_rows([row])[0][-2:] == ["1", "0"]  # errors, disagreements


def test_tokens_per_reply_are_counted_where_the_backend_can_and_reported():
    from ledex.repair import Candidate, RepairResult, RoundRecord

    replies = [Candidate(1, 0, "one two three"), Candidate(1, 1, "four five")]
    result = RepairResult("t", rounds=[RoundRecord(1, "", replies)])
    words = lambda text: len(text.split())  # noqa: E731 - a backend's count_tokens
    assert [c["tokens"] for c in bench._tried(result, words)] == [3, 2]
    assert [c["tokens"] for c in bench._tried(result)] == [None, None]  # a remote API: unknown
    record = {"model": "m", "n": 1, "rounds": 1, "project": "p", "failing": ["t"], "claimed": False,
              "fixed": False, "tests_fixed": 0, "error": None, "seconds": 1.0,
              "tried": {"t": bench._tried(result, words)}}  # fmt: skip
    (row,) = bench.summarize([record])
    assert row.p50_tokens == 2.5
    assert "| tokens/reply |" in bench.markdown_table([record])
    assert "| - | 0.0 | 2 | 0% |" in bench.markdown_table([record])  # p50 s/fixed, candidates, tokens
