"""Fixtures shared by the whole suite: real chains, never doubles."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from motet.chain import Chain
from motet.runtimes import LlamaCppRuntime

pytest_plugins = ["support.loopback", "support.gateway"]


@pytest.fixture
def chain() -> Chain:
    """A fresh embedded py-evm chain with ten funded accounts."""
    return Chain.embedded()


@pytest.fixture(scope="session")
def anvil_chain() -> Iterator[Chain]:
    """An anvil node on 127.0.0.1, started for the session and stopped after it."""
    with Chain.anvil() as node:
        yield node


@pytest.fixture(scope="session")
def smollm2() -> Iterator[LlamaCppRuntime]:
    """The bundled SmolLM2 on llama.cpp (one thread), loaded once for the whole session."""
    runtime = LlamaCppRuntime(n_threads=1)
    yield runtime
    runtime.close()
