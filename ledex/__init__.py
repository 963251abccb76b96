"""ledex: explain-then-fix debugging with small code models, verified by running the tests."""

__version__ = "0.1.0"
