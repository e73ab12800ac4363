"""One HTTP request per paid call: the voucher that pays a call rides on the next call to the same agent, and
`/pay` carries only what is left when a run settles, or when a payer that ran without settling closes.
Counted at a real agent server on 127.0.0.1, with the money checked in the agent's ledger and on the
embedded chain."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from pydantic import BaseModel
from support.dropping_proxy import DroppingProxy, Fate, ProxiedRequest

from motet.agents import Agent, AgentServer, CallContext
from motet.chain import Chain
from motet.composer import Payer, Workflow
from motet.payments import ChannelClient
from motet.registry import Registry

PRICE = 10**12


class Text(BaseModel):
    text: str


@dataclass
class Shop:
    chain: Chain
    registry: Registry
    server: AgentServer
    requests: Counter[str]
    """Requests the agent's server received, by path."""


@pytest_asyncio.fixture
async def shop(chain: Chain) -> AsyncIterator[Shop]:
    agent = Agent("echo", price=PRICE)

    @agent.capability("echo")
    async def echo(request: Text, ctx: CallContext) -> Text:
        return Text(text=request.text + "!")

    registry = Registry(chain)
    server = AgentServer(agent, chain=chain, account=chain.accounts[1])
    requests: Counter[str] = Counter()
    app = server.app

    async def counting(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            requests[scope["path"]] += 1
        await app(scope, receive, send)

    server.app = counting  # type: ignore[assignment]
    async with server.running():
        await server.register(registry, stake=10**15)
        yield Shop(chain, registry, server, requests)


def three_calls() -> Workflow:
    return (
        Workflow("three", inputs=Text)
        .add("a", "echo")
        .add("b", "echo", after="a", inputs={"text": "a.text"})
        .add("c", "echo", after="b", inputs={"text": "b.text"})
    )


def received(shop: Shop) -> int:
    """What the agent holds in vouchers, over all its channels."""
    held = shop.server.channels.ledger.unredeemed(shop.server.channels.domain)
    return sum(voucher.cumulative_amount for voucher in held)


async def test_a_settled_run_sends_one_request_per_call_and_one_pay_for_the_last(shop: Shop) -> None:
    async with Payer(shop.chain, shop.chain.accounts[8]) as payer:
        report = await (await three_calls().compile(shop.registry, payer=payer, budget=10**18)).run(
            {"text": "hi"}
        )
        assert report.outputs["c"] == {"text": "hi!!!"}
        assert shop.requests["/invoke"] == 3
        assert shop.requests["/pay"] == 1  # the third call's voucher; the first two rode on the next call
        assert received(shop) == 3 * PRICE  # the agent holds all three, before the payer settles them
        assert {call.status for call in payer.calls(report.run_id)} == {"paid"}
    assert report.settlement is not None and report.settlement.paid == 3 * PRICE
    (channel,) = {call.channel for call in payer.calls(report.run_id)}
    assert ChannelClient(shop.chain, shop.chain.accounts[8]).channel(channel).redeemed == 3 * PRICE


async def test_runs_that_do_not_settle_pay_on_the_next_call_and_hand_over_the_rest_on_close(
    shop: Shop,
) -> None:
    payer = Payer(shop.chain, shop.chain.accounts[8])
    runnable = await three_calls().compile(shop.registry, payer=payer, budget=10**18)
    first = await runnable.run({"text": "x"}, settle=False)
    second = await runnable.run({"text": "y"}, settle=False)
    assert shop.requests["/invoke"] == 6 and shop.requests["/pay"] == 0
    # Each voucher but the newest reached the agent on the next call; the newest waits in the payer.
    assert received(shop) == 5 * PRICE
    assert [c.status for c in payer.calls(second.run_id)] == ["paid", "paid", "signed"]
    assert {c.status for c in payer.calls(first.run_id)} == {"paid"}
    await payer.aclose()
    assert shop.requests["/pay"] == 1
    assert received(shop) == 6 * PRICE
    assert {c.status for c in payer.calls(second.run_id)} == {"paid"}
    # The agent redeems exactly what it delivered.
    (redemption,) = shop.server.channels.redeem()
    assert redemption.paid == 6 * PRICE


async def test_an_answer_lost_on_the_way_is_asked_for_again_not_left_owing(chain: Chain) -> None:
    # The connection breaks after the agent delivered the first call: the payer asks again with the same
    # idempotency key, gets the delivered answer (no second run, no second charge), and the channel goes on
    # instead of answering 402 ("owes a delivered call") to every later call.
    worked: list[str] = []
    agent = Agent("echo", price=PRICE)

    @agent.capability("echo")
    async def echo(request: Text, ctx: CallContext) -> Text:
        worked.append(request.text)
        return Text(text=request.text + "!")

    invokes = 0

    def decide(request: ProxiedRequest) -> Fate:
        nonlocal invokes
        if request.path == "/invoke":
            invokes += 1
            if invokes == 1:
                return Fate.DROP_AFTER
        return Fate.PASS

    proxy = DroppingProxy(decide)
    registry = Registry(chain)
    async with proxy.running() as proxy_url:
        server = AgentServer(agent, chain=chain, account=chain.accounts[1], url=proxy_url)
        async with server.running() as direct:
            proxy.upstream = direct
            await server.register(registry, stake=10**15)
            async with Payer(chain, chain.accounts[8]) as payer:
                runnable = await three_calls().compile(registry, payer=payer, budget=10**18)
                report = await runnable.run({"text": "hi"})
    assert proxy.fates[Fate.DROP_AFTER] == 1
    assert report.status == "done" and report.outputs["c"] == {"text": "hi!!!"}
    assert worked == ["hi", "hi!", "hi!!"]  # each call worked once
    assert report.settlement is not None and report.settlement.paid == 3 * PRICE
