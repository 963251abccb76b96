"""The server's settings: section `ledex` of `initializationOptions` and `workspace/configuration`.

Keys are the client's camelCase names. A value of the wrong type or out of range is ignored (the
default stays) and reported, never fatal: a typo in an editor's settings must not stop the server.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlparse

from ledex.errors import LedexError
from ledex.fix import FixConfig
from ledex.models import DEFAULT_SPEC, parse_spec
from ledex.repair import RepairConfig

SECTION = "ledex"
RUN_ON = ("save", "open", "command")
_FIX = FixConfig()  # the defaults live there, once


@dataclass(frozen=True)
class Settings:
    model: str = DEFAULT_SPEC  # a model spec: embedded, embedded:NAME, openai:URL#MODEL, ...
    python: str | None = (
        None  # the interpreter for the tests; None: the workspace's .venv, else python3
    )
    pytest_args: tuple[str, ...] = ()
    candidates: int = _FIX.repair.n  # per round
    rounds: int = _FIX.repair.rounds
    timeout: float = _FIX.timeout  # seconds per test run
    model_timeout: float = 120.0  # seconds per model request (the openai backend)
    temperature: float = _FIX.repair.temperature
    max_tokens: int = _FIX.repair.max_tokens
    run_on: frozenset[str] = field(default_factory=lambda: frozenset(RUN_ON))
    show_unverified: bool = False
    debounce: float = 0.5  # seconds between a save and the test run it starts
    #: repair new failures in the background, before the user asks (None: on for local models)
    prefetch: bool | None = None
    cache: bool = True  # keep verified fixes on disk (re-verified before they are offered)

    def repair_config(self) -> RepairConfig:
        return replace(_FIX.repair, n=self.candidates, rounds=self.rounds, temperature=self.temperature,
                       max_tokens=self.max_tokens)  # fmt: skip

    def prefetches(self) -> bool:
        """Repair in the background? By default only with a local model (embedded, or a server on
        this machine): a remote service may cost per request."""
        if self.prefetch is not None:
            return self.prefetch
        try:
            spec = parse_spec(self.model)
        except LedexError:
            return False
        return spec.kind != "openai" or urlparse(spec.target).hostname in (
            "127.0.0.1",
            "localhost",
            "::1",
        )

    def fix_config(self) -> FixConfig:
        return FixConfig(repair=self.repair_config(), python=self.python, timeout=self.timeout,
                         pytest_args=self.pytest_args)  # fmt: skip

    def with_changes(self, raw: object) -> tuple[Settings, list[str]]:
        """These settings updated from a client's `ledex` object, and a line per ignored value."""
        if raw is None:
            return self, []
        if not isinstance(raw, Mapping):
            return self, [f"the `{SECTION}` settings must be an object, not {type(raw).__name__}"]
        changes: dict[str, Any] = {}
        problems: list[str] = []
        for key, value in raw.items():
            name = _NAMES.get(key)
            if name is None and key in _CLIENT_SIDE:
                continue
            if name is None:
                problems.append(f"unknown setting `{SECTION}.{key}` ignored")
                continue
            if value is None and name not in ("python", "prefetch"):
                continue  # unset in the client: keep what we have
            try:
                changes[name] = _CONVERT[name](value)
            except (TypeError, ValueError) as error:
                problems.append(f"setting `{SECTION}.{key}` ignored: {error}")
        return replace(self, **changes), problems

    def differs_for_tests(self, other: Settings) -> bool:
        """Would the tests' results change (a different interpreter, arguments or timeout)?"""
        return (self.python, self.pytest_args, self.timeout) != (
            other.python,
            other.pytest_args,
            other.timeout,
        )


def from_client(*sources: object) -> tuple[Settings, list[str]]:
    """Defaults, updated by each source in turn (e.g. initializationOptions, then configuration)."""
    settings, problems = Settings(), []
    for source in sources:
        settings, found = settings.with_changes(section_of(source))
        problems += found
    return settings, problems


def section_of(options: object) -> object:
    """initializationOptions may hold `{"ledex": {...}}` or the section itself."""
    if isinstance(options, Mapping) and isinstance(options.get(SECTION), Mapping):
        return options[SECTION]
    return options


# --- conversions ---------------------------------------------------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value.strip()


def _optional_text(value: object) -> str | None:
    return None if value is None or value == "" else _text(value)


def _args(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        import shlex

        return tuple(shlex.split(value))
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"expected a list of strings, got {value!r}")


def _count(low: int, high: int):
    def convert(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ValueError(f"expected a whole number, got {value!r}")
        if not low <= int(value) <= high:
            raise ValueError(f"expected {low} to {high}, got {value!r}")
        return int(value)

    return convert


def _seconds(low: float, high: float):
    def convert(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise ValueError(f"expected a number of seconds, got {value!r}")
        if not low <= float(value) <= high:
            raise ValueError(f"expected {low:g} to {high:g}, got {value!r}")
        return float(value)

    return convert


def _run_on(value: object) -> frozenset[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise ValueError(f"expected a list of {', '.join(RUN_ON)}, got {value!r}")
    unknown = [v for v in items if v not in RUN_ON]
    if unknown:
        raise ValueError(f"expected a list of {', '.join(RUN_ON)}, got {', '.join(unknown)}")
    return frozenset(items)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


_CONVERT = {
    "model": _text,
    "python": _optional_text,
    "pytest_args": _args,
    "candidates": _count(1, 32),
    "rounds": _count(1, 10),
    "timeout": _seconds(1, 3600),
    "model_timeout": _seconds(1, 3600),
    "temperature": _seconds(0, 2),
    "max_tokens": _count(16, 32768),
    "run_on": _run_on,
    "show_unverified": _flag,
    "debounce": _seconds(0, 10),
    "prefetch": lambda value: None if value is None else _flag(value),
    "cache": _flag,
}
# Keys editors keep in the same section for themselves (vscode-languageclient's `ledex.trace.server`).
_CLIENT_SIDE = frozenset({"trace"})
_NAMES = {_camel(f.name): f.name for f in fields(Settings)} | {
    f.name: f.name for f in fields(Settings)
}
assert set(_CONVERT) == {f.name for f in fields(Settings)}
