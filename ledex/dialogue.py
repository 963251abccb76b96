"""The model contract: how a repair is asked for, and how the answer is read back.

LeDex's four turns, as plain chat messages (each backend applies its model's own template):

1. user: the task (a benchmark problem with its tests, or a project function and its failing test);
2. assistant: the current, wrong code, fenced as if the model had written it;
3. user: the execution feedback and the instruction for the chosen style;
4. assistant: an explanation, then one fenced python block with the complete corrected code.

LeDex's iterative refinement (the trainer's evaluation) appends turns 3-4 for every later round;
the product loop (`ledex.repair`) starts each round afresh from its most promising candidate.
Training data, RL rollouts, evaluation and the language server all build prompts with
`build_conversation` and read replies with `parse_reply`, so a model is served with exactly the
prompt it was trained on, and `format_reply` renders training targets in exactly the shape
`parse_reply` reads back.
"""

from __future__ import annotations

import ast
import re
import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

from ledex.models.base import Message

__all__ = [
    "DEFAULT_STYLE",
    "STYLES",
    "Attempt",
    "Message",
    "ParseError",
    "ParseErrorKind",
    "Reply",
    "Style",
    "build_conversation",
    "build_training_example",
    "check_style",
    "feedback_turn",
    "format_reply",
    "function_task",
    "parse_reply",
    "problem_task",
]

Style = Literal["refine", "explain+refine"]
STYLES: tuple[Style, ...] = ("refine", "explain+refine")
DEFAULT_STYLE: Style = "explain+refine"

# Both instructions name the same fence so the code part of a reply looks the same in either style.
_INSTRUCTIONS: dict[Style, str] = {
    "explain+refine": (
        "Explain briefly why the code is wrong, then give the complete corrected code "
        "in one ```python block."
    ),
    "refine": (
        "Give only the complete corrected code in one ```python block, without any explanation."
    ),
}

_NO_FEEDBACK = "The code does not pass the tests."

# Chat-template markers that leak into text when a server is set up with the wrong stop tokens.
# Everything from the first one on belongs to a turn the model should never have written.
_END_MARKERS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<|end|>")

