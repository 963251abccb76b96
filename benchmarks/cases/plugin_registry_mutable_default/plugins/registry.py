"""A registry of named plugin factories."""


class Registry:
    """Plugins kept in registration order."""

    def __init__(self, plugins=[]):
        self.plugins = plugins

    def register(self, name, factory):
        if any(existing == name for existing, _ in self.plugins):
            raise ValueError(f"plugin {name!r} is already registered")
        self.plugins.append((name, factory))

    def names(self):
        return [name for name, _ in self.plugins]

    def create(self, name, *args):
        for existing, factory in self.plugins:
            if existing == name:
                return factory(*args)
        raise KeyError(name)
