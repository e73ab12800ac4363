"""Kill a run at each point of a paid call, resume it from its checkpoint: no call paid twice, finished
siblings not re-run. Agents are Python functions behind real HTTP servers on the embedded chain: the payment
path, not the model, is under test."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import BaseModel

from motet.agents import Agent, AgentServer, CallContext
from motet.chain import Chain
from motet.composer import CallPaid, Event, Payer, Settled, SimulatedCrash, Workflow
from motet.payments import ChannelClient, Ledger
from motet.registry import Registry

PRICE = 10**15


class Text(BaseModel):
    text: str


class Upper(BaseModel):
    upper: str


class Count(BaseModel):
    length: int


class Joined(BaseModel):
    upper: str
    length: int


class Line(BaseModel):
    line: str


@dataclass
class Shop:
    chain: Chain
    registry: Registry
    served: Counter[str]
    accounts: dict[str, str]
    echo_done: asyncio.Event
    """Set by the test's fault hook when the payer has finished the `echo` node."""


def agents(served: Counter[str], echo_done: asyncio.Event) -> list[Agent]:
    upper = Agent("upper", price=PRICE)
    length = Agent("length", price=2 * PRICE)
    join = Agent("join", price=3 * PRICE)

    @upper.capability("shout")
    async def shout(request: Text, ctx: CallContext) -> Upper:
        served["shout"] += 1
        return Upper(upper=request.text.upper())

    @length.capability("measure")
    async def measure(request: Upper, ctx: CallContext) -> Count:
        served["measure"] += 1
        # Answers once the payer has finished its sibling `echo` (paid and recorded): an ordering, not a timing.
        await asyncio.wait_for(echo_done.wait(), timeout=60)
        return Count(length=len(request.upper))

    @upper.capability("echo")
    async def echo(request: Upper, ctx: CallContext) -> Upper:
        served["echo"] += 1
        return request

    @join.capability("join")
    async def joined(request: Joined, ctx: CallContext) -> Line:
        served["join"] += 1
        return Line(line=f"{request.upper} ({request.length})")

    return [upper, length, join]


@pytest.fixture
async def shop(chain: Chain) -> AsyncIterator[Shop]:
    registry = Registry(chain)
    served: Counter[str] = Counter()
    accounts: dict[str, str] = {}
    echo_done = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        for index, agent in enumerate(agents(served, echo_done), start=1):
            server = AgentServer(agent, chain=chain, account=chain.accounts[index])
            await stack.enter_async_context(server.running())
            await server.register(registry, stake=10**17)
            accounts[agent.name] = server.account.address
        yield Shop(chain, registry, served, accounts, echo_done)


def flow() -> Workflow:
    return (
        Workflow("resume", inputs=Text)
        .add("shout", "shout")
        .add("measure", "measure", after="shout")
        .add("echo", "echo", after="shout")
        .add("join", "join", after=["measure", "echo"])
    )


POINTS = ["after_call", "before_sign", "after_sign", "after_pay", "after_node"]
"""after the request was answered but before the answer was recorded (the answer is lost to the payer);
before signing; after signing, before the voucher is recorded; after the voucher was sent, before its
acknowledgement was recorded; after the node finished, before LangGraph's checkpoint."""


@pytest.mark.parametrize("point", POINTS)
async def test_a_run_killed_at_each_point_resumes_without_paying_twice(
    shop: Shop, tmp_path: Path, point: str
) -> None:
    crashed: list[str] = []

    def crash(where: str, node: str) -> None:
        # Crash while `measure` (the slow sibling) is being paid, after `echo` has finished.
        if where == "after_node" and node == "echo":
            shop.echo_done.set()
        if where == point and node == "measure" and not crashed:
            crashed.append(where)
            raise SimulatedCrash(where)

    def payer(fault: object = None) -> Payer:
        return Payer(
            shop.chain,
            shop.chain.accounts[8],
            store=tmp_path / "calls.sqlite",
            ledger=Ledger(tmp_path / "vouchers.sqlite"),
            fault=fault,  # type: ignore[arg-type]
        )

    first = payer(fault=crash)
    runnable = await flow().compile(
        shop.registry, payer=first, budget=10**17, checkpoints=tmp_path / "cp.sqlite"
    )
    runnable.fault = crash
    events: list[Event] = []

    async def until_the_crash() -> None:
        async for event in runnable.stream({"text": "hello"}, run_id="run-1"):
            events.append(event)

    with pytest.raises(SimulatedCrash):
        await until_the_crash()
    assert crashed == [point]
    await first.aclose()

    second = payer()
    resumed = await flow().compile(
        shop.registry, payer=second, budget=10**17, checkpoints=tmp_path / "cp.sqlite"
    )
    report = await resumed.run(run_id="run-1")
    await second.aclose()

    assert report.outputs["join"] == {"line": "HELLO (5)"}
    # Every agent did its work once: the resumed calls were answered from the agents' idempotency records.
    assert shop.served == Counter({"shout": 1, "measure": 1, "echo": 1, "join": 1})
    paid_events = [e for e in events + report.events if isinstance(e, CallPaid) and not e.replayed]
    assert Counter(e.node for e in paid_events) <= Counter({"shout": 1, "measure": 1, "echo": 1, "join": 1})
    assert report.settlement is not None
    assert isinstance(report.settlement, Settled)
    assert report.settlement.paid == 7 * PRICE  # 1 + 2 + 1 + 3: each call exactly once
    assert report.spent == 7 * PRICE  # and the resumed budget counted each once
    for name, price in (("upper", 2 * PRICE), ("length", 2 * PRICE), ("join", 3 * PRICE)):
        total = 0
        client = ChannelClient(shop.chain, shop.chain.accounts[8])
        for channel_id in range(1, 10):
            try:
                state = client.channel(channel_id)
            except Exception:
                break
            if state.payee == shop.accounts[name]:
                total += state.redeemed
        assert total == price, name
