"""Agents on real HTTP (127.0.0.1), the embedded chain, and the real SmolLM2 model."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.agents import PRICE, Running, echo_agent, start

from motet.agents import builtin_agent
from motet.chain import Chain
from motet.runtimes import LlamaCppRuntime


@pytest.fixture
async def echo(chain: Chain) -> AsyncIterator[tuple[Running, list[str]]]:
    agent, served = echo_agent()
    async for running in start(chain, agent):
        yield running, served


@pytest.fixture
async def summarizer(chain: Chain, smollm2: LlamaCppRuntime) -> AsyncIterator[Running]:
    agent = builtin_agent("summarize", "extract_keywords", runtime=smollm2, name="smol-text", price=PRICE)
    async for running in start(chain, agent):
        yield running
