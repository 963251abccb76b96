from releases import newest, sort_versions


def test_newest_single_digits():
    assert newest(["1.2.0", "v1.3.0", "1.2.9"]) == "v1.3.0"


def test_newest_double_digits():
    assert newest(["1.9.0", "1.10.0", "1.2.0"]) == "1.10.0"


def test_sort_versions():
    assert sort_versions(["2.0.0", "1.10.1", "1.9", "10.0"]) == ["1.9", "1.10.1", "2.0.0", "10.0"]


def test_sort_missing_patch():
    assert sort_versions(["2.0", "1.5.1"]) == ["1.5.1", "2.0"]
