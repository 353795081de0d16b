"""Shared fixtures. The engine's backends are all required: a test run that silently skipped the
C++ core or Numba would not check that the backends agree. Set CHUNKEVAL_ALLOW_MISSING_BACKENDS=1
to run the suite where one is deliberately absent."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chunkeval.metrics import available_backends

ALL_BACKENDS = ("cpp", "numba", "python")


def _backends() -> list[str]:
    have = available_backends()
    missing = [b for b in ALL_BACKENDS if b not in have]
    if missing and os.environ.get("CHUNKEVAL_ALLOW_MISSING_BACKENDS") != "1":
        raise RuntimeError(
            f"backends {missing} are not importable: build the extension (pip install .) and install numba, "
            "or set CHUNKEVAL_ALLOW_MISSING_BACKENDS=1"
        )
    return [b for b in ALL_BACKENDS if b in have]


BACKENDS = _backends()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the whole session, so each text meets the real model at most once
    (the bundled MiniLM embeds only tens of texts per second on a CI CPU)."""
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture(scope="session", autouse=True)
def _private_default_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The default cache (chunk spans, HNSW graphs, embeddings of calls that name no cache) lives in a
    temporary folder for the session, not in the user's ~/.cache/chunkeval."""
    previous = os.environ.get("CHUNKEVAL_CACHE_DIR")
    os.environ["CHUNKEVAL_CACHE_DIR"] = str(tmp_path_factory.mktemp("default-cache"))
    yield
    if previous is None:
        os.environ.pop("CHUNKEVAL_CACHE_DIR", None)
    else:
        os.environ["CHUNKEVAL_CACHE_DIR"] = previous
