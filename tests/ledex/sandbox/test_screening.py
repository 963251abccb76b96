"""screening.py: what a candidate may not add, and what it may keep."""

from __future__ import annotations

import pytest

from ledex.sandbox.screening import reaches, refusal


@pytest.mark.parametrize("code, shown", [
    ("import gc", "import gc"),
    ("from ctypes import string_at", "import ctypes"),
    ("import inspect as i", "import inspect"),
    ("import sys\nsys._getframe(1)", "sys._getframe"),
    ("from sys import _getframe", "sys._getframe"),
    ("import sys as s\nx = s.modules", "sys.modules"),
    ("def f(g):\n    return g.f_back.f_locals", ".f_back"),
    ("x = f.__globals__", ".__globals__"),
    ("x = object.__subclasses__()", ".__subclasses__"),
    ("x = globals()", "globals()"),
    ("m = __import__('gc')", "import gc"),
    ("m = __import__(name)", "__import__(...)"),
    ("x = getattr(obj, 'f_' + 'back')", "getattr(..., <computed>)"),
    ("import sys\nx = sys.__dict__['modules']", "sys.__dict__"),
    ("open('/proc/self/environ').read()", "'/proc/self/environ'"),
])  # fmt: skip
def test_reaching_for_the_verifier_is_refused_in_both_profiles(code, shown):
    for profile in ("program", "pytest"):
        assert shown in refusal(code, profile), (profile, code)


@pytest.mark.parametrize("code, shown", [
    ("import pytest", "import pytest"),
    ("from _pytest import runner", "import _pytest"),
    ("import atexit", "import atexit"),
    ("import os\nos.write(5, b'x')", "os.write"),
    ("import os\nos._exit(0)", "os._exit"),
    ("import sys\nsys.settrace(None)", "sys.settrace"),
    ("x = eval('1')", "eval()"),
    ("f = open(3, 'w', closefd=False)", "closefd"),
    ("class Any:\n    def __eq__(self, other):\n        return True", "__eq__ always true"),
    ("class Any:\n    def __eq__(self, o):\n        if o:\n            return 1\n        return not False",
     "__eq__ always true"),
    ("class Any:\n    __eq__ = lambda self, other: True", "__eq__ always true"),
    ("class Any:\n    __eq__: object = staticmethod(lambda *a: True)", "__eq__ always true"),
    ("Any.__eq__ = lambda self, other: True", "__eq__ always true"),
    ("setattr(Any, '__eq__', lambda self, other: True)", "__eq__ always true"),
])  # fmt: skip
def test_what_only_a_project_fix_may_not_add(code, shown):
    assert shown in refusal(code, "pytest")
    assert refusal(code, "program") == "" or "os._exit" in code  # the worker defends the rest


@pytest.mark.parametrize("code", [
    "def add(a, b):\n    return a + b\n",
    "import re, sys, os\nsys.setrecursionlimit(10000)\nprint(re.compile('x'), os.path.join('a', 'b'))",
    "import sys\ndata = sys.stdin.read()\nsys.exit(0)",
    "class Money:\n    def __eq__(self, other):\n        return self.cents == other.cents",
    "class Money:\n    def __eq__(self, other):\n        if self is other:\n            return True\n        return False",
    "class M:\n    def __eq__(self, o):\n        if isinstance(o, M) and o.c == self.c:\n            return True",
    "class M:\n    def __eq__(self, o):\n        if not isinstance(o, M):\n            raise TypeError(o)\n        return True",
    "class M:\n    def __eq__(self, o):\n        def same():\n            return True\n        return same() and o.c == 1",
    "class Any:\n    def __eq__(self, other):\n        return NotImplemented",
    "x = getattr(obj, 'name', None)",
    "def f(\n",  # does not parse: the run reports it
])  # fmt: skip
def test_ordinary_code_is_not_refused(code):
    assert reaches(code, "program") == [] and reaches(code, "pytest") == []


def test_only_what_a_candidate_adds_counts():
    original = "import gc\nimport pytest\n\ndef f():\n    return gc.collect()\n"
    assert refusal(original.replace("return", "x = 1\n    return"), "pytest", original) == ""
    added = refusal(original + "import ctypes\n", "pytest", original)
    assert "import ctypes" in added and "import gc" not in added
    assert "import gc" in refusal(original + "import gc\n", "pytest", original)  # a second one
