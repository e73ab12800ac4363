"""Helpers for agent tests: a recording Python agent, and a served, registered agent with a payer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel

from motet.agents import Agent, AgentClient, AgentServer, CallContext
from motet.chain import Chain
from motet.payments import (
    CallSigner,
    ChannelClient,
    ReceiptSigner,
    content_hash,
    model_ref_hash,
    request_hash,
)
from motet.registry import Registry
from motet.runtimes import ModelRef

FUNCTION_MODEL = ModelRef("python", "-", "function", "unknown", "none")
"""The model reference of a Python-function agent, as its receipts name it."""

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


def signed_answer(
    signer: ReceiptSigner,
    body: dict[str, Any],
    output: dict[str, Any],
    *,
    price: int,
    owed: int,
    usage: tuple[int, int],
) -> dict[str, Any]:
    """The answer an agent sends to the `/invoke` `body`: `output`, `price`, `owed` and `usage` (prompt,
    completion tokens) as given, with a receipt `signer` signs for them (a hostile agent's raw material)."""
    channel, seq = int(body["channel"], 16), int(body["seq"])
    receipt = signer.sign(
        request_hash(body["capability"], body["input"], channel, seq),
        content_hash(output),
        price,
        channel,
        seq,
        model_ref_hash(FUNCTION_MODEL),
    )
    return {
        "capability": body["capability"],
        "output": output,
        "price": str(price),
        "owed": str(owed),
        "seq": seq,
        "usage": {"promptTokens": usage[0], "completionTokens": usage[1]},
        "model": asdict(FUNCTION_MODEL),
        "latencyS": 0.01,
        "receipt": receipt.to_dict(),
    }
