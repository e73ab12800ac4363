"""Sixteen payers at once, 25 paid calls each, with failures injected: every delivered call is paid exactly once.

Three Python-function agents are served on 127.0.0.1 on the embedded chain, one of them behind a proxy that
drops connections (`support.dropping_proxy`). Each payer is the composer's `Payer`, persisted to SQLite, and
makes its calls one after another through `Payer.call` with offers from the registry, while the others run.
Injected, all drawn from a fixed seed so that a failure reproduces:

- agent errors: each capability raises for inputs that say "boom" (the server answers 500, nothing owed);
- dropped connections: the proxy closes the connection of some requests before forwarding them (the agent
  never saw them) or after the agent answered (the agent delivered, the payer never saw it: the call is made
  again with the same idempotency key, and the agent answers what it delivered);
- four payers crash, each at one of the payer's fault points (`after_call`, `before_sign`, `after_sign`,
  `after_pay`), and a new `Payer` on the same SQLite store and voucher ledger resumes the run.

Each run ends as a compiled run does before it settles (`Payer.hand_over(run_id, offers)`: the last vouchers go
by `/pay`, with those a killed payer left signed).

The test checks money, not requests: whichever route carried a voucher (`/pay` or the next call), at the end
each agent's tab, each payer's receipts, each side's vouchers and the chain agree, call by call and channel
by channel. No timing is asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import BaseModel
from support.dropping_proxy import DroppingProxy, Fate, ProxiedRequest

from motet.agents import Agent, AgentServer, CallContext
from motet.chain import Chain
from motet.composer import Budget, Offer, Payer, SimulatedCrash, registry_offers
from motet.errors import AgentCallFailed
from motet.payments import ChannelClient, Ledger
from motet.registry import Registry

SEED = 17
PAYERS = 16
CALLS = 25
AGENT_ERRORS = 0.1
"""The share of calls whose input makes the agent raise."""
DROPS = 0.08
"""The share of requests to the proxied agent dropped before forwarding, and again after (on a request's
first two tries; later tries pass, so every call ends)."""
CRASHES = {2: "after_call", 6: "before_sign", 10: "after_sign", 14: "after_pay"}
"""Payer index → the fault point where that payer is killed once, mid-run."""
PRICES = {"shout": 3 * 10**12, "measure": 5 * 10**12, "echo": 7 * 10**12}
"""Each agent's one capability and its price (wei): distinct, so that a sum tells which calls it counts."""
PROXIED = "measure"
TRIES = 8


class Text(BaseModel):
    text: str


class Upper(BaseModel):
    upper: str


class Count(BaseModel):
    length: int


def build_agents(served: Counter[str]) -> dict[str, Agent]:
    """`shout`, `measure` and `echo`, each its own agent; `served` counts the work done per input."""
    shouter = Agent("shouter", price=PRICES["shout"])
    measurer = Agent("measurer", price=PRICES["measure"])
    echoer = Agent("echoer", price=PRICES["echo"])

    def work(text: str) -> None:
        served[text] += 1
        if "boom" in text:
            raise RuntimeError(f"injected agent error for {text!r}")

    @shouter.capability("shout")
    async def shout(request: Text, ctx: CallContext) -> Upper:
        work(request.text)
        return Upper(upper=request.text.upper())

    @measurer.capability("measure")
    async def measure(request: Text, ctx: CallContext) -> Count:
        work(request.text)
        return Count(length=len(request.text))

    @echoer.capability("echo")
    async def echo(request: Text, ctx: CallContext) -> Upper:
        work(request.text)
        return Upper(upper=request.text)

    return {"shout": shouter, "measure": measurer, "echo": echoer}


class Dropper:
    """The proxy's choice for each request, from the seed, the request's subject and which try it is: the
    same requests are dropped on every run, however the payers interleave."""

    def __init__(self) -> None:
        self.tries: Counter[str] = Counter()

    def __call__(self, request: ProxiedRequest) -> Fate:
        if request.method != "POST":
            return Fate.PASS  # the card
        body = json.loads(request.body)
        if request.path == "/invoke":
            subject = draw_subject = f"invoke {body.get('idempotencyKey')}"
        else:  # /pay: channel numbers depend on the order channels were opened in; amounts do not
            amount = body["payment"]["cumulativeAmount"]
            subject, draw_subject = f"pay {body['channel']} {amount}", f"pay {amount}"
        attempt = self.tries[subject]
        self.tries[subject] += 1
        if attempt >= 2:
            return Fate.PASS
        draw = random.Random(f"{SEED}:{draw_subject}:{attempt}").random()
        if draw < DROPS:
            return Fate.DROP_BEFORE
        if draw < 2 * DROPS:
            return Fate.DROP_AFTER
        return Fate.PASS


