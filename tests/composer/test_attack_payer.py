"""A hostile agent against the composer's payer: a stream that stalls or never ends, an answer past the
byte cap, inflated usage, a forged receipt, an overcharge, a cumulative amount that claims more than the
call. Each ends the hostile agent's attempt with a specific error and nothing signed for it, and the node
fails over to an honest agent, which is paid exactly. The hostile agent is a real HTTP server on
127.0.0.1, registered and staked like any other."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from support.agents import signed_answer

from motet._http import serve
from motet.agents import Agent, AgentServer, CallContext
from motet.chain import Chain
from motet.composer import CallPaid, Failover, Payer, Workflow
from motet.payments import ReceiptDomain, ReceiptSigner
from motet.registry import Registry
from motet.runtimes import Usage

PRICE = 10**12
PER_1K = 10**9
STAKE = 10**17
Answer = Callable[[dict[str, Any], "Hostile"], Awaitable[Response]]


class Text(BaseModel):
    text: str


class Echo(BaseModel):
    echo: str


def echo_agent(name: str, price: int) -> Agent:
    agent = Agent(name, price=price, price_per_1k_tokens=PER_1K, max_prompt_tokens=1_000)

    @agent.capability("echo", max_tokens=500)
    async def run(request: Text, ctx: CallContext) -> Echo:
        ctx.usage = Usage(3, 5)
        return Echo(echo=request.text)

    return agent


@dataclass
class Hostile:
    agent: Agent
    signer: ReceiptSigner
    answer: Answer
    calls: int = 0

    def honest(self, body: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        """A well-formed answer to `body`, with `overrides` (price, owed, usage, signer) signed into it."""
        usage = overrides.get("usage", Usage(3, 5))
        price = overrides.get("price", self.agent.price_of(usage))
        return signed_answer(
            overrides.get("signer", self.signer),
            body,
            {"echo": body["input"]["text"]},
            price=price,
            owed=overrides.get("owed", price),
            usage=(usage.prompt_tokens, usage.completion_tokens),
        )


@dataclass
class Market:
    chain: Chain
    registry: Registry
    hostile: Hostile
    hostile_payout: str
    honest_served: list[str]


@pytest.fixture
async def market(chain: Chain) -> AsyncIterator[Market]:
    registry = Registry(chain)
    key = chain.accounts[1]
    payer_domain = Payer(chain, chain.accounts[8]).channels.domain
    hostile_agent = echo_agent("hostile", PRICE)  # the cheapest: tried first
    state = Hostile(
        hostile_agent, ReceiptSigner(bytes(key.key), ReceiptDomain.for_channels(payer_domain)), ok
    )

    async def invoke(request: Request) -> Response:
        state.calls += 1
        return await state.answer(json.loads(await request.body()), state)

    app = Starlette(routes=[Route("/invoke", invoke, methods=["POST"])])
    honest_agent = echo_agent("honest", 2 * PRICE)
    served: list[str] = []

    @honest_agent.capability("noted")
    async def noted(request: Text, ctx: CallContext) -> Echo:  # pragma: no cover - never called
        served.append(request.text)
        return Echo(echo=request.text)

    honest = AgentServer(honest_agent, chain=chain, account=chain.accounts[2])
    async with serve(app, "127.0.0.1", 0, "hostile agent") as url, honest.running():
        card = hostile_agent.card(url, signer=key.address)
        registry.register(card.to_data_uri(), ["echo"], PRICE, owner=key, stake=STAKE)
        await honest.register(registry, stake=STAKE)
        yield Market(chain, registry, state, key.address, served)


async def ok(body: dict[str, Any], hostile: Hostile) -> Response:
    return reply(body, hostile.honest(body))


def sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def reply(body: dict[str, Any], answer: dict[str, Any]) -> Response:
    """`answer` as the caller asked for it: one SSE result event for a stream, else JSON."""
    if body.get("stream"):
        return Response(sse("result", answer), media_type="text/event-stream")
    return JSONResponse(answer)


async def stall(body: dict[str, Any], hostile: Hostile) -> Response:
    async def events() -> AsyncIterator[bytes]:
        yield sse("token", {"text": "a"})
        await asyncio.sleep(3600)

    return StreamingResponse(events(), media_type="text/event-stream")


async def endless(body: dict[str, Any], hostile: Hostile) -> Response:
    async def events() -> AsyncIterator[bytes]:
        while True:
            yield sse("token", {"text": "z" * 60_000})
            await asyncio.sleep(0)

    return StreamingResponse(events(), media_type="text/event-stream")


async def huge(body: dict[str, Any], hostile: Hostile) -> Response:
    async def events() -> AsyncIterator[bytes]:
        yield b'event: result\ndata: {"padding": "'
        chunk = b"z" * (1024 * 1024)
        for _ in range(51):
            yield chunk

    return StreamingResponse(events(), media_type="text/event-stream")


async def inflated(body: dict[str, Any], hostile: Hostile) -> Response:
    return reply(body, hostile.honest(body, usage=Usage(10**6, 10**6)))


async def overcharge(body: dict[str, Any], hostile: Hostile) -> Response:
    return reply(body, hostile.honest(body, price=PRICE * 1000))


async def greedy_total(body: dict[str, Any], hostile: Hostile) -> Response:
    answer = hostile.honest(body)
    return reply(body, {**answer, "owed": str(int(answer["price"]) * 5)})


async def forged(body: dict[str, Any], hostile: Hostile) -> Response:
    stranger = ReceiptSigner(b"\x07" * 32, hostile.signer.domain)
    return reply(body, hostile.honest(body, signer=stranger))


ATTACKS: dict[str, tuple[Answer, str]] = {
    "stall": (stall, "no answer within 3 s"),
    "endless stream": (endless, "bytes|longer than|deadline|Timeout"),
    "huge answer": (huge, "bytes"),
    "inflated usage": (inflated, "tokens"),
    "overcharge": (overcharge, "charges|overcharged|bound"),
    "cumulative above the call": (greedy_total, "cumulative|owed"),
    "forged receipt": (forged, "receipt|signed|signer"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_hostile_agent_is_refused_by_the_payer_with_nothing_signed(market: Market, attack: str) -> None:
    answer, problem = ATTACKS[attack]
    market.hostile.answer = answer
    payer = Payer(market.chain, market.chain.accounts[8], timeout=60.0 if attack == "huge answer" else 3.0)
    runnable = (
        await Workflow("w", inputs=Text)
        .add("echo", "echo")
        .compile(market.registry, payer=payer, budget=10**16)
    )
    assert runnable.candidates["echo"][0].agent == "hostile"
    events = [event async for event in runnable.stream({"text": "hello"})]
    await payer.aclose()

    (failover,) = [e for e in events if isinstance(e, Failover)]
    assert (
        failover.failed_agent.startswith("hostile")
        and failover.next_agent
        and "honest" in failover.next_agent
    )
    assert re_search(problem, failover.problem), failover.problem
    assert market.hostile.calls >= 1  # it was asked ...
    hostile_channel, _deposit = payer._open[market.hostile_payout]
    assert (
        payer.channels.ledger.highest_signed(payer.channels.domain, hostile_channel) is None
    )  # ... and not paid
    (paid,) = [e for e in events if isinstance(e, CallPaid)]
    assert paid.agent_id != 1 and paid.price == 2 * PRICE + PER_1K * 8 // 1_000  # the honest one, exactly


def re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None
