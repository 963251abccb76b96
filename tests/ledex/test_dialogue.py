"""The model contract: prompts built one way, replies read back one way."""

from __future__ import annotations

import ast
import random
import time

import pytest

from ledex.dialogue import (
    DEFAULT_STYLE,
    STYLES,
    Attempt,
    ParseError,
    Reply,
    build_conversation,
    build_training_example,
    feedback_turn,
    format_reply,
    function_task,
    parse_reply,
    problem_task,
)

WRONG = "def add(a, b):\n    return a - b"
FIX = "def add(a, b):\n    return a + b"
FEEDBACK = "assert add(1, 2) == 3 failed: expected 3, got -1"
TASK = problem_task("Write a function that adds two numbers.", ["assert add(1, 2) == 3"], "add")


def roles(messages: list[dict[str, str]]) -> list[str]:
    return [message["role"] for message in messages]


# --------------------------------------------------------------------------------------------
# Building conversations
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_conversation_has_the_three_turns_and_ends_with_the_user(style):
    messages = build_conversation(TASK, WRONG, FEEDBACK, style=style)

    assert roles(messages) == ["user", "assistant", "user"]
    assert messages[0]["content"] == TASK
    assert messages[1]["content"] == f"```python\n{WRONG}\n```"
    assert messages[2]["content"] == feedback_turn(FEEDBACK, style)
    assert messages[2]["content"].startswith(FEEDBACK)
    assert all(set(message) == {"role", "content"} for message in messages)


def test_styles_ask_for_different_things():
    explain = feedback_turn(FEEDBACK, "explain+refine")
    refine = feedback_turn(FEEDBACK, "refine")

    assert explain != refine
    assert "explain" in explain.lower()
    assert "without any explanation" in refine
    assert "```python" in explain and "```python" in refine
    assert feedback_turn(FEEDBACK) == explain
    assert DEFAULT_STYLE == "explain+refine"


@pytest.mark.parametrize("style", STYLES)
def test_history_appends_a_reply_and_its_feedback_per_round(style):
    history = [Attempt("first reply", "second feedback"), Attempt("second reply", "third feedback")]

    messages = build_conversation(TASK, WRONG, FEEDBACK, style=style, history=history)

    assert roles(messages) == ["user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in messages[3:]] == [
        "first reply",
        feedback_turn("second feedback", style),
        "second reply",
        feedback_turn("third feedback", style),
    ]


@pytest.mark.parametrize(
    ("system", "expected_roles"),
    [
        (None, ["user", "assistant", "user"]),
        ("", ["system", "user", "assistant", "user"]),
        ("You fix code.", ["system", "user", "assistant", "user"]),
    ],
)
def test_system_prompt_only_when_given(system, expected_roles):
    messages = build_conversation(TASK, WRONG, FEEDBACK, system=system)

    assert roles(messages) == expected_roles
    if system is not None:
        assert messages[0]["content"] == system


def test_training_example_is_the_conversation_plus_the_answer():
    reply = format_reply("It subtracts instead of adding.", FIX)
    history = [Attempt("an earlier reply", "its feedback")]

    example = build_training_example(TASK, WRONG, FEEDBACK, reply, history=history, system="s")

    assert example[:-1] == build_conversation(TASK, WRONG, FEEDBACK, history=history, system="s")
    assert example[-1] == {"role": "assistant", "content": reply}


@pytest.mark.parametrize(
    "call",
    [
        lambda: build_conversation(TASK, WRONG, FEEDBACK, style="explain"),  # type: ignore[arg-type]
        lambda: build_training_example(TASK, WRONG, FEEDBACK, "r", style="x"),  # type: ignore[arg-type]
        lambda: feedback_turn(FEEDBACK, "Refine"),  # type: ignore[arg-type]
        lambda: format_reply("e", FIX, "code"),  # type: ignore[arg-type]
        lambda: parse_reply(FIX, style="fix"),  # type: ignore[arg-type]
    ],
)
def test_unknown_style_raises_value_error(call):
    with pytest.raises(ValueError, match="unknown dialogue style"):
        call()


def test_empty_feedback_still_says_the_code_fails():
    assert feedback_turn("  \n").startswith("The code does not pass the tests.")


def test_problem_task_lists_tests_in_a_python_fence():
    task = problem_task(
        "Write a function to add two numbers.\n",
        ["assert add(1, 2) == 3\n", "assert add(0, 0) == 0"],
        entry_point="add",
    )

    assert task == (
        "Write a function to add two numbers.\n\n"
        "The function must be named `add`.\n\n"
        "Your code should pass these tests:\n\n"
        "```python\nassert add(1, 2) == 3\nassert add(0, 0) == 0\n```"
    )


def test_problem_task_without_tests_or_entry_point_is_the_description():
    assert problem_task("  Reverse a string.  ") == "Reverse a string."


