"""A thermostat that stores its target in Celsius and also speaks Fahrenheit."""


class Thermostat:
    MIN_C = 5.0
    MAX_C = 30.0

    def __init__(self, celsius=20.0):
        self.celsius = celsius

    @property
    def celsius(self):
        return self._celsius

    @celsius.setter
    def celsius(self, value):
        if not self.MIN_C <= value <= self.MAX_C:
            raise ValueError(f"{value} C is outside {self.MIN_C}..{self.MAX_C}")
        self._celsius = float(value)

    @property
    def fahrenheit(self):
        return self.celsius * 9 / 5 + 32

    @fahrenheit.setter
    def fahrenheit(self, value):
        self.celsius = (value - 32) * 9 / 5
