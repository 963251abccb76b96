"""Errors a user can act on.

Every failure that reaches a person (CLI, language server) is a `LedexError` whose message is one
clear sentence; anything else is a bug and shows its traceback only with `--debug`.
"""

from __future__ import annotations


class LedexError(Exception):
    """Base class: the message is meant for the user, verbatim."""


class ModelSpecError(LedexError):
    """A model spec string that names no known backend or model."""


class WeightsError(LedexError):
    """Embedded weights missing, corrupt, or impossible to install."""


class BackendUnavailable(LedexError):
    """The backend cannot run here: a missing optional dependency, an unreachable server."""


class BackendResponseError(LedexError):
    """The backend answered, but not with something we can use (garbage JSON, an HTTP error)."""


class ContextOverflow(LedexError):
    """The conversation does not fit the model's context window."""
