"""How the trainer asks for a *first* solution (LeDex §2.1 step 1; the repair turns are dialogue.py's).

One user turn: the task as `ledex.dialogue.problem_task` renders it (so the repair conversation's
turn 1 is the very same text), then the instruction to answer with one fenced block. Base models get
`shots` worked examples first (LeDex: 3-shot from MBPP's prompt split), as earlier user/assistant
turns; instruct models get the task alone (`shots=()`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ledex import dialogue
from ledex.feedback import hidden_feedback
from ledex.models.base import Message
from ledex.sandbox.programs import ProgramResult
from trainer.data import Task

SOLVE_INSTRUCTION = "Write the complete solution in one ```python block."
#: the MBPP prompt-split tasks the MBPP paper used as few-shot examples
SHOT_IDS = ("mbpp/2", "mbpp/3", "mbpp/4")


def task_text(task: Task, shown_tests: int | None = None) -> str:
    """Turn 1 of every conversation about `task`: its description and (the first few of) its tests.

    All tests still judge a solution; long stdin/stdout suites (APPS, CodeContests) would not fit a
    prompt, so only the first `shown_tests` are shown.
    """
    tests = task.tests if shown_tests is None else task.tests[:shown_tests]
    return dialogue.problem_task(task.description, tests, task.entry_point)


def hides_tests(task: Task) -> bool:
    """Whether `task`'s tests stay hidden from the model, as in HumanEval's protocol: a task that
    starts from code (a signature and a docstring with examples) shows no assert, in its first prompt
    or in feedback (`ledex.feedback.hidden_feedback`); the others show theirs, as MBPP's prompt does."""
    return bool(task.prompt_code)


def refinement_feedback(result: ProgramResult, shown_tests: int | None) -> str:
    """What a refinement turn shows about a wrong program: the failing test where the first prompt
    showed tests, else only how the code failed (`ledex.feedback.hidden_feedback`), so no hidden
    test leaks. One rule for the data `collect` records and the turns `eval` asks."""
    if result.ok or shown_tests != 0:
        return result.feedback
    return hidden_feedback(result.failure, sum(result.passed), len(result.passed))


def solve_conversation(
    task: Task, shots: Sequence[Task] = (), *, shown_tests: int | None = None
) -> list[Message]:
    """The prompt that samples a solution for `task` (few-shot when `shots` are given)."""
    messages: list[Message] = []
    for shot in shots:
        if not shot.reference.strip():
            raise ValueError(f"few-shot example {shot.id} has no reference solution")
        messages.append({"role": "user", "content": _ask(shot, shown_tests)})
        messages.append({"role": "assistant", "content": f"```python\n{shot.reference.strip()}\n```"})
    messages.append({"role": "user", "content": _ask(task, shown_tests)})
    return messages


def _ask(task: Task, shown_tests: int | None) -> str:
    return f"{task_text(task, shown_tests)}\n\n{SOLVE_INSTRUCTION}"


def reference_hint(task: Task, style: str = dialogue.DEFAULT_STYLE) -> str:
    """What a rationalisation pass tells the teacher about `task` (`collect --hint reference`): a
    correct solution, to explain the wrong one against (the `refine` style asks for code alone).
    Never part of a recorded prompt; "" when the task has no reference solution."""
    reference = task.reference.strip()
    if not reference:
        return ""
    ask = (
        "Explain what is wrong in your code itself (its own logic, not this solution), then give "
        "the corrected code. "
        if style == "explain+refine"
        else ""
    )
    return (
        f"Hint: a correct solution is\n\n```python\n{reference}\n```\n\n"
        f"{ask}Do not mention this hint or this solution in your answer."
    )


#: words by which an explanation gives away that its writer was shown a solution
HINT_TELLS = ("hint", "correct solution", "reference solution", "provided solution", "given solution")


def mentions_hint(explanation: str) -> bool:
    """Whether an explanation talks about the hint it was given rather than the code: a student
    trained on it would refer to a hint it never sees."""
    text = explanation.lower()
    return any(tell in text for tell in HINT_TELLS)


def with_hint(conversation: list[Message], hint: str) -> list[Message]:
    """The conversation the teacher is sent: its last user turn (the feedback) followed by `hint`.
    The record keeps the conversation without it."""
    if not hint:
        return conversation
    *earlier, last = conversation
    return [*earlier, {**last, "content": f"{last['content']}\n\n{hint}"}]


def mbpp_shots(count: int = 3, path: str | None = None) -> list[Task]:
    """`count` worked examples from MBPP's prompt split (tasks 2, 3, 4 first, as the paper)."""
    from trainer.data.mbpp import load

    prompt = load("prompt", path)
    preferred = [t for t in prompt if t.id in SHOT_IDS]
    rest = [t for t in prompt if t.id not in SHOT_IDS]
    return (preferred + rest)[:count]