@dataclass
class Market:
    chain: Chain
    offers: dict[str, Offer]
    servers: dict[str, AgentServer]
    tabs: dict[str, Path]
    served: Counter[str]
    proxy: DroppingProxy


@pytest.fixture
async def load_market(tmp_path: Path) -> AsyncIterator[Market]:
    chain = Chain.embedded(accounts=4 + PAYERS)  # account 0 deploys, 1-3 are the agents, then the payers
    registry = Registry(chain)
    served: Counter[str] = Counter()
    proxy = DroppingProxy(Dropper())
    servers: dict[str, AgentServer] = {}
    tabs: dict[str, Path] = {}
    async with contextlib.AsyncExitStack() as stack:
        proxy_url = await stack.enter_async_context(proxy.running())
        for index, (capability, agent) in enumerate(build_agents(served).items(), start=1):
            tabs[capability] = tmp_path / f"tab-{capability}.sqlite"
            server = AgentServer(
                agent,
                chain=chain,
                account=chain.accounts[index],
                tab=tabs[capability],
                url=proxy_url if capability == PROXIED else None,
            )
            base = await stack.enter_async_context(server.running())
            if capability == PROXIED:
                proxy.upstream = base
            await server.register(registry, stake=10**17)
            servers[capability] = server
        offers = {offer.capability.name: offer for offer in await registry_offers(registry)}
        assert sorted(offers) == sorted(PRICES)
        proxied_card = offers[PROXIED].card
        assert proxied_card is not None and proxied_card.endpoint("motet").startswith(proxy_url)
        yield Market(chain, offers, servers, tabs, served, proxy)


@dataclass(frozen=True)
class Planned:
    node: str
    capability: str
    text: str

    @property
    def fails(self) -> bool:
        return "boom" in self.text


@dataclass
class PayerRun:
    """What one payer did: its run, its last `Payer` (the one that finished), and what it saw."""

    index: int
    run_id: str
    plan: list[Planned]
    payer: Payer
    paid: dict[str, int] = field(default_factory=dict)
    """Node → the price `Payer.call` returned for it."""
    failed: set[str] = field(default_factory=set)
    """Nodes the agent failed (500): nothing owed."""
    crashes: list[str] = field(default_factory=list)
    dropped: int = 0
    """Tries that ended on a broken connection and were made again."""


def plan_for(index: int, crash_node: int | None) -> list[Planned]:
    rng = random.Random(f"{SEED}:plan:{index}")
    calls = []
    for i in range(CALLS):
        capability = rng.choice(sorted(PRICES))
        boom = rng.random() < AGENT_ERRORS and i != crash_node
        text = f"payer {index} call {i}" + (" boom" if boom else "")
        calls.append(Planned(f"n{i:02d}", capability, text))
    return calls


async def run_payer(market: Market, index: int, tmp_path: Path) -> PayerRun:
    """One payer's 25 calls, one after another; killed once and resumed by a new `Payer` if it is to crash."""
    point = CRASHES.get(index)
    crash_node = random.Random(f"{SEED}:crash:{index}").randrange(3, CALLS - 3) if point else None
    account = market.chain.accounts[4 + index]
    store, ledger = tmp_path / f"payer{index}-calls.sqlite", tmp_path / f"payer{index}-vouchers.sqlite"
    crashes: list[str] = []

    def fault(where: str, node: str) -> None:
        if where == point and node == f"n{crash_node:02d}" and not crashes:
            crashes.append(where)
            raise SimulatedCrash(where)

    def new_payer() -> Payer:
        return Payer(
            market.chain,
            account,
            store=store,
            ledger=Ledger(ledger),
            deposit_calls=6,
            timeout=60.0,
            fault=fault,
        )

    run = PayerRun(index, f"load-{index:02d}", plan_for(index, crash_node), new_payer(), crashes=crashes)
    try:
        await make_calls(market, run, new_payer)
    except BaseException:
        await kill(run.payer)  # a failing test leaves no connection open
        raise
    await run.payer.aclose()
    return run


