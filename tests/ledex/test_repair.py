"""The repair loop on benchmark problems: rounds, dedup, feedback threading, records.

The model's side is scripted through the loopback OpenAI-compatible server (so each round's reply
is known); verification is real (the sandbox runs every candidate). The end-to-end test with a
real model lives in tests/e2e.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ledex import dialogue
from ledex import repair as repair_module
from ledex.models.openai_http import OpenAIBackend
from ledex.repair import (
    Problem,
    ProblemVerifier,
    RepairConfig,
    RepairResult,
    RoundRecord,
    _loop_cut,
    _replies,
    normalise_code,
    repair_problem,
)
from tests.support.openai_loopback import LoopbackServer

PROBLEM = Problem(
    id="median",
    description="Return the median of a non-empty list of numbers.",
    tests=("assert median([3, 1, 2]) == 2", "assert median([4, 1, 3, 2]) == 2.5", "assert median([7]) == 7"),
    code="def median(xs):\n    xs = sorted(xs)\n    return xs[len(xs) // 2]\n",
    entry_point="median",
)
PROBLEM_VERIFIER = ProblemVerifier(PROBLEM)
RIGHT = "def median(xs):\n    xs = sorted(xs)\n    m = len(xs) // 2\n    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2\n"
STILL_WRONG = "def median(xs):\n    return sorted(xs)[0]\n"


def _reply(explanation: str, code: str) -> str:
    return dialogue.format_reply(explanation, code)


def _run(server: LoopbackServer, **config) -> RepairResult:
    with OpenAIBackend(server.url, "m") as backend:
        return repair_problem(PROBLEM, backend, RepairConfig(**config))


def test_a_fix_in_round_one_is_verified_and_stops_the_loop():
    replies = iter([_reply("Even lengths need the mean of the middle two.", RIGHT)])
    with LoopbackServer(reply=lambda messages, params: next(replies), max_choices=1) as server:
        result = _run(server, n=1, rounds=3)
    assert result.verified and len(result.rounds) == 1
    assert result.fix.explanation == "Even lengths need the mean of the middle two."
    assert result.fix.verdict.passed == 3 and "+    return xs[m] if" in result.fix.diff
    first_prompt = server.chat_requests[0].body["messages"]
    assert "median([4, 1, 3, 2]) returned 3, expected 2.5" in first_prompt[-1]["content"]


def test_later_rounds_get_the_feedback_of_the_most_promising_candidate():
    def reply(messages, params):
        if STILL_WRONG.strip() not in messages[1]["content"]:  # round 1
            return [_reply("no", "def median(xs):\n    return 1 / 0\n"),
                    _reply("closer", STILL_WRONG)][params["index"] % 2]  # fmt: skip
        return _reply("fixed", RIGHT)

    with LoopbackServer(reply=reply) as server:
        result = _run(server, n=2, rounds=3)
    assert result.verified and len(result.rounds) == 2
    first, second = server.chat_requests[0].body["messages"], server.chat_requests[-1].body["messages"]
    # round 2 repairs the candidate that passed a test, as a conversation of its own
    assert len(second) == len(first) == 3 and second[0] == first[0]
    assert second[1] == {"role": "assistant", "content": dialogue.format_reply("", STILL_WRONG)}
    assert "expected" in second[-1]["content"] and "ZeroDivisionError" not in second[-1]["content"]
    assert result.rounds[1].feedback == second[-1]["content"].split("\n\nExplain")[0]


def test_a_round_that_did_worse_does_not_replace_the_code_being_repaired():
    def reply(messages, params):
        if STILL_WRONG.strip() in messages[1]["content"]:  # rounds 2 and 3 start from it
            return _reply("worse", "def median(xs):\n    return 1 / 0\n")
        return _reply("closer", STILL_WRONG)

    with LoopbackServer(reply=reply) as server:
        _run(server, n=1, rounds=3)
    second, third = (r.body["messages"] for r in server.chat_requests[1:])
    assert second == third  # round 3 did not move to the crashing candidate of round 2


def test_identical_candidates_are_verified_once_and_rounds_are_bounded():
    variants = [STILL_WRONG, "def median(xs):\n\n    return sorted(xs)[0]  # same AST\n"]
    with LoopbackServer(reply=lambda m, p: _reply("hm", variants[p["index"] % 2])) as server:
        result = _run(server, n=2, rounds=2)
    assert not result.verified and len(result.rounds) == 2
    first, second = result.rounds[0].candidates
    assert second.duplicate_of == first.index and second.verdict == first.verdict
    assert result.best is not None and result.best.verdict.passed == 0 or result.best.verdict.passed == 1


def test_unparsable_replies_are_recorded_not_fatal():
    with LoopbackServer(reply=lambda m, p: "I am not sure what is wrong.") as server:
        result = _run(server, n=2, rounds=2)
    assert not result.verified and result.best is None
    assert all(c.parse_error for c in result.candidates) and len(result.candidates) == 4
    assert result.to_dict()["candidates"] == 4


def test_cancellation_stops_between_candidates():
    cancel = threading.Event()
    with LoopbackServer(reply=lambda m, p: _reply("x", STILL_WRONG)) as server, OpenAIBackend(server.url, "m") as backend:
        result = repair_problem(PROBLEM, backend, RepairConfig(n=2, rounds=3),
                                progress=lambda event, details: event == "verified" and cancel.set(),
                                cancel=cancel)  # fmt: skip
    assert result.cancelled and len(result.candidates) == 1


def test_normalised_code_ignores_formatting_and_comments():
    assert normalise_code("def f( x ):\n    return x  # c\n") == normalise_code("def f(x):\n\n    return x\n")
    assert normalise_code("def f(x): return x") != normalise_code("def f(x): return -x")


def _by_seed(replies: dict[int, str]) -> Callable[[list, dict], str]:
    """A scripted model: the reply for each request's seed."""
    return lambda messages, params: replies[params["seed"]]


