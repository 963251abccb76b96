import pytest

from plugins import Registry


def test_create_calls_factory():
    registry = Registry()
    registry.register("upper", str.upper)
    assert registry.create("upper", "abc") == "ABC"


def test_duplicate_rejected():
    registry = Registry()
    registry.register("strip", str.strip)
    with pytest.raises(ValueError):
        registry.register("strip", str.strip)


def test_unknown_plugin():
    with pytest.raises(KeyError):
        Registry().create("missing-plugin")


def test_registries_are_independent():
    first, second = Registry(), Registry()
    first.register("json", dict)
    assert first.names() == ["json"]
    assert second.names() == []
