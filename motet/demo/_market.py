"""A local agent market: built-in agents on the bundled model, each served on 127.0.0.1 by its own account and
registered on chain with its own price. The demo, `motet run --local-agents`, `motet gateway`, `motet tui` and
the examples run on it.

It includes two agents that are not models: `extract_text` (tidies a raw document into plain text) and
`compose_report` (assembles a brief), and, when asked, a deliberately failing summarizer priced below the
real one, so the composer tries it first and fails over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic import BaseModel, Field

from motet.agents import Agent, AgentServer, CallContext, builtin_agent
from motet.agents.builtins import BUILTINS, MAX_TEXT, Summary, Text
from motet.chain import Chain
from motet.composer import Workflow
from motet.errors import ModelRuntimeError
from motet.registry import Registry
from motet.runtimes import Runtime
from motet.units import ETH, GWEI


class Document(BaseModel):
    document: str = Field(min_length=1, max_length=4 * MAX_TEXT, description="A raw document: text or HTML.")


class Brief(BaseModel):
    summary: str
    keywords: list[str]
    sentiment: str


class Report(BaseModel):
    report: str


def extract_agent(price: int) -> Agent:
    agent = Agent("extractor", description="Turns a raw document into plain text.", price=price)

    @agent.capability("extract_text")
    async def extract_text(request: Document, ctx: CallContext) -> Text:
        """Strip markup and squeeze whitespace."""
        plain = re.sub(r"<[^>]+>", " ", request.document)
        return Text(text=" ".join(plain.split())[:MAX_TEXT])

    return agent


def report_agent(price: int) -> Agent:
    agent = Agent("reporter", description="Assembles a research brief.", price=price)

    @agent.capability("compose_report")
    async def compose_report(brief: Brief, ctx: CallContext) -> Report:
        """Assemble the summary, keywords and sentiment into a brief."""
        keywords = ", ".join(brief.keywords) or "none"
        return Report(report=f"{brief.summary}\nKeywords: {keywords}.\nTone: {brief.sentiment}.")

    return agent


def failing_agent(price: int) -> Agent:
    agent = Agent("flaky-summarizer", description="A summarizer whose GPU has gone away.", price=price)

    @agent.capability("summarize")
    async def summarize(request: Text, ctx: CallContext) -> Summary:
        """Always fails, as its model runtime reports: the composer must fail over and pay nothing."""
        raise ModelRuntimeError("CUDA error: out of memory")

    return agent


@dataclass
class Market:
    chain: Chain
    registry: Registry
    servers: dict[str, AgentServer]
    """Agent name → its server."""
    ids: dict[str, int]
    """Agent name → its registry id."""


def model_agent(
    *capabilities: str, runtime: Runtime, name: str, price: int, verifiable: bool = False
) -> Agent:
    """An agent with built-in capabilities on `runtime`; `verifiable` publishes each one's profile, so that
    callers can re-run and check its answers (docs/trust.md)."""
    if not verifiable:
        return builtin_agent(*capabilities, runtime=runtime, name=name, price=price)
    agent = Agent(
        name,
        description="Built-in motet agent on an open-source model, verifiable: "
        + ", ".join(capabilities)
        + ".",
        runtime=runtime,
        price=price,
    )
    for capability in capabilities:
        agent.prompt(capability, **dataclasses.asdict(BUILTINS[capability]), verifiable=True)
    return agent


def market_agents(runtime: Runtime, *, failing: bool = True, verifiable: bool = False) -> list[Agent]:
    """The market's agents, each with its price; `verifiable` makes the model agents' capabilities verifiable
    (their runtime must then know its weights' sha256: a `LlamaCppRuntime`)."""
    agents = [
        extract_agent(5 * GWEI),
        model_agent("summarize", runtime=runtime, name="summarizer", price=40 * GWEI, verifiable=verifiable),
        model_agent(
            "extract_keywords", runtime=runtime, name="keyword-miner", price=15 * GWEI, verifiable=verifiable
        ),
        model_agent(
            "classify_sentiment", runtime=runtime, name="mood", price=10 * GWEI, verifiable=verifiable
        ),
        model_agent(
            "translate",
            "critique",
            "extract_keywords",
            runtime=runtime,
            name="polyglot",
            price=60 * GWEI,
            verifiable=verifiable,
        ),
        report_agent(5 * GWEI),
    ]
    if failing:
        agents.append(failing_agent(25 * GWEI))
    return agents


@contextlib.asynccontextmanager
async def local_market(
    chain: Chain, runtime: Runtime, *, failing: bool = True, verifiable: bool = False
) -> AsyncIterator[Market]:
    """Serve and register the market's agents on `chain` (accounts 1, 2, ...) until the block ends."""
    registry = Registry(chain)
    servers: dict[str, AgentServer] = {}
    ids: dict[str, int] = {}
    async with contextlib.AsyncExitStack() as stack:
        for index, agent in enumerate(
            market_agents(runtime, failing=failing, verifiable=verifiable), start=1
        ):
            server = AgentServer(agent, chain=chain, account=chain.accounts[index])
            await stack.enter_async_context(server.running())
            ids[agent.name] = await server.register(registry, stake=ETH // 10 * index)
            servers[agent.name] = server
        yield Market(chain, registry, servers, ids)


def research_brief() -> Workflow:
    """extract → [summarize ∥ keywords ∥ sentiment] → report."""
    return (
        Workflow("research-brief", inputs=Document)
        .add("extract", "extract_text")
        .add("summarize", "summarize", after="extract")
        .add("keywords", "extract_keywords", after="extract")
        .add("sentiment", "classify_sentiment", after="extract")
        .add("report", "compose_report", after=["summarize", "keywords", "sentiment"])
    )
