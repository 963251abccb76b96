"""Turning a model's answer into the program that is run against a task's tests.

The prompts themselves are `trainer.prompts` (first solutions) and `ledex.dialogue` (repairs).
"""

from __future__ import annotations

import re

from ledex import dialogue
from trainer.data import Task

# A fenced block, closed or cut off by the token limit.
_FENCED = re.compile(
    r"^[ \t]*```[ \t]*(?:python3?|py3?)?[ \t]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.M | re.S
)


def extract_code(reply: str) -> tuple[str, str]:
    """(code, parse error) from a reply: the parsed code and "", or, when no code parses, the
    longest fenced block as written (else the raw reply) and why it did not parse. That text is
    what runs: it fails with the syntax error the model made, which is what its feedback shows."""
    parsed = dialogue.parse_reply(reply)
    if isinstance(parsed, dialogue.ParseError):
        blocks = [b.strip("\n") for b in _FENCED.findall(reply) if b.strip()]
        return (max(blocks, key=len) if blocks else reply), parsed.message
    return parsed.code, ""


def program_for(task: Task, code: str) -> str:
    """The program that runs `code` as a solution of `task` (HumanEval: completed from the prompt,
    whether the code is the whole function or only its body)."""
    if task.prompt_code and task.entry_point:
        from trainer.data.humaneval import assemble

        return assemble(task.prompt_code, task.entry_point, code)
    return code
