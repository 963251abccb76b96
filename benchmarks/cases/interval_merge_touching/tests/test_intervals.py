import pytest

from timeline import merge, total_covered


@pytest.mark.parametrize(
    ("intervals", "expected"),
    [
        ([(1, 3), (2, 5)], [(1, 5)]),
        ([(1, 2), (2, 4)], [(1, 4)]),
        ([(1, 2), (3, 4)], [(1, 2), (3, 4)]),
        ([(5, 6), (1, 5)], [(1, 6)]),
        ([(1, 10), (2, 3)], [(1, 10)]),
    ],
    ids=["overlapping", "touching", "disjoint", "touching-unsorted", "nested"],
)
def test_merge(intervals, expected):
    assert merge(intervals) == expected


def test_total_covered():
    assert total_covered([(0, 2), (1, 4), (6, 7)]) == 5
