import pytest

from stackkit import EmptyStackError, Stack


def test_push_increases_length():
    stack = Stack()
    stack.push("a")
    stack.push("b")
    assert len(stack) == 2


def test_peek_returns_last_pushed():
    stack = Stack([1, 2, 3])
    assert stack.peek() == 3


def test_pop_returns_last_pushed():
    stack = Stack()
    for item in (1, 2, 3):
        stack.push(item)
    assert stack.pop() == 3
    assert stack.pop() == 2
    assert len(stack) == 1


def test_pop_empty_raises():
    with pytest.raises(EmptyStackError):
        Stack().pop()
