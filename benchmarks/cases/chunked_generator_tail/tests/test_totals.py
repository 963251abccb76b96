import pytest

from streamutil.chunks import chunked
from streamutil.totals import batch_totals, running_max


@pytest.mark.parametrize(
    ("numbers", "size", "totals"),
    [(range(6), 3, [3, 12]), (range(7), 3, [3, 12, 6]), ([], 2, []), ([5], 4, [5])],
    ids=["exact", "remainder", "empty", "short"],
)
def test_batch_totals(numbers, size, totals):
    assert batch_totals(numbers, size) == totals


def test_running_max():
    assert list(running_max([3, 1, 4, 1, 5])) == [3, 3, 4, 4, 5]


def test_chunk_size_must_be_positive():
    with pytest.raises(ValueError):
        list(chunked([1, 2], 0))
