"""Putting fixed definitions back by symbol: only the replaced definitions change."""

from __future__ import annotations

import ast
import textwrap

import pytest

from ledex.patching import Patch, PatchError, apply_fix, find_symbols, symbol_at

SOURCE = textwrap.dedent('''\
    """Shapes."""
    import math

    # The area of a circle.
    def area(r):
        return math.pi * r  # wrong


    class Stack:
        """A stack."""

        limit = 10

        def __init__(self):
            self.items = []

        @property
        def size(self):
            return len(self.items)

        def pop(self):
            # comment kept? no: inside the definition
            return self.items.pop(0)

        async def drain(self):
            return None

        class Node:
            def value(self):
                return 1


    def untouched():
        return "same"
''')


def _fix(reply: str, **kwargs) -> Patch:
    patch = apply_fix(SOURCE, textwrap.dedent(reply), **kwargs)
    assert isinstance(patch, Patch), patch
    ast.parse(patch.new_source)
    return patch


def _unchanged_outside(patch: Patch, *qualnames: str) -> None:
    """Every line outside the replaced definitions (and inserted imports) is byte-identical."""
    symbols = find_symbols(SOURCE)
    old = SOURCE.splitlines()
    kept = [line for i, line in enumerate(old, 1)
            if not any(symbols[q].start_line <= i <= symbols[q].end_line for q in qualnames)]  # fmt: skip
    new = patch.new_source.splitlines()
    it = iter(new)
    assert all(any(line == candidate for candidate in it) for line in kept)


def test_finds_functions_methods_nested_classes():
    symbols = find_symbols(SOURCE)
    assert set(symbols) == {"area", "Stack.__init__", "Stack.size", "Stack.pop", "Stack.drain",
                            "Stack.Node.value", "untouched"}  # fmt: skip
    assert symbols["Stack.size"].start_line == symbols["Stack.size"].end_line - 2  # the decorator counts
    assert symbols["Stack.pop"].indent == "    " and symbols["Stack.pop"].is_method


def test_replaces_a_top_level_function_and_keeps_its_comment():
    patch = _fix("def area(r):\n    return math.pi * r ** 2\n")
    assert "return math.pi * r ** 2" in patch.new_source
    assert "# The area of a circle.\ndef area(r):" in patch.new_source
    assert patch.replaced == ("area",)
    _unchanged_outside(patch, "area")


def test_a_method_returned_as_a_plain_function_is_reindented():
    patch = _fix("def pop(self):\n    return self.items.pop()\n", target="Stack.pop")
    assert "    def pop(self):\n        return self.items.pop()\n" in patch.new_source
    _unchanged_outside(patch, "Stack.pop")


def test_a_class_with_changed_methods_replaces_only_those():
    patch = _fix('''
        class Stack:
            def pop(self):
                return self.items.pop()

            @property
            def size(self):
                return len(self.items) + 0
        ''')
    assert patch.replaced == ("Stack.size", "Stack.pop")
    assert "    @property\n    def size(self):\n        return len(self.items) + 0\n" in patch.new_source
    assert "limit = 10" in patch.new_source
    _unchanged_outside(patch, "Stack.size", "Stack.pop")


def test_async_and_nested_class_methods():
    patch = _fix('''
        class Stack:
            async def drain(self):
                return [x async for x in self.items]

            class Node:
                def value(self):
                    return 2
        ''')
    assert patch.replaced == ("Stack.drain", "Stack.Node.value")
    assert "            return 2\n" in patch.new_source


def test_several_functions_are_all_patched_and_unknown_ones_reported():
    patch = _fix('''
        def helper():
            return 1

        def area(r):
            return math.pi * r * r

        def untouched():
            return "changed"
        ''')
    assert patch.replaced == ("area", "untouched")
    assert patch.ignored == ("helper",)


def test_missing_imports_are_added_after_the_last_import():
    patch = _fix("import functools\nfrom math import tau\n\ndef area(r):\n    return tau / 2 * r * r\n")
    assert patch.added_imports == ("import functools", "from math import tau")
    assert patch.new_source.startswith('"""Shapes."""\nimport math\nimport functools\nfrom math import tau\n')
    assert "import math" not in patch.added_imports


