"""The execution feedback a model is trained on, from structured failure information.

The sandbox (benchmark programs) and later the repair loop (pytest failures) both describe a
failure as a `FailureInfo`; `format_feedback` turns it into the text the model sees, e.g.

    The code fails this test:
    assert median([4, 1, 3, 2]) == 2.5
    median([4, 1, 3, 2]) returned 3, expected 2.5

Everything shown is kept short: values are cut to `VALUE_LIMIT` characters and tracebacks to the
program's own last few frames, because feedback is part of a prompt with a small context window.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ledex.sandbox.pytest_runner import Call

#: what went wrong; each kind has its own sentence in `describe`
FailureKind = Literal[
    "assertion",  # an assert evaluated to false (expected/actual recovered where possible)
    "exception",  # the code raised
    "syntax",  # the code (or a test) does not compile
    "wrong_output",  # a stdin/stdout test printed something else
    "timeout",
    "output_limit",  # the program printed too much and was stopped
    "exited",  # sys.exit / os._exit before or while the tests ran
    "crashed",  # killed by a signal (segfault, abort)
    "harness",  # the program killed or tampered with the test harness (message: a full sentence)
    "no_tests",
]

VALUE_LIMIT = 200  # characters of one value (a repr, a message, printed output)
MAX_FRAMES = 5  # traceback frames shown, the innermost ones
TEST_LIMIT = 1000  # characters of the failing test shown in the header
_CRASH_SIGNALS = ("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT", "SIGSYS")


@dataclass(frozen=True)
class Frame:
    """One traceback frame of the program's own code."""

    file: str
    line: int
    function: str = ""  # "" for a syntax error's location
    source: str = ""  # the line's text
    repeated: int = 0  # this exact frame repeated that many more times right after (recursion)


@dataclass(frozen=True)
class FailureInfo:
    kind: FailureKind
    test: str = ""  # the failing test as shown in the header; "" for no header
    exception: str = ""  # exception type name
    message: str = ""  # exception or assertion message
    frames: tuple[Frame, ...] = ()  # outermost first, only the program's own
    omitted_frames: int = 0  # older frames left out of `frames`
    column: int | None = None  # syntax errors: 1-based position of the caret in frames[-1].source
    statement: str = ""  # assertion: the failing assert statement (defaults to the test)
    expression: str = ""  # assertion: the evaluated side, e.g. `f(3)`
    is_call: bool = (
        True  # assertion: `expression` is a call ("returned" rather than "evaluated to")
    )
    actual: str | None = None  # assertion: repr of the value; wrong_output: what was printed
    expected: str | None = None  # assertion: repr of the expected value, or "a true value"
    seconds: float | None = None  # timeout
    limit_mb: float | None = None  # output_limit / memory
    signal: str = ""  # crashed: e.g. "SIGSEGV"
    before_tests: bool = True  # exited: before any test ran, else during the named test


def format_feedback(info: FailureInfo) -> str:
    """Header naming the failing test, then what went wrong (no trailing newline)."""
    detail = describe(info)
    if not info.test:
        return detail
    return f"The code fails this test:\n{shorten(info.test.strip(), TEST_LIMIT)}\n{detail}"


def hidden_feedback(info: FailureInfo | None, passed: int, total: int) -> str:
    """Feedback on tests the model was never shown (HumanEval's hidden asserts): how many fail and
    how the code failed, never the test or the values it checks, so a refinement turn does not
    reveal what the first prompt hid. An exception keeps its type, message and the program's own
    frames (what running the code showed); a failed assert says only that a result is wrong."""
    header = f"The code fails {total - passed} of {total} hidden tests."
    if info is None:
        return header
    if info.kind == "assertion":
        return f"{header} A returned value is wrong."
    own = tuple(frame for frame in info.frames if frame.file != "<test>")
    return f"{header}\n{describe(replace(info, test='', statement='', frames=own))}"


