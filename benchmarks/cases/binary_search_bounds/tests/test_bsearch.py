import pytest

from searchkit import contains, index_of

ITEMS = [1, 3, 5, 7, 9]


@pytest.mark.parametrize("target", ITEMS)
def test_finds_each_element(target):
    assert index_of(ITEMS, target) == ITEMS.index(target)


def test_missing_element():
    assert index_of(ITEMS, 4) == -1
    assert not contains(ITEMS, 10)


def test_empty_list():
    assert index_of([], 1) == -1
