"""The TUI on the embedded chain with real agent servers on loopback and deterministic runtimes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from motet.chain import Chain
from motet.demo import Market, local_market
from motet.runtimes.testing import deterministic_runtime


@pytest.fixture(autouse=True)
def motet_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty motet home per test: the run screen lists the runs kept there, never the developer's own."""
    home = tmp_path_factory.mktemp("motet-home")
    monkeypatch.setenv("MOTET_HOME", str(home))
    return home


@pytest.fixture
async def market(chain: Chain) -> AsyncIterator[Market]:
    async with local_market(chain, deterministic_runtime(), failing=True) as served:
        yield served