def describe(info: FailureInfo) -> str:
    """What went wrong, without the header."""
    kind = info.kind
    if kind == "assertion":
        return _describe_assertion(info)
    if kind in ("exception", "syntax"):
        text = format_exception(
            info.exception,
            info.message,
            info.frames,
            info.omitted_frames,
            column=info.column if kind == "syntax" else None,
        )
        if info.exception == "MemoryError" and info.limit_mb:
            text += f"\n(the memory limit is {info.limit_mb:g} MB)"
        return text
    if kind == "wrong_output":
        printed = (info.actual or "").rstrip()
        return (
            "The code printed nothing."
            if not printed.strip()
            else (f"The code printed:\n{shorten(printed, VALUE_LIMIT)}")
        )
    if kind == "timeout":
        return f"The code timed out after {_seconds(info.seconds)} (infinite loop?)"
    if kind == "output_limit":
        return f"The code printed more than {info.limit_mb or 0:g} MB of output and was stopped."
    if kind == "exited":
        why = f" ({shorten(info.message, VALUE_LIMIT)})" if info.message else ""
        return f"The code exited {'before the tests ran' if info.before_tests else 'during this test'}{why}."
    if kind == "crashed":
        if info.signal in _CRASH_SIGNALS:
            return (
                f"The code crashed with signal {info.signal} "
                "(a C-level crash, e.g. from ctypes or too deep recursion)."
            )
        return f"The code was killed by signal {info.signal or 'unknown'}."
    if kind == "harness":
        return info.message or "The code interfered with the test harness."
    if kind == "no_tests":
        return "There are no tests to run."
    return shorten(info.message, VALUE_LIMIT) or "The code failed."


def _describe_assertion(info: FailureInfo) -> str:
    if info.expression and info.actual is not None and info.expected is not None:
        verb = "returned" if info.is_call else "evaluated to"
        return (
            f"{shorten(info.expression, VALUE_LIMIT)} {verb} {shorten(info.actual, VALUE_LIMIT)}, "
            f"expected {shorten(info.expected, VALUE_LIMIT)}"
        )
    statement = (info.statement or info.test).strip()
    text = f"{shorten(statement, VALUE_LIMIT)} failed" if statement else "An assertion failed"
    return f"{text}: {shorten(info.message, VALUE_LIMIT)}" if info.message else text


def format_exception(
    exception: str,
    message: str,
    frames: Sequence[Frame] = (),
    omitted_frames: int = 0,
    *,
    column: int | None = None,
) -> str:
    """Python's own traceback layout, with only the given frames and at most `MAX_FRAMES` of them.

    With `column` (a syntax error) the last frame is shown as a location with a caret instead.
    """
    head = f"{exception}: {shorten(message, VALUE_LIMIT)}" if message else exception
    if column is not None and frames:
        where = frames[-1]
        lines = [f'  File "{where.file}", line {where.line}']
        if where.source.strip():
            lines.append(f"    {where.source.strip()}")
            lines.append("    " + " " * max(column - 1, 0) + "^")
        return "\n".join([*lines, head])
    if not frames:
        return head
    return "\n".join([format_traceback(frames, omitted_frames), head])


def format_traceback(frames: Sequence[Frame], omitted_frames: int = 0) -> str:
    """`Traceback (most recent call last):` and the last `MAX_FRAMES` frames, repeats folded."""
    omitted = omitted_frames + sum(1 + f.repeated for f in frames[:-MAX_FRAMES])
    lines = ["Traceback (most recent call last):"]
    if omitted:
        lines.append(f"  ... {omitted} earlier frame{'s' if omitted != 1 else ''} not shown")
    for frame in frames[-MAX_FRAMES:]:
        function = f", in {frame.function}" if frame.function else ""
        lines.append(f'  File "{frame.file}", line {frame.line}{function}')
        if frame.source.strip():
            lines.append(f"    {shorten(frame.source.strip(), VALUE_LIMIT)}")
        if frame.repeated:
            lines.append(f"  [Previous line repeated {frame.repeated} more times]")
    return "\n".join(lines)


