import pytest

from sigwin import moving_average


@pytest.mark.parametrize(
    ("values", "size", "expected"),
    [
        ([1, 2, 3, 4], 2, [1.5, 2.5, 3.5]),
        ([1, 2], 3, []),
        ([4, 4, 4], 3, [4.0]),
    ],
    ids=["pairs", "window-too-large", "single-window"],
)
def test_moving_average(values, size, expected):
    assert moving_average(values, size) == expected


def test_zero_window_rejected():
    with pytest.raises(ValueError):
        moving_average([1, 2, 3], 0)
