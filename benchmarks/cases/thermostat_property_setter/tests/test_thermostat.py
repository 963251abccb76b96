import pytest

from climate import Thermostat


def test_default_target():
    assert Thermostat().celsius == 20.0


def test_fahrenheit_reading():
    assert Thermostat(25).fahrenheit == pytest.approx(77.0)


def test_set_fahrenheit():
    thermostat = Thermostat()
    thermostat.fahrenheit = 41
    assert thermostat.celsius == pytest.approx(5.0)


def test_out_of_range_rejected():
    with pytest.raises(ValueError):
        Thermostat(45)
