import pytest

from appconfig import Settings


def test_defaults_and_overrides():
    settings = Settings(debug=True)
    assert settings["debug"] is True
    assert settings["timeout"] == 30


def test_override_applies_inside_block():
    settings = Settings()
    with settings.override(timeout=5):
        assert settings["timeout"] == 5


def test_override_restores_values():
    settings = Settings()
    with settings.override(timeout=5, retries=0):
        pass
    assert settings["timeout"] == 30
    assert settings["retries"] == 3


def test_override_restores_after_error():
    settings = Settings()
    with pytest.raises(RuntimeError), settings.override(debug=True):
        raise RuntimeError("boom")
    assert settings["debug"] is False


def test_unknown_setting_rejected():
    with pytest.raises(KeyError), Settings().override(colour="red"):
        pass
