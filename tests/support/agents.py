"""Helpers for agent tests: a recording Python agent, and a served, registered agent with a payer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic import BaseModel

from motet.agents import Agent, AgentClient, AgentServer, CallContext
from motet.chain import Chain
from motet.payments import CallSigner, ChannelClient
from motet.registry import Registry

PRICE = 10**15


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


def call_signer(channels: ChannelClient) -> CallSigner:
    """What signs the calls of the channels `channels` pays from: its account's key, in its domain."""
    return CallSigner(bytes(channels.account.key), channels.domain)


@dataclass
class Running:
    chain: Chain
    server: AgentServer
    url: str
    client: AgentClient
    payer: ChannelClient
    registry: Registry
    agent_id: int


async def start(chain: Chain, agent: Agent) -> AsyncIterator[Running]:
    registry = Registry(chain)
    server = AgentServer(agent, chain=chain, account=chain.accounts[1])
    async with server.running() as url:
        agent_id = await server.register(registry, stake=10**18)
        payer = ChannelClient(chain, chain.accounts[2])
        async with AgentClient(url, signer=call_signer(payer)) as client:
            yield Running(chain, server, url, client, payer, registry, agent_id)