def _sequential(server: LoopbackServer) -> OpenAIBackend:
    """The loopback backend flagged like llama.cpp: the loop then streams one candidate at a time."""
    backend = OpenAIBackend(server.url, "m")
    backend.info.sequential = True
    return backend


def test_a_sequential_backend_is_asked_for_one_candidate_at_a_time_until_one_verifies():
    replies = {5: _reply("still wrong", STILL_WRONG), 6: _reply("fixed", RIGHT) + "\n\nNow every test passes."}
    with LoopbackServer(reply=lambda m, p: replies.get(p["seed"], "nothing")) as server, _sequential(server) as backend:
        result = repair_problem(PROBLEM, backend, RepairConfig(n=4, rounds=1, seed=5))
    assert result.verified and [c.index for c in result.candidates] == [0, 1]
    bodies = [r.body for r in server.chat_requests]
    # the same seeds a batched request would have used for candidates 0 and 1; the rest never asked
    assert [(b["stream"], b.get("n", 1), b["seed"]) for b in bodies] == [(True, 1, 5), (True, 1, 6)]
    # the reply ends with its code block: the recap after it was not waited for
    assert result.fix.reply.rstrip().endswith("```") and "Now every" not in result.fix.reply


def test_a_quote_of_the_bug_does_not_end_a_streamed_reply():
    reply = ("The middle is wrong here:\n\n```python\n" + PROBLEM.code + "```\n\nThe fix:\n\n"
             + _reply("", RIGHT) + "\n\nDone.")  # fmt: skip
    with LoopbackServer(reply=lambda m, p: reply) as server, _sequential(server) as backend:
        result = repair_problem(PROBLEM, backend, RepairConfig(n=1, rounds=1))
    assert result.verified and result.fix.code == RIGHT.strip()
    assert "Done." not in result.fix.reply


def test_an_explanation_after_the_code_is_waited_for():
    reply = _reply("", RIGHT) + "\n\nEven lengths need the mean of the middle two."
    with LoopbackServer(reply=lambda m, p: reply) as server, _sequential(server) as backend:
        result = repair_problem(PROBLEM, backend, RepairConfig(n=1, rounds=1))
    assert result.fix.explanation == "Even lengths need the mean of the middle two."


