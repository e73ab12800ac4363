"""Agents on real HTTP (127.0.0.1), the embedded chain, and the real SmolLM2 model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from pydantic import BaseModel

from motet.agents import Agent, AgentClient, AgentServer, CallContext, builtin_agent
from motet.chain import Chain
from motet.payments.channels import ChannelClient
from motet.registry import Registry
from motet.runtimes import LlamaCppRuntime

PRICE = 10**15


@pytest.fixture(scope="session")
def smollm2() -> Iterator[LlamaCppRuntime]:
    runtime = LlamaCppRuntime(n_threads=1)
    yield runtime
    runtime.close()


class Text(BaseModel):
    text: str


class Echo(BaseModel):
    echo: str
    calls: int


def echo_agent() -> tuple[Agent, list[str]]:
    """A Python-function agent that records every call it serves: proof of whether work was done."""
    served: list[str] = []
    agent = Agent("echo", description="Repeats its input.", price=PRICE)

    @agent.capability("echo")
    async def echo(request: Text, ctx: CallContext) -> Echo:
        served.append(request.text)
        return Echo(echo=request.text, calls=len(served))

    return agent, served


@dataclass
class Running:
    chain: Chain
    server: AgentServer
    url: str
    client: AgentClient
    payer: ChannelClient
    registry: Registry
    agent_id: int


async def start(chain: Chain, agent: Agent, tmp_path_name: str = ":memory:") -> AsyncIterator[Running]:
    registry = Registry(chain)
    server = AgentServer(agent, chain=chain, account=chain.accounts[1])
    async with server.running() as url:
        agent_id = await server.register(registry, stake=10**18)
        payer = ChannelClient(chain, chain.accounts[2])
        async with AgentClient(url) as client:
            yield Running(chain, server, url, client, payer, registry, agent_id)


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
