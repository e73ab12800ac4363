"""A small market on the embedded chain: agents on the real SmolLM2 model, each served on 127.0.0.1 by its own
account, plus a Python report agent and one that always fails."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pydantic import BaseModel

from motet.agents import Agent, AgentServer, CallContext, builtin_agent
from motet.chain import Chain
from motet.registry import Registry
from motet.runtimes import LlamaCppRuntime

PRICES = {
    "summarizer": 3 * 10**15,
    "broken-summarizer": 10**15,
    "keywords": 10**15,
    "sentiment": 10**15,
    "critic": 2 * 10**15,
    "reporter": 5 * 10**14,
}


class Brief(BaseModel):
    summary: str
    keywords: list[str]
    sentiment: str


class Report(BaseModel):
    report: str


class Text(BaseModel):
    text: str


class Summary(BaseModel):
    summary: str


def report_agent(price: int) -> Agent:
    agent = Agent("reporter", description="Assembles a brief.", price=price)

    @agent.capability("compose_report")
    async def compose(brief: Brief, ctx: CallContext) -> Report:
        return Report(report=f"{brief.summary} [{', '.join(brief.keywords)}] ({brief.sentiment})")

    return agent


def broken_agent(price: int, served: list[str]) -> Agent:
    agent = Agent("broken-summarizer", description="Always fails.", price=price)

    @agent.capability("summarize")
    async def summarize(request: Text, ctx: CallContext) -> Summary:
        served.append(request.text)
        raise RuntimeError("out of GPU memory")

    return agent


@dataclass
class Market:
    chain: Chain
    registry: Registry
    servers: dict[str, AgentServer]
    ids: dict[str, int]
    broken_calls: list[str]


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