async def make_calls(market: Market, run: PayerRun, new_payer: Callable[[], Payer]) -> None:
    """The run's calls, each until it is paid or the agent fails it; then its last vouchers handed over."""
    budget = Budget(10**18)
    for call in run.plan:
        for _try in range(TRIES):
            try:
                paid = await run.payer.call(
                    run.run_id, call.node, market.offers[call.capability], {"text": call.text}, budget
                )
            except SimulatedCrash:
                await kill(run.payer)
                run.payer = new_payer()  # on the same store and ledger: it resumes the same run
                continue
            except AgentCallFailed as exc:
                if exc.status == 500:
                    run.failed.add(call.node)
                    break
                if exc.status is None:  # the connection broke: make the same call again
                    run.dropped += 1
                    continue
                raise
            run.paid[call.node] = paid.price
            break
        else:
            raise AssertionError(f"{run.run_id}: {call.node} did not end in {TRIES} tries")
    # The run ends as a compiled run does before it settles: its last vouchers go to their agents (`/pay`),
    # with those a killed payer left signed.
    for _try in range(TRIES):
        try:
            await run.payer.hand_over(run.run_id, list(market.offers.values()))
        except SimulatedCrash:  # killed while handing them over (`after_pay`): a new payer does it again
            await kill(run.payer)
            run.payer = new_payer()
            continue
        except AgentCallFailed as exc:
            if exc.status is not None:
                raise
            run.dropped += 1
            continue
        return
    raise AssertionError(f"{run.run_id}: the vouchers were not handed over in {TRIES} tries")


async def kill(payer: Payer) -> None:
    """What a killed process leaves: its SQLite connections and sockets closed, and nothing it held in memory
    sent (not `aclose()`, which hands over the vouchers waiting for a next call)."""
    payer.close()
    payer.channels.ledger.close()
    pool = getattr(payer, "_pool", None)  # one pool for every agent, or a client per agent
    if pool is not None:
        await pool.aclose()
    for client in getattr(payer, "_clients", {}).values():
        await client.aclose()


@dataclass(frozen=True)
class Delivery:
    channel: int
    seq: int
    price: int
    total: int


def deliveries(tab: Path) -> dict[str, Delivery]:
    """Idempotency key → the agent's delivery for it, read from the agent's own tab (one per key, or fail)."""
    db = sqlite3.connect(tab)
    try:
        rows = db.execute("SELECT channel, seq, price, total, idempotency_key FROM deliveries").fetchall()
    finally:
        db.close()
    keys = Counter(str(key) for *_, key in rows)
    assert max(keys.values(), default=1) == 1, f"delivered twice under one key: {keys.most_common(3)}"
    return {
        str(key): Delivery(int(channel, 16), int(seq), int(price), int(total))
        for channel, seq, price, total, key in rows
    }