def test_problem_task_fences_a_humaneval_style_prompt():
    prompt = 'def add(a, b):\n    """Add two numbers."""\n'

    task = problem_task(prompt, ["assert add(1, 2) == 3"])

    assert task.startswith('```python\ndef add(a, b):\n    """Add two numbers."""\n```\n\n')


def test_function_task_shows_code_test_path_and_note():
    task = function_task(
        "def add(a, b):\n    return a - b\n",
        "def test_add():\n    assert add(1, 2) == 3\n",
        path="calc/ops.py",
        note="(parts were truncated to fit the context)",
    )

    assert task == (
        "Here is the code from `calc/ops.py`:\n\n"
        "```python\ndef add(a, b):\n    return a - b\n```\n\n"
        "Your code should pass this test:\n\n"
        "```python\ndef test_add():\n    assert add(1, 2) == 3\n```\n\n"
        "(parts were truncated to fit the context)"
    )
    assert "from `" not in function_task("x = 1", "assert x")


def test_code_containing_backtick_fences_gets_a_longer_fence():
    code = 'DOC = """\n```python\nx = 1\n```\n"""'

    messages = build_conversation(TASK, code, FEEDBACK)

    assert messages[1]["content"] == f"````python\n{code}\n````"
    assert parse_reply(messages[1]["content"]) == Reply("", code)


# --------------------------------------------------------------------------------------------
# Reading replies
# --------------------------------------------------------------------------------------------

