from .thermostat import Thermostat

__all__ = ["Thermostat"]
