"""The mutation operators: each finds its slip, changes exactly one place, and leaves the rest of
the file (formatting, comments, other functions, module-level code) as it was."""

from __future__ import annotations

import ast
import difflib

import pytest

from trainer.mutants import OPERATORS, mutations

SOURCE = '''\
"""A module."""
import math

LIMIT = 10  # module-level code is never mutated


def total(items, seen=None):
    """Sum the positive items not seen yet."""
    if seen is None:
        seen = []
    acc = 0
    for i in range(len(items)):
        if items[i] > 0 and i not in seen:  # a comment that must survive
            acc += items[i] * 2
    return acc


class Account:
    def __init__(self, balance, owner="ünïcode"):
        self.balance = balance
        self.history = []

    def withdraw(self, amount, strict=True):
        if not amount <= self.balance:
            raise ValueError(f"{self.owner}: no")
        self.balance -= amount
        self.history.append(-amount)
        return self.balance


def tail(word, config):
    return word[::-1][1:] + max(word) + config["name"] + config["label"]


def is_even(n):
    found = False
    while n > 0:
        n = n - 2
    return math.floor(n) == 0
'''


def changed(before: str, after: str) -> tuple[list[str], list[str]]:
    diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), n=0, lineterm=""))
    removed = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")]
    return removed, added


@pytest.fixture(scope="module")
def all_mutations():
    return mutations(SOURCE)


# (operator, a line before, the same line after)
EXPECTED = [
    (
        "comparison",
        "        if items[i] > 0 and i not in seen:  # a comment that must survive",
        "        if items[i] >= 0 and i not in seen:  # a comment that must survive",
    ),
    (
        "comparison",
        "        if items[i] > 0 and i not in seen:  # a comment that must survive",
        "        if items[i] > 0 and i in seen:  # a comment that must survive",
    ),
    ("boundary", "    while n > 0:", "    while n > 1:"),
    ("arithmetic", "            acc += items[i] * 2", "            acc -= items[i] * 2"),
    ("arithmetic", "        n = n - 2", "        n = n + 2"),
    ("swapped-operands", "        n = n - 2", "        n = 2 - n"),
    ("range-off-by-one", "    for i in range(len(items)):", "    for i in range(len(items) - 1):"),
    ("range-off-by-one", "    for i in range(len(items)):", "    for i in range(len(items) + 1):"),
    ("index-off-by-one", "            acc += items[i] * 2", "            acc += items[i + 1] * 2"),
    (
        "slice",
        '    return word[::-1][1:] + max(word) + config["name"] + config["label"]',
        '    return word[:][1:] + max(word) + config["name"] + config["label"]',
    ),
    (
        "slice",
        '    return word[::-1][1:] + max(word) + config["name"] + config["label"]',
        '    return word[::-1][2:] + max(word) + config["name"] + config["label"]',
    ),
    (
        "inverted-condition",
        "        if not amount <= self.balance:",
        "        if amount <= self.balance:",
    ),
    (
        "boolean-operator",
        "        if items[i] > 0 and i not in seen:  # a comment that must survive",
        "        if items[i] > 0 or i not in seen:  # a comment that must survive",
    ),
    ("wrong-variable", "    return acc", "    return i"),
    ("wrong-attribute", "        return self.balance", "        return self.history"),
    (
        "wrong-key",
        '    return word[::-1][1:] + max(word) + config["name"] + config["label"]',
        "    return word[::-1][1:] + max(word) + config['label'] + config[\"label\"]",
    ),
    ("swapped-arguments", "    return math.floor(n) == 0", None),  # one argument: nothing to swap
    (
        "wrong-default",
        "    def withdraw(self, amount, strict=True):",
        "    def withdraw(self, amount, strict=False):",
    ),
    (
        "wrong-builtin",
        '    return word[::-1][1:] + max(word) + config["name"] + config["label"]',
        '    return word[::-1][1:] + min(word) + config["name"] + config["label"]',
    ),
    (
        "wrong-builtin",
        "        self.history.append(-amount)",
        "        self.history.extend(-amount)",
    ),
    ("constant", "    found = False", "    found = True"),
    ("constant", "    acc = 0", "    acc = 1"),
]


@pytest.mark.parametrize(("operator", "before", "after"), EXPECTED)
def test_each_operator_changes_one_line_and_keeps_the_rest(all_mutations, operator, before, after):
    results = [changed(SOURCE, m.apply(SOURCE)) for m in all_mutations if m.operator == operator]
    if after is None:
        assert all(removed != [before] for removed, _ in results)
        return
    assert ([before], [after]) in results, f"no {operator} mutation turns {before!r} into {after!r}"


def test_missing_return_deletes_the_final_return_only(all_mutations):
    found = {
        m.function: changed(SOURCE, m.apply(SOURCE))
        for m in all_mutations
        if m.operator == "missing-return"
    }
    assert found["total"] == (["    return acc"], [])
    assert found["Account.withdraw"] == (["        return self.balance"], [])
    assert "tail" not in found  # its only statement: without it the function would be empty


def test_mutable_default_shares_one_list_between_calls(all_mutations):
    (mutation,) = [m for m in all_mutations if m.operator == "mutable-default"]
    removed, added = changed(SOURCE, mutation.apply(SOURCE))
    assert removed == ["def total(items, seen=None):", "    if seen is None:", "        seen = []"]
    assert added == ["def total(items, seen=[]):"]
    assert '    """Sum the positive items not seen yet."""' in mutation.apply(SOURCE)


def test_every_mutant_parses_differs_and_stays_inside_a_function(all_mutations):
    assert {m.operator for m in all_mutations} <= set(OPERATORS)
    assert len({m.operator for m in all_mutations}) >= 15
    functions = {
        node.name for node in ast.walk(ast.parse(SOURCE)) if isinstance(node, ast.FunctionDef)
    }
    texts = set()
    for mutation in all_mutations:
        mutated = mutation.apply(SOURCE)
        ast.parse(mutated)
        assert mutated != SOURCE and mutated not in texts
        texts.add(mutated)
        assert mutation.function.rsplit(".", 1)[-1] in functions
        removed, _ = changed(SOURCE, mutated)
        assert "LIMIT = 10  # module-level code is never mutated" not in removed
        assert mutation.description


def test_columns_are_characters_after_non_ascii_text():
    source = 'def f(x):\n    return "ü" + x[0]\n'
    (index,) = [m for m in mutations(source) if m.operator == "index-off-by-one"]
    assert index.apply(source) == 'def f(x):\n    return "ü" + x[1]\n'


def test_code_that_does_not_parse_has_no_mutations():
    assert mutations("def f(:\n") == []
    assert mutations("x = 1\n") == []  # no function
