"""Application settings with temporary overrides."""

from contextlib import contextmanager

DEFAULTS = {"debug": False, "timeout": 30, "retries": 3}


class Settings:
    def __init__(self, **overrides):
        self.values = dict(DEFAULTS)
        self.values.update(overrides)

    def __getitem__(self, key):
        return self.values[key]

    @contextmanager
    def override(self, **changes):
        """Change some values inside a `with` block; they are restored afterwards, even on error."""
        unknown = set(changes) - set(self.values)
        if unknown:
            raise KeyError(f"unknown settings: {sorted(unknown)}")
        saved = self.values
        self.values.update(changes)
        try:
            yield self
        finally:
            self.values = saved
