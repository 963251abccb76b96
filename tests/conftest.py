"""Shared fixtures. Tests that need a real model use the embedded SmolLM2 that `make test` installs;
if it is missing they fail (never skip), saying how to install it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledex import weights
from ledex.errors import WeightsError

FAST_MODEL = "smollm2-135m"


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    try:
        return weights.locate(FAST_MODEL)
    except WeightsError as error:
        pytest.fail(f"{error} (or run `make test`, which installs the test models)")


@pytest.fixture(scope="session")
def smollm2_backend(smollm2_path: Path):
    from ledex.models import load_backend

    backend = load_backend(f"embedded:{FAST_MODEL}", n_ctx=2048)
    yield backend
    backend.close()


@pytest.fixture(autouse=True)
def _own_fix_cache(tmp_path_factory, monkeypatch):
    """Each test its own cache of verified fixes (ledex.fix_cache): a fix found by another test,
    or on this machine before, must not stand in for the model; tests of the cache share one."""
    monkeypatch.setenv("LEDEX_FIX_CACHE_DIR", str(tmp_path_factory.mktemp("fix-cache")))