def test_later_rounds_sample_hotter():
    wrong = iter(f"def median(xs):\n    return {i}\n" for i in range(100))
    with LoopbackServer(reply=lambda m, p: _reply("guess", next(wrong))) as server:
        _run(server, n=2, rounds=4, temperature=0.6)
    assert [r.body["temperature"] for r in server.chat_requests] == [0.6, 0.8, 1.0, 1.0]
    with LoopbackServer(reply=lambda m, p: _reply("guess", next(wrong))) as server:
        _run(server, n=2, rounds=2, temperature=0)  # greedy stays greedy
    assert [r.body["temperature"] for r in server.chat_requests] == [0, 0]


def test_a_reply_that_cannot_be_applied_does_not_seed_the_next_round():
    # the code unchanged: sampled again from the same conversation, not fed back to the model
    with LoopbackServer(reply=lambda m, p: _reply("looks fine", PROBLEM.code)) as server:
        result = _run(server, n=1, rounds=2)
    # each round's reply is drawn again once (`test_a_reply_whose_code_changes_nothing_is_drawn_again`)
    assert [r.body["seed"] for r in server.chat_requests] == [0, 10_007, 1, 10_008]
    first, *others = (r.body["messages"] for r in server.chat_requests)
    assert all(other == first for other in others) and len(result.rounds) == 2
    assert result.candidates[0].verdict.status == "rejected"


def test_cancellation_stops_a_streamed_candidate_mid_reply():
    cancel, gate = threading.Event(), threading.Event()
    reply = _reply("a long explanation " * 20, RIGHT)
    conversation = dialogue.build_conversation("task", PROBLEM.code, "it fails")
    with (
        LoopbackServer(reply=lambda m, p: reply, stream_gate=gate) as server,
        _sequential(server) as backend,
    ):
        threading.Timer(0.2, lambda: (cancel.set(), gate.set())).start()
        replies = _replies(backend, conversation, RepairConfig(n=2), 0, RoundRecord(1, ""), PROBLEM.code,
                           PROBLEM_VERIFIER.unchanged, cancel)  # fmt: skip
        text = next(replies)
        replies.close()
    # the stream paused after its first word: the reply stops a word or so later
    assert text.startswith("a long") and len(text) < 40
    assert len(server.chat_requests) == 1


def test_a_reply_stuck_in_a_loop_is_cut_short():
    looping = "The comparison is wrong.\n\n```python\ndef median(xs):\n    xs = sorted(xs)  # " + "<--- " * 3000
    replies = {0: looping, 1: _reply("fixed", RIGHT)}
    with LoopbackServer(reply=lambda m, p: replies[p["seed"]]) as server, _sequential(server) as backend:
        result = repair_problem(PROBLEM, backend, RepairConfig(n=2, rounds=1, seed=0))
    stuck, fixed = result.candidates
    # stopped a few hundred characters into the loop, not at max_tokens, its repeats dropped
    assert stuck.reply.endswith("sorted(xs)  # <--- ") and stuck.reply.count("<---") == 1
    assert result.fix is fixed and fixed.index == 1  # the next candidate runs


def test_a_repeated_long_line_is_a_loop_too():
    line = "    # the running total is compared with the previous window's total here\n"
    text = "```python\ndef median(xs):\n" + line * 7
    assert _loop_cut(text) == len(text) - 6 * len(line)


def test_repeated_lines_of_real_code_are_not_a_loop():
    code = Path(repair_module.__file__).read_text()
    assert all(_loop_cut(code[:end]) is None for end in range(100, len(code), 100))
    table = "CASES = [\n" + "".join(f"    ({i}, {i * i}),\n" for i in range(100))
    assert _loop_cut(table) is None


