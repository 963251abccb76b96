"""Retrying flaky calls."""

import functools


def retry(times=3, exceptions=(ConnectionError,)):
    """Decorator: call the function up to `times` times in all while it raises one of
    `exceptions`; the last error is re-raised if every attempt fails."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            last_error = None
            for _ in range(times - 1):
                try:
                    return fn(*args, **kwargs)
                except exceptions as error:
                    last_error = error
            raise last_error

        return wrapper

    return decorate