PARSED = [
    pytest.param(
        "The loop subtracts.\n\n```python\ndef add(a, b):\n    return a + b\n```\n",
        Reply("The loop subtracts.", FIX),
        id="one-fence",
    ),
    pytest.param("def add(a, b):\n    return a + b\n", Reply("", FIX), id="no-fence-pure-code"),
    pytest.param(
        "It subtracts instead of adding.\nHere is the fix:\ndef add(a, b):\n    return a + b\n",
        Reply("It subtracts instead of adding.", FIX),
        id="no-fence-prose-then-code",
    ),
    pytest.param(
        "It subtracts.\n\ndef add(a, b):\n    return a + b\n\nThis now adds the numbers.\n",
        Reply("It subtracts.", FIX),
        id="no-fence-prose-code-prose",
    ),
    pytest.param(
        "def add(a, b):\n    return a + b\n\nThe original subtracted.",
        Reply("The original subtracted.", FIX),
        id="no-fence-code-then-prose",
    ),
    pytest.param(
        "The fix:\n\n    def add(a, b):\n        return a + b\n",
        Reply("", FIX),
        id="no-fence-indented-code-block",
    ),
    pytest.param(
        "The line\n```python\nreturn a - b\n```\nsubtracts. Corrected:\n"
        "```python\ndef add(a, b):\n    return a + b\n```\n"
        "Usage:\n```python\nprint(add(1, 2))\nprint(add(3, 4))\nprint(add(5, 6))\n```\n",
        Reply("The line\n```python\nreturn a - b\n```\nsubtracts.", FIX),
        id="several-fences-bug-snippet-fix-usage",
    ),
    pytest.param(
        "First try:\n```python\ndef add(a, b):\n    return b + a\n```\n"
        "Same length, written again:\n```python\ndef add(a, b):\n    return a + b\n```\n",
        Reply("First try:\n```python\ndef add(a, b):\n    return b + a\n```", FIX),
        id="tie-prefers-the-last",
    ),
    pytest.param(
        "```python\ndef add(a, b):\n    return a + b\n```\n\nThe original subtracted b.",
        Reply("The original subtracted b.", FIX),
        id="prose-after-the-code",
    ),
    pytest.param(
        "It subtracted.\n```python\ndef add(a, b):\n    return a + b\n```\n\nNow it adds.",
        Reply("It subtracted.", FIX),
        id="prose-before-wins-over-prose-after",
    ),
    pytest.param(
        "It subtracted.\n\n```python\ndef add(a, b):\n    return a + b",
        Reply("It subtracted.", FIX, truncated=True),
        id="truncated-but-parses",
    ),
    pytest.param(
        "It subtracted.\n```python\ndef add(a, b):\n    return a + b\n```\nTry:\n```python\nadd(",
        Reply("It subtracted.", FIX),
        id="truncated-usage-after-complete-fix",
    ),
    pytest.param(
        "It subtracted.\r\n\r\n```python\r\ndef add(a, b):\r\n    return a + b\r\n```\r\n",
        Reply("It subtracted.", FIX),
        id="crlf",
    ),
    pytest.param(
        "It subtracted.\r```python\rdef add(a, b):\r    return a + b\r```",
        Reply("It subtracted.", FIX),
        id="bare-cr",
    ),
    pytest.param(
        "It subtracted.\n~~~python\ndef add(a, b):\n    return a + b\n~~~\n",
        Reply("It subtracted.", FIX),
        id="tilde-fence",
    ),
    pytest.param(
        "It subtracted.\n```\ndef add(a, b):\n    return a + b\n```",
        Reply("It subtracted.", FIX),
        id="untagged-fence",
    ),
    pytest.param(
        "It subtracted.\n```Python3 title=ops.py\ndef add(a, b):\n    return a + b\n```",
        Reply("It subtracted.", FIX),
        id="tag-with-case-and-attributes",
    ),
    pytest.param(
        "It subtracted.\n```py\ndef add(a, b):\n    return a + b\n```\n"
        "Run it:\n```bash\npython -c 'import ops; print(ops.add(1, 2))' && echo done && echo ok\n```",
        Reply("It subtracted.", FIX),
        id="non-python-block-ignored",
    ),
    pytest.param(
        "1. It subtracted.\n2. Fixed:\n   ```python\n   def add(a, b):\n       return a + b\n   ```",
        Reply("1. It subtracted.", FIX),
        id="fence-indented-in-a-list",
    ),
    pytest.param(
        "Only the method changes.\n```python\n    def add(self, a, b):\n        return a + b\n```",
        Reply("Only the method changes.", "def add(self, a, b):\n    return a + b"),
        id="indented-method-is-dedented",
    ),
    pytest.param(
        "### Explanation\nIt subtracted. Here is the corrected code:\n\n### Corrected Code\n"
        "```python\ndef add(a, b):\n    return a + b\n```",
        Reply("It subtracted.", FIX),
        id="markdown-headings-and-lead-in-dropped",
    ),
    pytest.param(
        "**Explanation:** It subtracted.\n\n**Fixed code:**\n```python\n"
        "def add(a, b):\n    return a + b\n```",
        Reply("**Explanation:** It subtracted.", FIX),
        id="bold-lead-in-dropped",
    ),
    pytest.param(
        "It subtracted.\n```python\ndef add(a, b):\n    return a + b\n```<|im_end|>\n"
        "<|im_start|>user\nthanks<|im_end|>",
        Reply("It subtracted.", FIX),
        id="leaked-end-of-turn-token",
    ),
]


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_parse_reply(text, expected):
    assert parse_reply(text) == expected


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param(" \n\t\r\n ", "empty", id="whitespace"),
        pytest.param("<|im_end|>", "empty", id="only-a-special-token"),
        pytest.param("I think the code is correct as written.", "no_code", id="prose"),
        pytest.param("Done", "no_code", id="prose-that-parses-as-a-name"),
        pytest.param("not bad", "no_code", id="prose-that-parses-as-an-expression"),
        pytest.param(
            "Here it is:\n```javascript\nfunction add(a, b) { return a + b; }\n```",
            "no_code",
            id="only-javascript",
        ),
        pytest.param("```python\n\n```", "no_code", id="empty-python-block"),
        pytest.param(
            "It subtracted.\n```python\ndef add(a, b)\n    return a + b\n```",
            "syntax",
            id="syntax-error-block",
        ),
        pytest.param(
            "It subtracted.\n```python\ndef add(a, b):\n    return (a +", "truncated", id="truncated"
        ),
        pytest.param(
            "The bug:\n```python\nreturn a - b\n```\nFix:\n```python\ndef add(a, b):\n    return (a",
            "truncated",
            id="truncated-fix-beats-the-bug-snippet",
        ),
    ],
)
def test_parse_reply_errors(text, kind):
    result = parse_reply(text)

    assert isinstance(result, ParseError)
    assert result.kind == kind
    assert result.raw == text
    assert result.message


def test_syntax_error_message_shows_the_best_block():
    text = (
        "```python\nx = (\n```\n"
        "```python\ndef add(a, b)\n    return a + b\n```\n"
    )

    result = parse_reply(text)

    assert isinstance(result, ParseError) and result.kind == "syntax"
    assert "line 1" in result.message
    assert "def add(a, b)\n    return a + b" in result.message


def test_refine_reply_may_have_no_explanation():
    assert parse_reply(f"```python\n{FIX}\n```", style="refine") == Reply("", FIX)


def test_function_definition_beats_a_longer_usage_example():
    usage = "\n".join(f"print(add({i}, {i}))" for i in range(20))
    text = f"It subtracted.\n```python\n{FIX}\n```\nCheck it:\n```python\n{usage}\n```"

    assert parse_reply(text) == Reply("It subtracted.", FIX)


def test_only_a_lead_in_before_the_code_takes_the_prose_after():
    text = f"Fixed:\n```python\n{FIX}\n```\nIt subtracted before."

    assert parse_reply(text) == Reply("It subtracted before.", FIX)