def test_crlf_files_stay_crlf_and_a_missing_final_newline_stays_missing():
    source = "def f():\r\n    return 1\r\n\r\ndef g():\r\n    return 2"
    patch = apply_fix(source, "def g():\n    return 3\n")
    assert isinstance(patch, Patch)
    assert patch.new_source == "def f():\r\n    return 1\r\n\r\ndef g():\r\n    return 3"


def test_edits_rebuild_the_new_source():
    patch = _fix("import os\ndef pop(self):\n    return self.items.pop()\n", target="Stack.pop")
    lines = SOURCE.splitlines(keepends=True)
    for edit in sorted(patch.edits, key=lambda e: e.start_line, reverse=True):
        lines[edit.start_line - 1 : max(edit.end_line, edit.start_line - 1)] = [edit.text]
    assert "".join(lines) == patch.new_source


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("def nothing_here():\n    return 1\n", "nothing_here, which matches no function"),
        ("x = 1\n", "defines nothing"),
        ("def area(r):\n    return (\n", "does not parse"),
    ],
)
def test_replies_that_patch_nothing_are_refused(reply, message):
    result = apply_fix(SOURCE, reply)
    assert isinstance(result, PatchError) and message in result.message


def test_a_broken_file_is_an_error_not_an_exception():
    assert isinstance(apply_fix("def f(:\n", "def f():\n    pass\n"), PatchError)


def test_symbol_at():
    symbols = find_symbols(SOURCE)
    pop = symbols["Stack.pop"]
    assert symbol_at(SOURCE, pop.end_line) == pop
    assert symbol_at(SOURCE, 2) is None


def test_diff_names_the_file():
    patch = _fix("def area(r):\n    return math.pi * r ** 2\n")
    diff = patch.diff("shapes.py")
    assert diff.startswith("--- a/shapes.py\n+++ b/shapes.py\n")
    assert "-    return math.pi * r  # wrong\n+    return math.pi * r ** 2\n" in diff


def test_stub_definitions_echoed_from_the_prompt_are_not_applied():
    patch = _fix('''
        class Stack:
            @property
            def size(self):
                ...

            def pop(self):
                return self.items.pop()
        ''')
    assert patch.replaced == ("Stack.pop",)
    assert "return len(self.items)" in patch.new_source


def test_a_property_getter_and_setter_are_one_symbol_replaced_together():
    source = textwrap.dedent('''\
        class T:
            @property
            def f(self):
                return self.c * 9 / 5 + 32

            @f.setter
            def f(self, value):
                self.c = (value - 32) * 9 / 5

            def other(self):
                return 1
        ''')
    symbols = find_symbols(source)
    assert (symbols["T.f"].start_line, symbols["T.f"].end_line) == (2, 8)
    reply = textwrap.dedent('''\
        class T:
            @property
            def f(self):
                return self.c * 9 / 5 + 32

            @f.setter
            def f(self, value):
                self.c = (value - 32) * 5 / 9
        ''')
    patch = apply_fix(source, reply)
    assert isinstance(patch, Patch)
    assert "(value - 32) * 5 / 9" in patch.new_source and patch.new_source.count("def f(") == 2
    assert "def other(self):\n        return 1\n" in patch.new_source


def test_definitions_echoed_unchanged_are_not_reported_and_an_identical_reply_is_refused():
    patch = _fix("def untouched():\n    return \"same\"\n\ndef area(r):\n    return math.pi * r ** 2\n")
    assert patch.replaced == ("area",)
    same = apply_fix(SOURCE, "def untouched():\n    return \"same\"\n")
    assert isinstance(same, PatchError) and "identical" in same.message


def test_an_import_the_file_lacks_is_a_fix_even_when_the_function_comes_back_unchanged():
    source = "def root(x):\n    return math.isqrt(x)\n"
    patch = apply_fix(source, "import math\n\n" + source)
    assert isinstance(patch, Patch) and patch.added_imports == ("import math",) and patch.replaced == ()
    assert patch.new_source == "import math\n" + source
    # an import the file has already, with the function unchanged, is still nothing
    same = apply_fix("import math\n" + source, "import math\n\n" + source)
    assert isinstance(same, PatchError) and "identical" in same.message
