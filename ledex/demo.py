"""The built-in example `ledex demo` (and `make run`) shows: one LeDex dialogue on a small bug."""

from __future__ import annotations

from ledex import dialogue
from ledex.models.base import Message

DESCRIPTION = "Write a function `median(values)` that returns the median of a non-empty list of numbers."
TESTS = (
    "assert median([3, 1, 2]) == 2",
    "assert median([4, 1, 3, 2]) == 2.5",
    "assert median([7]) == 7",
)
WRONG_CODE = '''\
def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle]
'''
# What the sandbox reports for WRONG_CODE (the second assert fails).
FEEDBACK = (
    "The code fails this test:\nassert median([4, 1, 3, 2]) == 2.5\n"
    "median([4, 1, 3, 2]) returned 3, expected 2.5"
)


def conversation() -> list[Message]:
    task = dialogue.problem_task(DESCRIPTION, TESTS, entry_point="median")
    return dialogue.build_conversation(task, WRONG_CODE, FEEDBACK)