def shorten(text: str, limit: int = VALUE_LIMIT) -> str:
    """At most `limit` characters, marking a cut with "..."."""
    text = text or ""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def _seconds(value: float | None) -> str:
    return f"{value or 0:g} s"


PYTEST_LIMIT = 2000  # characters of pytest's failure report shown to the model


_ADDRESS = re.compile(r"\bat 0x[0-9a-fA-F]+")


# pytest's report, line by line: a traceback entry of code outside the project (`/usr/lib/...:190:
# in run` then its indented source), Python's position markers (`^^^^`, `~~~^^`), pytest's hints.
_OUTSIDE_ENTRY = re.compile(r"^/\S*:\d+: in \S+$")
_INDENTED = re.compile(r"^\s+\S")
_MARKERS = re.compile(r"^\s*[~^]+\s*$")
_HINTS = re.compile(r"^E\s+Use -v to get (?:more|the full) diff\s*$")
_SEPARATOR = re.compile(r"^(?:_ )+_$")


def _tidy_report(report: str) -> str:
    """pytest's report without what costs a small model context and tells it nothing: the frames
    of the standard library and installed packages between the test and the user's code (counted),
    position markers under the source lines, and pytest's own hints."""
    lines, kept, outside = report.split("\n"), [], 0
    index = 0
    while index < len(lines):
        line = lines[index]
        if _OUTSIDE_ENTRY.match(line):
            outside += 1
            index += 1
            while index < len(lines) and _INDENTED.match(lines[index]):
                index += 1
            continue
        if not (_MARKERS.match(line) or _HINTS.match(line)):
            if outside:
                kept.append(f"[{outside} frame{'s' if outside > 1 else ''} outside the project not shown]")
                outside = 0
            kept.append(line)
        index += 1
    # an entry left empty leaves two separators in a row
    doubled = [i > 0 and bool(_SEPARATOR.match(kept[i - 1]) and _SEPARATOR.match(line)) for i, line in enumerate(kept)]
    return "\n".join(line for line, drop in zip(kept, doubled, strict=True) if not drop)


def pytest_feedback(node_id: str, message: str, report: str) -> str:
    """Feedback for a failing pytest test: its id, the one-line failure, and the tail of pytest's
    own report (which already shows the values an assertion compared).

    Object addresses (`<Inventory object at 0x7f...>`) differ on every run; they are masked so the
    same failure gives the same prompt (reproducible seeded sampling, deduplicable training data).
    """
    report = _tidy_report(_ADDRESS.sub("at 0x...", report.strip()))
    message = _ADDRESS.sub("at 0x...", message)
    if len(report) > PYTEST_LIMIT:  # the end holds the failing line and the error
        report = "...\n" + report[-PYTEST_LIMIT:].split("\n", 1)[-1]
    lines = [f"The test {node_id} fails: {shorten(message.strip(), VALUE_LIMIT) or 'see the report'}"]
    if report and report != message.strip():
        lines.append(report)
    return "\n".join(lines)


def calls_feedback(calls: Sequence[Call]) -> str:
    """The calls a failing test made into the project's code, indented by nesting, each with what
    it was given and what it returned: the first wrong value points at the function that made it,
    often not the one the test calls (a helper one call away)."""
    if not calls:
        return ""
    top = min(call.depth for call in calls)
    lines = ["What the project's functions were given and returned while the test ran (the first calls):"]
    for call in calls:
        outcome = (f" raised {call.raised}" if call.raised else
                   "" if call.result is None else f" returned {call.result}")  # fmt: skip
        text = _ADDRESS.sub("at 0x...", f"{call.frame.function}({call.arguments}){outcome}")
        lines.append("  " * (1 + min(call.depth - top, 6)) + shorten(text, 2 * VALUE_LIMIT))
    return "\n".join(lines)
