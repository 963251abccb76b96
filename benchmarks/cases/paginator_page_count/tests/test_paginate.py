import pytest

from pager import Paginator


@pytest.mark.parametrize(
    ("count", "per_page", "pages"),
    [(10, 5, 2), (11, 5, 3), (0, 5, 0), (1, 10, 1)],
    ids=["exact", "partial-last-page", "empty", "single-item"],
)
def test_page_count(count, per_page, pages):
    assert Paginator(range(count), per_page).page_count == pages


def test_first_page():
    assert Paginator(range(7), per_page=3).page(1) == [0, 1, 2]


def test_page_zero_rejected():
    with pytest.raises(IndexError):
        Paginator(range(7), per_page=3).page(0)
