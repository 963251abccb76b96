"""The pure parts of benchmarks/repair.py: percentiles, case selection, resuming, the summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import repair as bench  # noqa: E402
from benchmarks.cases.check_cases import CASES_ROOT, load_cases  # noqa: E402


def test_percentile_interpolates_like_numpy():
    assert bench.percentile([], 50) is None
    assert bench.percentile([7.0], 90) == 7.0
    assert bench.percentile([3, 1, 2], 50) == 2
    assert bench.percentile([1, 2, 3, 4], 50) == 2.5
    assert bench.percentile(range(1, 11), 90) == pytest.approx(9.1)


def test_select_cases_by_name_substring_then_limit():
    cases = load_cases(CASES_ROOT)
    assert bench.select_cases(cases) == cases
    assert bench.select_cases(cases, limit=2) == cases[:2]
    async_cases = bench.select_cases(cases, ["async"])
    assert async_cases and all("async" in c.name for c in async_cases)
    assert [c.name for c in bench.select_cases(cases, [cases[3].name])] == [cases[3].name]
    assert bench.select_cases(cases, ["no-such-case"]) == []


def _record(
    model="m",
    style="refine",
    rounds=1,
    case="c1",
    test="t::a",
    verified=True,
    seconds=10.0,
    generation=8.0,
    verification=1.5,
    **extra,
):
    return {
        "model": model,
        "style": style,
        "rounds": rounds,
        "n": 2,
        "seed": 0,
        "case": case,
        "test": test,
        "verified": verified,
        "seconds": seconds,
        "generation_seconds": generation,
        "verification_seconds": verification,
        "other_seconds": seconds - generation - verification,
        "located_bug": True,
        **extra,
    }


def test_read_records_resumes_and_ignores_a_torn_last_line(tmp_path):
    out = tmp_path / "run.jsonl"
    assert bench.read_records(out) == []
    out.write_text(
        json.dumps(_record())
        + "\n\n"
        + json.dumps(_record(test="t::b"))
        + "\n"
        + '{"model": "m", "sty'
    )
    records = bench.read_records(out)
    assert [r["test"] for r in records] == ["t::a", "t::b"]
    assert bench.record_key(records[0]) == ("m", "refine", 1, 2, 0, "c1", "t::a")


def test_summarize_one_row_per_configuration():
    records = [
        _record(test="t::a", seconds=10, candidates=[{"status": "passed", "tokens": 120}]),
        _record(
            test="t::b",
            verified=False,
            seconds=30,
            candidates=[
                {"parse_error": "no code", "tokens": 80},
                {"status": "rejected", "tokens": 300},
            ],
        ),
        _record(
            case="c2",
            test="t::c",
            seconds=20,
            candidates=[{"status": "failed"}, {"duplicate_of": 0, "status": "failed"}],
        ),
        _record(rounds=3, test="t::a", seconds=5, redrawn=[2, 1]),
    ]
    one, three = bench.summarize(records)
    assert (one.rounds, one.tests, one.verified, one.cases, one.fixed_cases) == (1, 3, 2, 2, 1)
    assert one.p50 == 20 and one.p90 == pytest.approx(28) and one.p50_fix == 15
    assert one.seconds == 60 and one.other == pytest.approx(60 - 3 * 9.5)
    assert one.statuses == {"passed": 1, "no-code": 1, "rejected": 1, "failed": 1, "duplicate": 1}
    assert bench.table_rows([one])[0][-1] == "dup 1 fail 1 no-code 1 pass 1 rej 1"
    assert (three.rounds, three.tests, three.fixed_cases, three.cases) == (3, 1, 1, 1)
    assert bench.table_rows([three])[0][-1] == "redraw 3"  # replies drawn again are no candidates
    assert one.p50_tokens == 120 and three.p50_tokens is None
    cells = bench.table_rows([one])[0]
    assert len(cells) == len(bench.TABLE_HEADER)
    assert cells[bench.TABLE_HEADER.index("tokens/reply")] == "120"
    assert cells[3] == "2/3 (67%)" and cells[4] == "1/2"


def test_parse_args_defaults(tmp_path):
    args = bench.parse_args([])
    assert args.models == ["embedded:0.5b", "embedded"]
    assert args.styles == ["explain+refine", "refine"]
    assert args.rounds_list == [1, 3] and args.n == 4
    assert args.out.parent == bench.RESULTS_DIR and args.out.suffix == ".jsonl"
    with pytest.raises(SystemExit):
        bench.parse_args(["-n", "0"])


def test_fewer_rounds_are_derived_as_the_prefix_of_a_longer_run():
    fixed_in_round_2 = _record(
        rounds=3, seconds=40.0, generation=30.0, verification=8.0, rounds_used=2,
        candidates_count=4, pytest_seconds=6.0,
        round_seconds=[[14.0, 3.0], [16.0, 5.0]], redrawn=[1, 0],
        candidates=[
            {"round": 1, "status": "failed", "passed": 1, "total": 2, "duplicate_of": None, "diff": "d1"},
            {"round": 1, "status": "rejected", "passed": 0, "total": 2, "duplicate_of": None},
            {"round": 2, "status": "passed", "passed": 2, "total": 2, "duplicate_of": None, "diff": "d2"},
            {"round": 2, "status": "failed", "passed": 0, "total": 2, "duplicate_of": None},
        ],
    )  # fmt: skip
    one = bench.prefix_record(fixed_in_round_2, 1)
    assert one["rounds"] == 1 and one["derived_from"] == 3 and not one["verified"]
    assert one["candidates_count"] == 2 and one["rounds_used"] == 1 and one["diff"] == "d1"
    assert one["redrawn"] == [1]
    assert one["seconds"] == 19.0 and one["generation_seconds"] == 14.0
    assert one["verification_seconds"] == 3.0 and one["pytest_seconds"] == pytest.approx(6 * 3 / 8)
    assert bench.prefix_record(fixed_in_round_2, 2)["verified"]
    with pytest.raises(ValueError):
        bench.prefix_record(fixed_in_round_2, 3)
    derived = bench.derive_missing([fixed_in_round_2], [1, 3])
    assert [r["rounds"] for r in derived] == [1]
    assert bench.derive_missing([fixed_in_round_2, *derived], [1, 3]) == []


def test_the_loop_and_the_naive_anchor_run_side_by_side_on_a_case(tmp_path, capsys):
    """A real run of the benchmark on one case with a scripted loopback model: both styles are
    measured, and the anchor's one request is a plain prompt with pytest's report and the files."""
    from benchmarks.cases.check_cases import reference_fix_code
    from ledex import dialogue
    from tests.support.openai_loopback import LoopbackServer

    (case,) = [c for c in load_cases(CASES_ROOT) if c.name == "bank_withdraw_comparison"]
    reply = dialogue.format_reply("`>=` refuses the whole balance.", reference_fix_code(case))
    out = tmp_path / "records.jsonl"
    with LoopbackServer(reply=lambda messages, params: reply) as server:
        code = bench.main(["--models", f"openai:{server.url}#m", "--styles", "explain+refine", "anchor",
                           "--rounds-list", "1", "-n", "1", "--cases", case.name, "--out", str(out)])  # fmt: skip
        requests = [r.body["messages"] for r in server.chat_requests]
    assert code == 0
    records = bench.read_records(out)
    verdicts = sorted((r["style"], r["verified"]) for r in records)
    assert verdicts == [("anchor", True)] * 2 + [("explain+refine", True)] * 2
    plain = [m for m in requests if len(m) == 1]
    assert len(plain) == 2 and plain[0][0]["role"] == "user"
    assert "bank/account.py:\n```python\n" in plain[0][0]["content"]
    assert (
        "InsufficientFunds" in plain[0][0]["content"]
        and "tests/test_account.py::" in plain[0][0]["content"]
    )
    assert "anchor" in capsys.readouterr().out


def test_ratios_to_a_baseline_configuration_and_the_report_of_a_file(tmp_path, capsys):
    records = [
        _record(model="trained", style="explain+refine", test="t::a", seconds=4),
        _record(model="trained", style="explain+refine", test="t::b", seconds=6),
        _record(model="big", style="anchor", test="t::a", seconds=20),
        _record(model="big", style="anchor", test="t::b", verified=False, seconds=30),
        _record(model="small", style="refine", test="t::a", verified=False),
        _record(model="small", style="refine", test="t::b", verified=False),
    ]
    lines = bench.ratio_lines(bench.summarize(records), "big anchor", records)
    assert lines[0].startswith("ratios to the baseline big anchor r1")
    assert "trained explain+refine r1: verified tests 2.00x, fixed cases -, p50 s/fix 0.25x" in lines[1]
    assert "paired on 2 tests: 1 verified only here, 0 only by the baseline, McNemar exact p=1.000" in lines[1]
    assert "small refine r1: verified tests 0.00x" in lines[2] and "0 verified only here, 1 only" in lines[2]
    assert bench.mcnemar_p(11, 3) == pytest.approx(0.0574, abs=1e-4)  # scipy's binomtest agrees
    assert bench.mcnemar_p(0, 0) == 1.0
    table = bench.markdown_table(records).splitlines()
    assert table[0].startswith("| model | style |") and len(table) == 2 + 3
    assert "no such configuration" in bench.ratio_lines(bench.summarize(records), "nobody anchor")[0]

    out = tmp_path / "run.jsonl"
    real_case = load_cases(CASES_ROOT)[0].name
    out.write_text("".join(json.dumps({**r, "case": real_case}) + "\n" for r in records))
    with pytest.raises(SystemExit):
        bench.parse_args(["--report", "--out", str(tmp_path / "missing.jsonl")])
    args = ["--report", "--out", str(out), "-n", "2", "--baseline", "big anchor"]
    assert bench.main(args) == 0
    printed = capsys.readouterr().out
    assert "trained" in printed and "small" in printed and "ratios to the baseline big anchor" in printed
    assert bench.main([*args, "--markdown"]) == 0
    assert "| trained | explain+refine | 1 | 2/2 (100%) |" in capsys.readouterr().out