def test_prose_that_raises_parse_warnings_stays_quiet_and_is_read_the_same(recwarn):
    import warnings

    warnings.simplefilter("error")  # the strictest host: every warning an error
    text = "The 1st line was wrong.\n```python\nx = 1if True else 2\n```"

    assert parse_reply(text) == Reply("The 1st line was wrong.", "x = 1if True else 2")
    assert not recwarn.list


# --------------------------------------------------------------------------------------------
# format_reply <-> parse_reply
# --------------------------------------------------------------------------------------------

ROUND_TRIP = [
    ("It subtracted instead of adding.", FIX),
    ("", FIX),
    ("Two problems:\n- the sign\n- the `return`", FIX),
    ("The bug is in\n```python\nreturn a - b\n```\nwhich subtracts.", FIX),
    ("Ünïcödé explanation — with dashes.", "def f():\n    return 'é'"),
    ("Off by one.", "import math\n\n\nclass C:\n    def m(self):\n        return math.pi\n"),
    ("Uses tildes.", 'S = """\n~~~\n"""\n\ndef f():\n    return S'),
    ("Nested fences.", 'DOC = """\n````python\nx = 1\n````\n"""'),
    ("Whitespace-only line in a string.", 'S = """a\n    \nb"""'),
    ("Script.", "x = 1\nprint(x)"),
    ("Async.", "async def f():\n    await g()"),
    ("Decorated.", "@cache\ndef f(n):\n    return n"),
]


@pytest.mark.parametrize(("explanation", "code"), ROUND_TRIP)
def test_format_then_parse_round_trips(explanation, code):
    code = code.rstrip()

    assert parse_reply(format_reply(explanation, code)) == Reply(explanation, code)


@pytest.mark.parametrize(
    ("explanation", "code", "expected"),
    [
        ("  It subtracted.\r\n\n", "\n\ndef add(a, b):\r\n    return a + b\n\n", Reply("It subtracted.", FIX)),
        ("It subtracted. Here is the fix:", FIX, Reply("It subtracted.", FIX)),
        ("Here is the fixed code:", FIX, Reply("", FIX)),
        ("Method only.", "    def m(self):\n        return 1\n", Reply("Method only.", "def m(self):\n    return 1")),
    ],
)
def test_format_reply_tidies_both_parts_the_way_the_parser_does(explanation, code, expected):
    text = format_reply(explanation, code)

    assert parse_reply(text) == expected
    assert format_reply(expected.explanation, expected.code) == text


def test_format_reply_shape():
    assert format_reply("It subtracted.", FIX) == f"It subtracted.\n\n```python\n{FIX}\n```"


def test_refine_target_is_code_only():
    text = format_reply("It subtracted.", FIX, "refine")

    assert text == f"```python\n{FIX}\n```"
    assert parse_reply(text, style="refine") == Reply("", FIX)


# --------------------------------------------------------------------------------------------
# Robustness
# --------------------------------------------------------------------------------------------

FRAGMENTS = [
    "```", "```python", "```py", "```js", "~~~", "~~~python", "````", "\n", "\r\n", "\r", "  ",
    "\t", "def f():", "    return 1", "return (", "class C:", "import os", "from x import y",
    "@dec", "async def g():", "pass", "Here is the fix:", "The bug is", ":", "(", ")", "'''", '"',
    "# heading", "### Explanation", "<|im_end|>", "<|endoftext|>", "\x00", "é", "x = 1", "print(",
    "`", "**Fixed:**", "1. step", "    ", "else:", "lambda: 0",
]


def test_parse_reply_never_raises_on_random_fragments():
    rng = random.Random(20241210)
    for _ in range(3000):
        text = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 30)))

        result = parse_reply(text)

        assert isinstance(result, Reply | ParseError)
        if isinstance(result, Reply):
            ast.parse(result.code)  # whatever is accepted as code parses
            assert result.code.strip()
        else:
            assert result.raw == text


@pytest.mark.parametrize(
    "text",
    [
        "(" * 500,
        "```python\n" + "(" * 500 + "\n```",
        "def f():\n    return '\x00'\n",
        "```python\nx = '\x00'\n```",
        "\x00",
        "```" * 100,
        "~" * 1000,
        "`" * 1000,
        "```python\n" + "```\n" * 50,
    ],
)
def test_parse_reply_never_raises_on_pathological_input(text):
    assert isinstance(parse_reply(text), Reply | ParseError)


def test_unfenced_search_stays_fast_on_a_long_broken_reply():
    text = "\n".join(f"def f{i}(:\n    prose line {i} here." for i in range(400))

    started = time.perf_counter()
    result = parse_reply(text)

    assert isinstance(result, ParseError) and result.kind == "no_code"
    assert time.perf_counter() - started < 5
