"""The TUI on the embedded chain with real agent servers on loopback and deterministic runtimes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from motet.chain import Chain
from motet.demo import Market, local_market
from motet.runtimes.testing import deterministic_runtime


@pytest.fixture
async def market(chain: Chain) -> AsyncIterator[Market]:
    async with local_market(chain, deterministic_runtime(), failing=True) as served:
        yield served