@pytest.mark.slow
async def test_sixteen_payers_with_failures_pay_every_delivered_call_exactly_once(
    load_market: Market, tmp_path: Path
) -> None:
    market = load_market
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(run_payer(market, index, tmp_path)) for index in range(PAYERS)]
    runs = [task.result() for task in tasks]

    # What was injected, so that the checks below have something to check.
    assert sorted(point for run in runs for point in run.crashes) == sorted(CRASHES.values())
    assert sum(len(run.failed) for run in runs) >= 10
    assert market.proxy.fates[Fate.DROP_BEFORE] >= 3 and market.proxy.fates[Fate.DROP_AFTER] >= 3

    # Each call went as planned: a "boom" input failed with nothing owed, every other call was paid its price,
    # and the payer's store says so.
    for run in runs:
        statuses = {(r.node, r.status, r.cumulative > 0) for r in run.payer.calls(run.run_id)}
        assert statuses == {(c.node, "failed" if c.fails else "paid", not c.fails) for c in run.plan}, (
            run.run_id
        )
        for call in run.plan:
            if call.fails:
                assert call.node in run.failed and call.node not in run.paid, (run.run_id, call)
            else:
                assert run.paid.get(call.node) == PRICES[call.capability], (run.run_id, call)

    # The agents did each call's work once: a repeated or resumed call was answered from the agent's tab.
    expected_work = {call.text: 1 for run in runs for call in run.plan if not call.fails}
    assert {text: n for text, n in market.served.items() if "boom" not in text} == expected_work

    # Agents' tabs: one delivery per delivered call, none for a failed one, and each channel's running total
    # is the sum of its prices (nothing counted twice).
    delivered: dict[str, tuple[str, Delivery]] = {}
    for capability, tab in market.tabs.items():
        for key, delivery in deliveries(tab).items():
            assert key not in delivered, f"{key} delivered by two agents"
            delivered[key] = (capability, delivery)
    planned = {f"{run.run_id}:{call.node}": call for run in runs for call in run.plan}
    assert set(delivered) == {key for key, call in planned.items() if not call.fails}
    for key, (capability, delivery) in delivered.items():
        assert planned[key].capability == capability and delivery.price == PRICES[capability], key
    totals: dict[int, int] = {}
    prices_by_channel: Counter[int] = Counter()
    for _capability, delivery in sorted(delivered.values(), key=lambda item: (item[1].channel, item[1].seq)):
        prices_by_channel[delivery.channel] += delivery.price
        assert delivery.total == prices_by_channel[delivery.channel], delivery
        totals[delivery.channel] = delivery.total

    # Payers' receipts: exactly the agents' deliveries, call for call (channel, call number, price).
    receipts: dict[str, tuple[int, int, int]] = {}
    for run in runs:
        for node, (_agent_id, receipt) in run.payer.receipts(run.run_id).items():
            receipts[f"{run.run_id}:{node}"] = (receipt.channel_id, receipt.seq, receipt.price)
    assert receipts == {key: (d.channel, d.seq, d.price) for key, (_c, d) in delivered.items()}
    receipts_total = sum(price for _channel, _seq, price in receipts.values())
    assert receipts_total == sum(run.payer.spent(run.run_id) for run in runs)

    # Vouchers: on every channel the payers opened, the payer's highest signed voucher is what the agent
    # delivered there, no more and no less (0: none signed).
    channel_payer: dict[int, PayerRun] = {}
    for run in runs:
        for record in run.payer.calls(run.run_id):
            if record.channel:
                channel_payer[record.channel] = run
    assert set(totals) <= set(channel_payer)
    for channel, run in channel_payer.items():
        signed = run.payer.channels.ledger.highest_signed(run.payer.channels.domain, channel)
        assert (signed.cumulative_amount if signed else 0) == totals.get(channel, 0), f"channel {channel}"

    # The agents redeem the vouchers they hold, then each payer settles its run (redeeming any voucher its agent
    # lacks): the chain pays each channel exactly what was delivered on it, and in all the receipts' sum.
    by_agents = sum(int(r.paid) for server in market.servers.values() for r in server.redemptions)
    for server in market.servers.values():
        held = server.channels.ledger.unredeemed(server.channels.domain)
        by_agents += sum(int(r.paid) for r in server.channels.redeem(held))
    by_payers = 0
    for run in runs:
        _hashes, paid, _gas = run.payer.settle(run.run_id)
        by_payers += paid
    reader = ChannelClient(market.chain, market.chain.accounts[0])
    states = {channel: reader.channel(channel) for channel in channel_payer}
    for channel, state in states.items():
        assert state.redeemed == totals.get(channel, 0), f"channel {channel} on chain"
    assert by_agents + by_payers == receipts_total

    # And every agent had been handed every voucher for what it delivered (riding on a next call or by `/pay`,
    # after a crash too): the agents' redemption alone paid it all, and the payers' settlement nothing.
    servers_by_payee = {str(server.account.address): server for server in market.servers.values()}
    short = []
    for channel, run in sorted(channel_payer.items()):
        server = servers_by_payee[states[channel].payee]
        received = server.channels.ledger.highest_received(server.channels.domain, channel)
        holds = received.cumulative_amount if received else 0
        if holds != totals.get(channel, 0):
            calls = [
                (r.node, r.status, r.cumulative) for r in run.payer.calls(run.run_id) if r.channel == channel
            ]
            short.append(
                f"channel {channel} of {run.run_id} (crashed at {run.crashes}): the agent holds vouchers for "
                f"{holds:,} wei of the {totals.get(channel, 0):,} wei it delivered; the payer's calls on it "
                f"(node, status, cumulative): {calls}"
            )
    assert not short, "\n".join(short)
    assert (by_agents, by_payers) == (receipts_total, 0)
    for run in runs:
        run.payer.close()
