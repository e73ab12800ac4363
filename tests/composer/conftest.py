"""The composer tests' fixtures: a small market of agents served on 127.0.0.1 (`support.composer`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from support.composer import PRICES, Market, broken_agent, report_agent

from motet.agents import AgentServer, builtin_agent
from motet.chain import Chain
from motet.registry import Registry
from motet.runtimes import LlamaCppRuntime


@pytest.fixture
async def market(chain: Chain, smollm2: LlamaCppRuntime) -> AsyncIterator[Market]:
    registry = Registry(chain)
    broken_calls: list[str] = []
    agents = {
        "summarizer": builtin_agent(
            "summarize", runtime=smollm2, name="summarizer", price=PRICES["summarizer"]
        ),
        "broken-summarizer": broken_agent(PRICES["broken-summarizer"], broken_calls),
        "keywords": builtin_agent(
            "extract_keywords", runtime=smollm2, name="keywords", price=PRICES["keywords"]
        ),
        "sentiment": builtin_agent(
            "classify_sentiment", runtime=smollm2, name="sentiment", price=PRICES["sentiment"]
        ),
        "critic": builtin_agent("critique", runtime=smollm2, name="critic", price=PRICES["critic"]),
        "reporter": report_agent(PRICES["reporter"]),
    }
    servers: dict[str, AgentServer] = {}
    ids: dict[str, int] = {}
    async with contextlib.AsyncExitStack() as stack:
        for index, (name, agent) in enumerate(agents.items(), start=1):
            server = AgentServer(agent, chain=chain, account=chain.accounts[index])
            await stack.enter_async_context(server.running())
            ids[name] = await server.register(registry, stake=10**17)
            servers[name] = server
        yield Market(chain, registry, servers, ids, broken_calls)