def test_an_explanation_that_gives_a_line_as_its_own_fix_is_stopped_and_drawn_again():
    echo = "`return xs[len(xs) // 2]` should be `return xs[len(xs) // 2]`.\n\n" + _reply("", PROBLEM.code)
    replies = {0: echo, 1: echo, 10_007: _reply("Even lengths need the mean of the middle two.", RIGHT)}
    with LoopbackServer(reply=lambda m, p: replies.get(p["seed"], echo)) as server, _sequential(server) as backend:
        result = repair_problem(PROBLEM, backend, RepairConfig(n=2, rounds=1, seed=0))
    (record,) = result.rounds
    assert result.verified and result.fix.index == 0 and record.redrawn == 1
    assert [r.body["seed"] for r in server.chat_requests] == [0, 10_007]

    # at most n redraws a round: the last draws run to the end (their unchanged code is rejected)
    with LoopbackServer(reply=lambda m, p: echo) as server, _sequential(server) as backend:
        result = repair_problem(PROBLEM, backend, RepairConfig(n=2, rounds=1, seed=0))
    (record,) = result.rounds
    assert not result.verified and record.redrawn == 2
    assert [r.body["seed"] for r in server.chat_requests] == [0, 10_007, 20_014, 1]
    assert all(c.verdict.status == "rejected" and "```" in c.reply for c in result.candidates)
    # greedy: another seed would write the same reply, so it is not drawn again
    with LoopbackServer(reply=lambda m, p: echo) as server, _sequential(server) as backend:
        result = repair_problem(PROBLEM, backend, RepairConfig(n=2, rounds=1, seed=0, temperature=0))
    assert result.rounds[0].redrawn == 0 and len(server.chat_requests) == 2


def test_a_reply_whose_code_changes_nothing_is_drawn_again():
    """A third to a half of the 0.5B models' candidates came back unchanged on the generated suites:
    such a reply (formatting and comments do not count as a change) is drawn again like an echo,
    in both styles, within the same n redraws a round."""
    reformatted = "def median(xs):\n    xs = sorted( xs )  # sorted copy\n\n    return xs[len(xs)//2]\n"
    for unchanged in (_reply("Sort first.", PROBLEM.code), _reply("Sort first.", reformatted), "```python\n" + PROBLEM.code + "```"):
        replies = {0: unchanged, 10_007: _reply("Even lengths need the mean of the middle two.", RIGHT)}
        for style in ("explain+refine", "refine"):
            with LoopbackServer(reply=_by_seed(replies)) as server, \
                    _sequential(server) as backend:  # fmt: skip
                result = repair_problem(PROBLEM, backend, RepairConfig(n=2, rounds=1, seed=0, style=style))
            assert result.verified and result.fix.index == 0 and result.rounds[0].redrawn == 1, (unchanged, style)
            assert [r.body["seed"] for r in server.chat_requests] == [0, 10_007]
    # a reply that changes the code, even a wrong change, is kept and verified
    with LoopbackServer(reply=lambda m, p: _reply("Sort first.", STILL_WRONG)) as server, _sequential(server) as backend:
        result = repair_problem(PROBLEM, backend, RepairConfig(n=2, rounds=1, seed=0))
    assert result.rounds[0].redrawn == 0 and [c.verdict.status for c in result.candidates] == ["failed", "failed"]
    # at most n redraws a round, the last draws kept and rejected
    unchanged = _reply("Sort first.", PROBLEM.code)
    with LoopbackServer(reply=lambda m, p: unchanged) as server, _sequential(server) as backend:
        result = repair_problem(PROBLEM, backend, RepairConfig(n=2, rounds=1, seed=0))
    assert result.rounds[0].redrawn == 2 and not result.verified
    assert [r.body["seed"] for r in server.chat_requests] == [0, 10_007, 20_014, 1]
    assert all(c.verdict.status == "rejected" for c in result.candidates)


def test_a_later_round_draws_again_a_reply_that_sends_back_the_code_it_was_shown():
    """After round 1 the code shown is an earlier candidate's, whose verdict is known: sent back,
    it is no fix either (the verifier, comparing with the original, would not call it unchanged)."""
    replies = {0: _reply("Take the first.", STILL_WRONG), 1: _reply("Take the first, sorted.", STILL_WRONG),
               10_008: _reply("Even lengths need the mean of the middle two.", RIGHT)}  # fmt: skip
    with LoopbackServer(reply=_by_seed(replies)) as server, _sequential(server) as backend:
        result = repair_problem(PROBLEM, backend, RepairConfig(n=1, rounds=2, seed=0))
    assert result.verified and [r.redrawn for r in result.rounds] == [0, 1]
    assert [r.body["seed"] for r in server.chat_requests] == [0, 1, 10_008]
    assert STILL_WRONG.strip() in server.chat_requests[1].body["messages"][1]["content"]


