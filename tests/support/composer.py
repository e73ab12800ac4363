"""The composer tests' market, served by `tests/composer/conftest.py`'s `market` fixture: agents on the real
SmolLM2 model, each served on 127.0.0.1 by its own account, plus a Python report agent and one that fails."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from motet.agents import Agent, AgentServer, CallContext
from motet.chain import Chain
from motet.registry import Registry

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
