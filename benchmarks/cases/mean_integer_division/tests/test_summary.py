import pytest

from statkit import mean, spread


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([2, 4, 6], 4),
        ([1, 2], 1.5),
        ([1, 2, 3, 4], 2.5),
        ([5], 5),
    ],
    ids=["even-spacing", "pair", "four", "single"],
)
def test_mean(values, expected):
    assert mean(values) == expected


def test_mean_empty_raises():
    with pytest.raises(ValueError):
        mean([])


def test_spread():
    assert spread([3, 9, 1, 4]) == 8
