import pytest

from netutil import retry


def flaky(failures):
    """A function that raises ConnectionError `failures` times, then returns 'ok'."""
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= failures:
            raise ConnectionError(f"attempt {len(calls)} failed")
        return "ok"

    return call, calls


def test_success_first_try():
    call, calls = flaky(0)
    assert retry()(call)() == "ok"
    assert len(calls) == 1


def test_succeeds_on_last_attempt():
    call, calls = flaky(2)
    assert retry(times=3)(call)() == "ok"
    assert len(calls) == 3


def test_gives_up_after_all_attempts():
    call, _ = flaky(10)
    with pytest.raises(ConnectionError):
        retry(times=3)(call)()


def test_other_errors_not_retried():
    calls = []

    @retry(times=5)
    def broken():
        calls.append(1)
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        broken()
    assert len(calls) == 1