def test_a_fix_outside_any_function_is_not_taken_for_an_unchanged_reply():
    """On a problem the whole program is compared: a missing import is a change, and it is run."""
    problem = Problem("root", "Square root.", ("assert root(9) == 3",), "def root(x):\n    return math.isqrt(x)\n", "root")  # fmt: skip
    fixed = _reply("`math` is never imported.", "import math\n\n" + problem.code)
    with LoopbackServer(reply=lambda m, p: fixed) as server, _sequential(server) as backend:
        result = repair_problem(problem, backend, RepairConfig(n=2, rounds=1, seed=0))
    assert result.verified and result.rounds[0].redrawn == 0 and len(server.chat_requests) == 1


def test_a_batch_draws_its_echoed_replies_again_once():
    """A batched backend (vLLM, a remote API) is not stopped while it writes: the echoed replies
    of its batch are asked for again in one more request, with other seeds, once, each in its
    own place; it is made only when the loop reaches the first echo."""
    echo = "`return xs[len(xs) // 2]` should be `return xs[len(xs) // 2]`.\n\n" + _reply("", PROBLEM.code)
    right = _reply("Even lengths need the mean of the middle two.", RIGHT)
    wrong = _reply("Sort first.", STILL_WRONG)
    batches = {0: [wrong, echo, wrong, echo], 10_007: [right, echo]}

    def run(first: list[str], **config) -> tuple[RepairResult, LoopbackServer]:
        replies = {**batches, 0: first}
        with LoopbackServer(reply=lambda m, p: replies[p["seed"]][p["index"]]) as server, \
                OpenAIBackend(server.url, "m") as backend:  # fmt: skip
            return repair_problem(PROBLEM, backend, RepairConfig(rounds=1, seed=0, **config)), server

    result, server = run(batches[0], n=4, stop_at_first=False)
    assert [(r.body["seed"], r.body["n"]) for r in server.chat_requests] == [(0, 4), (10_007, 2)]
    assert result.rounds[0].redrawn == 2 and result.verified
    # the redrawn replies take the echoes' places; one that echoes again is kept, and rejected
    assert [c.reply for c in result.candidates] == [wrong, right, wrong, echo]
    assert [c.verdict.status for c in result.candidates] == ["failed", "passed", "failed", "rejected"]
    # a fix verified before the first echo needs no second request
    result, server = run([right, echo], n=2)
    assert result.verified and len(server.chat_requests) == 1 and result.rounds[0].redrawn == 0
    # greedy: nothing is drawn again
    result, server = run([echo, echo], n=2, temperature=0)
    assert result.rounds[0].redrawn == 0 and len(server.chat_requests) == 1
    # a reply whose code changes nothing is drawn again with them
    unchanged = _reply("Sort first.", PROBLEM.code)
    result, server = run([wrong, unchanged], n=2, stop_at_first=False)
    assert result.rounds[0].redrawn == 1 and [c.reply for c in result.candidates] == [wrong, right]


def test_only_a_change_that_is_none_is_an_echo():
    assert dialogue.echoes_a_change("`if a >= b:` should be `if a >= b:`.")
    assert dialogue.echoes_a_change("so `x` should be `x`")  # the explanation ends there
    assert not dialogue.echoes_a_change("`if a >= b:` should be `if a > b:`.")
    assert not dialogue.echoes_a_change("`i` should be `i` + 1.")  # the fix goes on after the quote
    assert not dialogue.echoes_a_change("`        return t` should be `    return t`.")  # dedented
    # while the reply is written, a quote at the very end may still go on
    assert not dialogue.echoes_a_change("`n` should be `n`", complete=False)
    assert dialogue.echoes_a_change("`n` should be `n`.", complete=False)