_PYTHON_TAGS = frozenset({"", "python", "py", "python3", "py3"})

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_LANG_TAG = re.compile(r"[A-Za-z0-9_+#-]*")
_CODE_START = re.compile(
    r"^[ \t]*(?:(?:async[ \t]+)?def[ \t]+\w|class[ \t]+\w|@\w"
    r"|import[ \t]+\w|from[ \t]+[\w.]+[ \t]+import\b)"
)
_DEFINES = re.compile(r"^[ \t]*(?:(?:async[ \t]+)?def|class)[ \t]+\w", re.MULTILINE)
_HEADING = re.compile(r"^#{1,6}(?:\s|$)")
_EXPLANATION_LABEL = re.compile(
    r"^(?:#{1,6}\s*)?[*_]*\s*explanation\s*:?\s*[*_]*\s*:?$", re.IGNORECASE
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

# The file name replies are parsed under, so their warnings can be told apart from real ones.
_PSEUDO_FILE = "<ledex reply>"
_PSEUDO_MODULE = re.escape(_PSEUDO_FILE)

# Unfenced replies are searched by trying (start, end) line pairs; the caps keep a pathological
# reply (hundreds of `def` lines that never parse) from making that search cubic.
_MAX_STARTS = 20
_MAX_ENDS = 20


def check_style(style: str) -> Style:
    """A style read from data (a record, a setting, a flag) as a `Style`; ValueError if unknown."""
    if style not in STYLES:
        raise ValueError(f"unknown dialogue style {style!r}; expected one of {', '.join(STYLES)}")
    return cast(Style, style)


# --------------------------------------------------------------------------------------------
# Building conversations
# --------------------------------------------------------------------------------------------


def _fence(code: str, lang: str = "python") -> str:
    """A fenced block that `code` cannot close early: longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{code}\n{ticks}"


def problem_task(
    description: str, tests: Sequence[object] = (), entry_point: str | None = None
) -> str:
    """Turn 1 for a benchmark problem (MBPP, HumanEval or APPS style): the text, then its tests.

    A test is an assert (str) or a stdin/stdout case (anything with `input` and `output`, e.g.
    `ledex.sandbox.IOTest`); asserts are shown as code, stdin/stdout cases as example runs.
    """
    text = _normalise(description).strip()
    # HumanEval prompts are code (signature and docstring): fenced, the model reads them as code.
    if _is_code(text):
        text = _fence(text)
    parts = [text]
    if entry_point:
        parts.append(f"The function must be named `{entry_point}`.")
    test_lines = [_normalise(test).strip() for test in tests if isinstance(test, str)]
    test_lines = [test for test in test_lines if test]
    if test_lines:
        parts.append("Your code should pass these tests:\n\n" + _fence("\n".join(test_lines)))
    io_cases = [_io_case(test) for test in tests if not isinstance(test, str)]
    if io_cases:
        parts.append(
            "Your program reads standard input and writes standard output. "
            "It should pass these tests:\n\n" + "\n\n".join(io_cases)
        )
    return "\n\n".join(parts)


def _io_case(test: object) -> str:
    """A stdin/stdout test as the model sees it: the input, then the expected output."""
    given, expected = getattr(test, "input", None), getattr(test, "output", None)
    if not isinstance(given, str) or not isinstance(expected, str):
        raise TypeError(f"a test must be an assert string or have str input/output, not {test!r}")
    given, expected = _normalise(given).rstrip("\n"), _normalise(expected).rstrip("\n")
    return f"Input:\n{_fence(given, '')}\nOutput:\n{_fence(expected, '')}"


def function_task(
    source_context: str, test_source: str, *, path: str | None = None, note: str | None = None
) -> str:
    """Turn 1 for a project: the code under test (already extracted) and the failing test."""
    where = f" from `{path}`" if path else ""
    parts = [
        f"Here is the code{where}:\n\n" + _fence(_normalise(source_context).strip("\n")),
        "Your code should pass this test:\n\n" + _fence(_normalise(test_source).strip("\n")),
    ]
    if note:
        parts.append(note.strip())
    return "\n\n".join(parts)


def feedback_turn(feedback: str, style: Style = DEFAULT_STYLE) -> str:
    """Turn 3: what running the code showed, then what to answer in this style."""
    instruction = _INSTRUCTIONS[check_style(style)]
    return f"{_normalise(feedback).strip() or _NO_FEEDBACK}\n\n{instruction}"


@dataclass(frozen=True)
class Attempt:
    """A previous round: the model's reply (turn 4) and the feedback its code then got."""

    reply: str
    feedback: str


def build_conversation(
    task: str,
    code: str,
    feedback: str,
    *,
    style: Style = DEFAULT_STYLE,
    history: Sequence[Attempt] = (),
    system: str | None = None,
) -> list[Message]:
    """The prompt for one repair round; it always ends with a user turn for the model to answer.

    For iterative repair pass the original wrong code and its feedback, and the later rounds as
    `history`: each adds the model's reply and the feedback its code got.
    """
    check_style(style)
    messages: list[Message] = []
    # An empty system prompt is kept: some templates (Qwen) insert a default one when none is given.
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": task})
    messages.append({"role": "assistant", "content": _fence(_tidy_code(code))})
    messages.append({"role": "user", "content": feedback_turn(feedback, style)})
    for attempt in history:
        messages.append({"role": "assistant", "content": attempt.reply})
        messages.append({"role": "user", "content": feedback_turn(attempt.feedback, style)})
    return messages


def build_training_example(
    task: str,
    code: str,
    feedback: str,
    reply: str,
    *,
    style: Style = DEFAULT_STYLE,
    history: Sequence[Attempt] = (),
    system: str | None = None,
) -> list[Message]:
    """The conversation plus the answer the model should learn (render it with `format_reply`)."""
    messages = build_conversation(
        task, code, feedback, style=style, history=history, system=system
    )
    messages.append({"role": "assistant", "content": reply})
    return messages


def format_reply(explanation: str, code: str, style: Style = DEFAULT_STYLE) -> str:
    """The canonical turn 4: explanation, a blank line, one ```python block.

    Both parts are tidied the way `parse_reply` tidies them, so for any code that parses,
    `parse_reply(format_reply(e, c))` gives back the tidied `e` and `c`. The refine style asks for
    code only, so its target carries no explanation.
    """
    block = _fence(_tidy_code(code))
    text = "" if check_style(style) == "refine" else _tidy_explanation(explanation)
    return f"{text}\n\n{block}" if text else block


# --------------------------------------------------------------------------------------------
# Reading replies
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A usable answer. `truncated`: the code fence never closed, but the code still parses."""

    explanation: str
    code: str
    truncated: bool = False


ParseErrorKind = Literal["empty", "no_code", "truncated", "syntax"]


@dataclass(frozen=True)
class ParseError:
    """An answer with no usable code; `raw` is the reply exactly as it came."""

    kind: ParseErrorKind
    message: str
    raw: str


@dataclass(frozen=True)
class _Block:
    """A fenced block; lines are indices into the normalised reply."""

    lang: str
    code: str
    open_line: int
    #: the line after the closing fence, or the line count when the fence never closed
    after_line: int
    closed: bool

    def tree(self) -> ast.Module | None:
        return _parse(self.code)


# "`x` should be `y`", the way a fix is named in an explanation, where the quote ends the fix:
# punctuation, a line end or a word follow it (not "`i` should be `i` + 1"); the end of the text
# only where the text is complete
_FIX_ENDS = r"(?=[.,;:!?)]|[ \t]*\n|\s+[A-Za-z]"
_CHANGE = re.compile(r"`([^`\n]+)` should be `([^`\n]+)`" + _FIX_ENDS + ")")
_CHANGE_AT_END = re.compile(r"`([^`\n]+)` should be `([^`\n]+)`" + _FIX_ENDS + r"|\s*\Z)")


def echoes_a_change(explanation: str, *, complete: bool = True) -> bool:
    """Whether the explanation gives some text as its own fix ("`x` should be `x`"): it proposes
    no change, and a model that writes one then writes the code unchanged (measured for the
    trained 0.5B: 18 of 20 such candidates, `benchmarks/echoes.py`). Indentation counts (moving a
    line out of a loop is a change). `complete=False`: the text is still being written, so a
    quote at its very end may go on ("`i` should be `i` + 1")."""
    pattern = _CHANGE_AT_END if complete else _CHANGE
    return any(a.rstrip() == b.rstrip() for a, b in pattern.findall(explanation))


def before_code(text: str) -> tuple[str, bool]:
    """A reply's text before its first code fence (``` or ~~~), and whether a fence has begun:
    the explanation, read while the reply is still being written or when it did not parse."""
    head, *code = FENCE_MARK.split(text, maxsplit=1)
    return head, bool(code)


FENCE_MARK = re.compile(r"`{3,}|~{3,}")  # what opens or closes a code block


def parse_reply(text: str, *, style: Style = DEFAULT_STYLE) -> Reply | ParseError:
    """Read (explanation, code) out of a model's reply. Never raises on any text.

    `style` is checked (an unknown one is a caller bug and raises ValueError) but both styles are
    read the same way: in the refine style the explanation is usually just empty.
    """
    check_style(style)
    lines = _normalise(text).split("\n")
    if not any(line.strip() for line in lines):
        return ParseError("empty", "the reply is empty", text)

    blocks = [b for b in _find_blocks(lines) if b.lang in _PYTHON_TAGS and b.code.strip()]
    if not blocks:
        found = _find_unfenced(lines)
        if found is None:
            return ParseError("no_code", "the reply contains no Python code", text)
        return found

    cut_off = next((b for b in blocks if not b.closed), None)
    parsed = [(b, tree) for b in blocks if (tree := b.tree()) is not None]
    best = _best(parsed)
    # A fix cut off by the token limit must not lose to a snippet of the bug quoted before it;
    # a cut-off usage example after a complete fix does not matter.
    if (
        cut_off is not None
        and cut_off.tree() is None
        and (best is None or (_DEFINES.search(cut_off.code) and not _defines(best[1])))
    ):
        detail = _syntax_detail(cut_off.code)
        message = f"the reply was cut off inside its code block ({detail})"
        return ParseError("truncated", message, text)
    if best is None:
        shown = max(blocks, key=lambda b: (bool(_DEFINES.search(b.code)), len(b.code.strip())))
        detail = _syntax_detail(shown.code)
        message = f"no code block in the reply parses as Python ({detail}):\n{_fence(shown.code)}"
        return ParseError("syntax", message, text)
    block = best[0]
    before = "\n".join(lines[: block.open_line])
    after = "\n".join(lines[block.after_line :])
    return Reply(_explanation(before, after), block.code, truncated=not block.closed)


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    cut = min((i for marker in _END_MARKERS if (i := text.find(marker)) >= 0), default=-1)
    return text if cut < 0 else text[:cut]


def _parse(code: str) -> ast.Module | None:
    # Blank code "parses" too, but is never an answer.
    if not code.strip():
        return None
    _silence_parse_warnings()
    try:
        return ast.parse(code, filename=_PSEUDO_FILE)
    # ValueError: NUL bytes; RecursionError/MemoryError: absurd nesting. None of it is code.
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _silence_parse_warnings() -> None:
    """Ignore the warnings that parsing prose raises ("invalid decimal literal" for "1st").

    A filter on our pseudo file name, not `catch_warnings`, which is not thread-safe. It is put
    back in front whenever something else took that place (test runners and host applications
    reset or prepend filters): under `-W error` those warnings would turn code that parses into
    syntax errors, so a reply would read differently depending on the host.
    """
    first = warnings.filters[0] if warnings.filters else None
    if first is None or getattr(first[3], "pattern", first[3]) != _PSEUDO_MODULE:
        warnings.filterwarnings("ignore", module=_PSEUDO_MODULE)


def _syntax_detail(code: str) -> str:
    _silence_parse_warnings()
    try:
        ast.parse(code, filename=_PSEUDO_FILE)
    except SyntaxError as error:
        return f"line {error.lineno}: {error.msg}"
    except (ValueError, RecursionError, MemoryError) as error:
        return type(error).__name__
    return "empty"


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _defines(tree: ast.Module) -> bool:
    return any(isinstance(node, _DEFINITIONS) for node in tree.body)


def _is_code(text: str) -> bool:
    """Parses and does something: prose such as "Done" or "not bad" parses to bare expressions."""
    tree = _parse(text)
    return tree is not None and any(not isinstance(node, ast.Expr) for node in tree.body)


def _tidy_code(code: str) -> str:
    """Trim blank edge lines and dedent code that only parses dedented (a method shown alone).

    Dedenting only when needed keeps whitespace-only lines inside string literals intact.
    Idempotent, so a rendered target parses back to exactly the same text.
    """
    lines = _normalise(code).split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    text = "\n".join(lines).rstrip()
    if _parse(text) is None:
        dedented = textwrap.dedent(text)
        if _parse(dedented) is not None:
            return dedented
    return text


def _tidy_explanation(text: str) -> str:
    """Strip, and drop the labels that only frame the explanation ("### Explanation") or introduce
    the code ("Here is the fixed code:"), so a training target holds the explanation alone."""
    lines = _normalise(text).strip().split("\n")
    if _EXPLANATION_LABEL.match(lines[0].strip()):
        lines = "\n".join(lines[1:]).strip().split("\n")
    while lines and lines[-1].strip():
        last = lines[-1].strip()
        if _HEADING.match(last):
            lines.pop()
        elif last.rstrip("*_ ").endswith(":"):
            # "It was off by one. Here is the fix:" keeps its first sentence; "2. Fixed:" goes.
            head = lines[-1][: lines[-1].rfind(_SENTENCE_END.split(last)[-1])].rstrip()
            if any(char.isalpha() for char in head):
                lines[-1] = head
            else:
                lines.pop()
        else:
            break
        lines = "\n".join(lines).rstrip().split("\n")
    return "\n".join(lines).strip()


def _explanation(before: str, after: str) -> str:
    return _tidy_explanation(before) or _tidy_explanation(after)


def _find_blocks(lines: list[str]) -> list[_Block]:
    """Fenced blocks, CommonMark-style: a fence closes only with the same character, at least as
    long, and nothing else on the line; a fence still open at the end was cut off."""
    blocks: list[_Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE_OPEN.match(lines[i])
        # Backtick fences cannot carry backticks in their info string (that is inline code).
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), None)
        body = lines[i + 1 : len(lines) if end is None else end]
        # Fences indented inside a list item indent their content by as much: take that off.
        body = [_unindent(line, indent) for line in body]
        blocks.append(
            _Block(
                lang=_language(opening["info"]),
                code=_tidy_code("\n".join(body)),
                open_line=i,
                after_line=len(lines) if end is None else end + 1,
                closed=end is not None,
            )
        )
        i = len(lines) if end is None else end + 1
    return blocks


def _unindent(line: str, width: int) -> str:
    stripped = len(line) - len(line.lstrip(" "))
    return line[min(width, stripped) :]


def _language(info: str) -> str:
    # "python", "Python3", "{.python}", "python title=x.py" and "python:fix.py" all mean python.
    match = _LANG_TAG.match(info.strip().lstrip("{."))
    return match.group(0).lower() if match else ""


def _best(parsed: list[tuple[_Block, ast.Module]]) -> tuple[_Block, ast.Module] | None:
    """The full fix among snippets of the bug and usage examples: a block that defines something,
    then the longest, then the last (models often restate, and the later one is the fix)."""
    best: tuple[_Block, ast.Module] | None = None
    best_key: tuple[bool, int] | None = None
    for block, tree in parsed:
        key = (_defines(tree), len(block.code.strip()))
        if best_key is None or key >= best_key:
            best, best_key = (block, tree), key
    return best


def _find_unfenced(lines: list[str]) -> Reply | None:
    """Code without a fence: the whole reply, or a run of lines from the first line that starts a
    statement (def/class/import/from/@) to the end or to where prose resumes."""
    whole = "\n".join(lines)
    if _is_code(whole):
        return Reply("", _tidy_code(whole))
    starts = [i for i, line in enumerate(lines) if _CODE_START.match(line)][:_MAX_STARTS]
    for start in starts:
        indent = _indent_width(lines[start])
        # A cut only at a prose line no deeper than the start never splits a function body.
        cuts = [
            j
            for j in range(start + 1, len(lines))
            if lines[j].strip() and _indent_width(lines[j]) <= indent and _is_prose_line(lines[j])
        ]
        for end in [len(lines), *reversed(cuts)][:_MAX_ENDS]:
            code = _tidy_code("\n".join(lines[start:end]))
            if _is_code(code):
                before = "\n".join(lines[:start])
                after = "\n".join(lines[end:])
                return Reply(_explanation(before, after), code)
    return None


def _indent_width(line: str) -> int:
    return len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())


def _is_prose_line(line: str) -> bool:
    text = line.strip()
    if _CODE_START.match(text):
        return False
    tree = _parse(text)
    # "Done." does not parse; "Done" parses to a bare name. A call or an assignment is code.
    return tree is None or all(
        isinstance(node, ast.Expr) and not isinstance(node.value, ast.Call) for node in tree.body
    )
