"""The known fix of a generated bug as a teacher: `ledex-train collect_projects --teacher gold`
(the editor's project prompt) and `ledex-train collect --teacher gold` (LeDex's problem prompt,
the wrong solutions being mutants of the problem's reference solution, `--model mutants`, or a
model's own wrong programs, answered with the reference and no invented slip: `problem_reply`).

A generated bug's fix is known: it is the source project's own code, whose tests pass. This teacher
answers the editor's prompt with that code (the repaired definition alone, rendered the way the
prompt shows code) after an explanation written from what is known about the bug: the failing test
and its message, the kind of slip, the wrong line and the right one (the `refine` style asks for
the code alone, and gets it). Its replies go through the
same repair loop, the same cut and the same sandboxed test runs as any teacher's, so a record is
"verified" for the same reason: the tests passed.

Why it exists: the strongest model available offline (the embedded 1.5B) verified 4 of 10
candidates without help (`trainer/datasets/mbpp-bugs/table.md`) and, in a 3-bug trial shown the diff to
the correct code (`--hint_shows fix --no_plain_pass`), still wrote a verified repair for
only 1 of 3 bugs, with explanations that blamed the test (`trainer/datasets/README.md`). SFT on
that would teach a small model to blame tests. Explanations written from the mutation are terse,
but they name the test, the line and the change, which is what the editor's hover is for, and the
replies are short (the changed definition only), which is what a CPU can decode quickly.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Generator, Sequence

from ledex import dialogue, patching
from ledex.feedback import shorten
from ledex.models.base import Backend, BackendInfo, Completion, Conversation, Sampling
from ledex.models.embedded import DEFAULT_N_CTX
from ledex.project_repair import ProjectTask, Site, render_code
from trainer.buggy_projects import BuggyProject, changed_lines, changed_span
from trainer.data import Task
from trainer.records import Sample

TEACHER = "gold"

#: how an explanation quotes the change (`collect_projects --gold_change`): "line", the wrong
#: line(s) and the right one(s) in full; "span", the wrong line(s), then only the tokens that
#: differ ("In `if a or b:`, `or` should be `and`."). A small model trained on whole lines often
#: writes the wrong line twice ("`x` should be `x`") and then the code unchanged.
CHANGES = ("line", "span")

# What each operator's slip is, in the words of someone who found it (`trainer.mutants.OPERATORS`).
_SLIPS = {
    "comparison": "a comparison uses the wrong operator",
    "boundary": "a boundary value is off by one",
    "arithmetic": "an arithmetic operator is wrong",
    "swapped-operands": "the operands of an operation are in the wrong order",
    "range-off-by-one": "a `range` is off by one",
    "index-off-by-one": "an index is off by one",
    "slice": "a slice takes the wrong part of the sequence",
    "inverted-condition": "a condition is inverted",
    "boolean-operator": "two conditions are combined with the wrong boolean operator",
    "missing-return": "a result is computed but never returned",
    "wrong-variable": "it uses the wrong variable",
    "wrong-attribute": "it uses the wrong attribute",
    "wrong-key": "it looks up the wrong key",
    "swapped-arguments": "two arguments are passed in the wrong order",
    "wrong-default": "a parameter has the wrong default value",
    "mutable-default": "a mutable default value is shared by every call, so one call's changes leak into the next",
    "wrong-builtin": "it calls the wrong function",
    "constant": "a constant has the wrong value",
}


class GoldTeacher(Backend):
    """One bug's teacher: answers every request with the bug's known fix, in `style`."""

    def __init__(
        self,
        bug: BuggyProject,
        task: ProjectTask,
        style: dialogue.Style = dialogue.DEFAULT_STYLE,
        context_window: int = DEFAULT_N_CTX,
        change: str = "line",
    ) -> None:
        # the student's window, so that prompts are cut to the budget the editor will use
        self.info = BackendInfo(spec=TEACHER, model=TEACHER, context_window=context_window)
        self.reply = gold_reply(bug, task, style, change)

    def generate(
        self, conversations: Sequence[Conversation], sampling: Sampling = Sampling()
    ) -> list[list[Completion]]:
        return [[Completion(self.reply)] * sampling.n for _ in conversations]

    def stream(
        self, conversation: Conversation, sampling: Sampling = Sampling()
    ) -> Generator[str, None, None]:
        yield self.reply


def gold_reply(
    bug: BuggyProject,
    task: ProjectTask,
    style: dialogue.Style = dialogue.DEFAULT_STYLE,
    change: str = "line",
) -> str:
    """The reply a developer who found the bug would give: explanation (unless the style asks for
    code alone), then the fixed definition."""
    original = bug.source.files[bug.file]
    symbol = patching.find_symbols(original).get(bug.mutation.function)
    if symbol is None:  # the mutated function is gone from the original: cannot happen for a mutant
        raise ValueError(f"{bug.mutation.function} is not defined in {bug.file}")
    code = render_code({bug.file: original}, [Site(bug.file, symbol, "the known fix")])
    return dialogue.format_reply(explanation(bug, task, change), code, style)


def explanation(bug: BuggyProject, task: ProjectTask, change: str = "line") -> str:
    test = task.node_id.rsplit("::", 1)[-1]
    message = _short(task.test.message)
    fails = f"`{test}` fails with `{message}`" if message else f"`{test}` fails"
    cause = _cause(bug.mutation.function, bug.mutation.operator, *bug.changed_lines(), change)
    return f"{fails} {cause}"


def problem_reply(
    task: Task, sample: Sample, style: dialogue.Style = dialogue.DEFAULT_STYLE
) -> str:
    """The reply to LeDex's repair prompt about `sample`, a wrong solution of the task: an
    explanation from the feedback, then the whole reference solution.

    For a mutant of the reference (`collect --model mutants`, which keeps the operator and the
    function in `sample.sampling`) the explanation names the slip and the line. A model's own wrong
    program (`collect --model embedded:0.5b`, LeDex's student samples) is mostly a wrong algorithm,
    not a slip: the explanation quotes the change only when the program is one line away from it,
    and otherwise says no more than is known, that the function does not do what the task asks."""
    if not task.reference.strip():
        raise ValueError(f"{task.id} has no reference solution: the gold teacher has no answer")
    operator, function = sample.sampling.get("operator"), sample.sampling.get("function")
    if operator and function:
        cause = _cause(str(function), str(operator), *changed_lines(sample.code, reference(task)))
    else:
        cause = _student_cause(task, sample)
    return dialogue.format_reply(
        f"{_failure(sample.feedback)} {cause}", task.reference.strip(), style
    )


def _student_cause(task: Task, sample: Sample) -> str:
    """Why a model's own wrong program fails, saying no more than is known: when it is one line
    away from the reference, that line and the function holding it; otherwise, that the program
    does not do what the task asks (a wrong approach has no one slip to name)."""
    wrong_code, right_code = _plain(sample.code), _plain(reference(task))
    old, new = wrong_code.splitlines(), right_code.splitlines()
    try:
        a1, a2, b1, b2 = changed_span(old, new)
    except ValueError:  # the same lines, other whitespace: nothing to quote
        a1 = a2 = b1 = b2 = 0
    if a2 - a1 <= 1 and b2 - b1 <= 1 and (a2 > a1 or b2 > b1):
        # the function at the changed line's own place (its text may recur in another function)
        function = _holding(wrong_code, a1) if a2 > a1 else _holding(right_code, b1)
        return _cause(function, "", old[a1:a2], new[b1:b2])
    where = f"`{task.entry_point}`" if task.entry_point else "the program"
    return f"because {where} does not do what the task asks: it is written again below."


def _holding(code: str, index: int) -> str:
    """The name of the function that holds line `index` (from 0) of `code` ("" at module level, or
    when `code` does not parse: "the program" is then the subject)."""
    try:
        symbol = patching.symbol_at(code, index + 1)
    except (ValueError, SyntaxError, RecursionError):  # ValueError: a NUL byte
        return ""
    return symbol.qualname if symbol else ""


def _plain(code: str) -> str:
    """Lines without trailing spaces or blank lines: MBPP's references and a model's code differ in both."""
    return "\n".join(line.rstrip() for line in code.splitlines() if line.strip()) + "\n"


def reference(task: Task) -> str:
    """The task's reference solution as the mutants are made from it ("" if it has none): the same
    text on both sides of the diff that the explanation quotes."""
    code = task.reference.strip()
    return code + "\n" if code else ""


_HIDDEN = re.compile(r"(The code fails \d+ of \d+ hidden tests)\.(?: (.+))?")


def _failure(feedback: str) -> str:
    """What failed, from LeDex's feedback text (`ledex.feedback.format_feedback`): the test and the
    last line of what went wrong (the returned value, or the exception)."""
    lines = [line.strip() for line in feedback.strip().splitlines() if line.strip()]
    if len(lines) >= 3 and lines[0] == "The code fails this test:":
        test, detail = lines[1], lines[-1]
        for verb in (" returned ", " evaluated to "):  # "f(2) returned 3, ...": f(2) is in the test
            call, found, rest = detail.partition(verb)
            if found and call in test:
                detail = f"it{verb}{rest}"
        return f"`{_short(test)}` fails ({_short(detail)})"
    if lines and (hidden := _HIDDEN.fullmatch(lines[0])):
        # `ledex.feedback.hidden_feedback`: how many hidden tests fail, then how (never which)
        head, how = hidden.group(1), [*filter(None, [hidden.group(2)]), *lines[1:]]
        if how == ["A returned value is wrong."]:
            return f"{head} (a returned value is wrong)"
        return f"{head} ({_short(how[-1])})" if how else head
    return f"The code fails ({_short(lines[-1])})" if lines else "The code fails"


def _cause(
    function: str,
    operator: str,
    wrong_lines: list[str],
    right_lines: list[str],
    change: str = "line",
) -> str:
    """Why: the function, the kind of slip, and the wrong line(s) beside the right one(s), or
    (`change="span"`) the wrong line(s) and the tokens that differ."""
    if change not in CHANGES:
        raise ValueError(f"the change is quoted as one of {', '.join(CHANGES)}, not {change!r}")
    slip = _SLIPS.get(operator, "one line is wrong")
    wrong = " ".join(line.strip() for line in wrong_lines)
    right = " ".join(line.strip() for line in right_lines)
    span = _span(wrong, right) if change == "span" and wrong and right else None
    if span is not None:
        sentence = f"In `{wrong}`, `{span[0]}` should be `{span[1]}`."
    elif wrong and right:
        sentence = f"`{wrong}` should be `{right}`."
    elif right:
        sentence = f"`{right}` is missing."
    else:
        sentence = f"`{wrong}` should not be there."
    where = f"`{function}`" if function else "the program"  # a stdin/stdout program has no function
    return f"because of a bug in {where}: {slip}. {sentence}"


def _span(wrong: str, right: str) -> tuple[str, str] | None:
    """The part of `wrong` that differs from `right`, and what it is there, in whole tokens; where
    a side would be empty, widened by the operand before it (`n` -> `n + 1`) or else the token after
    it (`1, n` -> `n`). None when that is the whole line anyway, or a side is not one line of
    tokens (a line of a longer statement)."""
    a, b = _tokens(wrong), _tokens(right)
    if not a or not b:
        return None
    start = 0
    while start < min(len(a), len(b)) and a[start][0] == b[start][0]:
        start += 1
    end = 0  # tokens equal at the end, not overlapping the start
    while end < min(len(a), len(b)) - start and a[-1 - end][0] == b[-1 - end][0]:
        end += 1
    if start in (len(a) - end, len(b) - end):  # one side is empty
        if start > 0 and a[start - 1][0] not in _OPENERS:
            start -= 1
        elif end > 0:
            end -= 1
        else:
            return None
    cut = (wrong[a[start][1] : a[-1 - end][2]], right[b[start][1] : b[-1 - end][2]])
    return None if cut == (wrong, right) or cut[0] == cut[1] else cut


_OPENERS = {"(", "[", "{", ",", ":", "=", "return", "if", "in", "not", "and", "or"}


def _tokens(line: str) -> list[tuple[str, int, int]]:
    """A one-line statement's tokens: (text, start column, end column); [] if it does not
    tokenize."""
    skip = {tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT}
    try:
        found = [t for t in tokenize.generate_tokens(io.StringIO(line).readline) if t.type not in skip]
    except (tokenize.TokenError, SyntaxError):
        return []
    if any(t.type == tokenize.ERRORTOKEN or t.start[0] != 1 or t.end[0] != 1 for t in found):
        return []
    return [(t.string, t.start[1], t.end[1]) for t in found]


def _short(text: str) -> str:
    return shorten(text.strip(), 160)
