"""Attacks on the market the composer chooses from and pays: cards and endpoints aimed at internal addresses,
an unstaked free agent taking every call, parallel branches racing on one agent's channel, and per-token
prices. Real agents on 127.0.0.1, the embedded chain."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel
from support.card_host import card_host

from motet.agents import Agent, AgentServer, CallContext, check_public_url, fetch_card
from motet.agents import _fetch as fetch_module
from motet.chain import Chain
from motet.composer import CallPaid, Failover, NodeDone, Payer, Workflow
from motet.errors import GraphError, InvalidAgentCard, NodeFailed
from motet.payments import ChannelClient
from motet.registry import Registry
from motet.runtimes import Usage
from motet.settings import Settings

PRICE = 10**12
STAKE = 10**17


class Text(BaseModel):
    text: str


class Echo(BaseModel):
    echo: str


class Shout(BaseModel):
    shout: str


@dataclass
class Served:
    server: AgentServer
    url: str
    agent_id: int
    served: list[str]


def echo(name: str, price: int = PRICE, **options: Any) -> tuple[Agent, list[str]]:
    served: list[str] = []
    agent = Agent(name, price=price, **options)

    @agent.capability("echo")
    async def run(request: Text, ctx: CallContext) -> Echo:
        served.append(request.text)
        return Echo(echo=request.text)

    return agent, served


@contextlib.asynccontextmanager
async def serve(
    chain: Chain, registry: Registry, agent: Agent, served: list[str], index: int, stake: int
) -> AsyncIterator[Served]:
    server = AgentServer(agent, chain=chain, account=chain.accounts[index])
    async with server.running() as url:
        agent_id = await server.register(registry, stake=stake)
        yield Served(server, url, agent_id, served)


# -- item 9: server-side requests to internal addresses --------------------------------------------------


def test_development_chains_allow_private_endpoints_and_others_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert fetch_module.private_endpoints_allowed(Chain.embedded())
    assert not fetch_module.private_endpoints_allowed(
        Chain.embedded(settings=Settings(allow_private_endpoints=False))
    )
    assert Settings.from_env().allow_private_endpoints is None  # decided by the chain's kind
    monkeypatch.setenv("MOTET_ALLOW_PRIVATE_ENDPOINTS", "1")  # a development node reached by URL
    assert Settings.from_env().allow_private_endpoints is True
    monkeypatch.setenv("MOTET_ALLOW_PRIVATE_ENDPOINTS", "0")
    assert Settings.from_env().allow_private_endpoints is False


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/card.json",
        "http://[::1]/card.json",
        "http://10.1.2.3/card.json",
        "http://192.168.0.1/card.json",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/card.json",
        "http://0.0.0.0/card.json",
        "http://localhost/card.json",
    ],
)
async def test_internal_addresses_are_refused(url: str) -> None:
    with pytest.raises(InvalidAgentCard, match="address; cards and endpoints must be public"):
        await check_public_url(url)
    with pytest.raises(InvalidAgentCard, match="must be public"):
        await fetch_card(url)


async def test_card_redirect_to_internal_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # 127.0.0.2 stands for a public host (the only kind a test can serve on); it redirects to 127.0.0.1.
    judge = fetch_module._private_kind
    front = ipaddress.ip_address("127.0.0.2")
    monkeypatch.setattr(fetch_module, "_private_kind", lambda a: None if a == front else judge(a))
    async with card_host("127.0.0.1") as internal, card_host("127.0.0.2") as public:
        internal.pages["/admin"] = b'{"secret": 1}'
        public.redirects["/card.json"] = internal.url("/admin")
        with pytest.raises(InvalidAgentCard, match=r"127\.0\.0\.1, a loopback address"):
            await fetch_card(public.url("/card.json"))
        assert public.hits == ["/card.json"]
        assert internal.hits == []  # the internal address was never asked
        # Allowed (a development setup), the redirect is followed, as far as MAX_REDIRECTS.
        public.pages["/ok.json"] = b"{}"
        for hop in range(4):
            public.redirects[f"/r{hop}"] = public.url(f"/r{hop + 1}")
        with pytest.raises(Exception, match="more than 3 redirects"):
            await fetch_card(public.url("/r0"))


async def test_a_card_fetch_connects_to_the_address_it_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    # DNS rebinding: a name checked as public must not be resolved again to something else for the request.
    # Here 127.0.0.1 stands for the public address "localhost" resolves to; the request goes to the address
    # that was checked, with the name kept in the Host header.
    judge = fetch_module._private_kind
    checked = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(fetch_module, "_private_kind", lambda a: None if a == checked else judge(a))
    resolved: list[str] = []

    async def resolve_once(host: str, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
        resolved.append(host)
        return [(0, 0, 0, "", ("127.0.0.1", 0))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolve_once)
    agent, _served = echo("pinned")
    card = agent.card("https://agent.example", signer="0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf")
    async with card_host("127.0.0.1") as host:
        host.pages["/card.json"] = card.to_json().encode()
        port = host.base.rsplit(":", 1)[1]
        assert await fetch_card(f"http://rebind.example:{port}/card.json") == card
        assert host.hosts == [f"rebind.example:{port}"]
    assert resolved == ["rebind.example"]  # resolved once, for the check; the request used that address


async def test_card_endpoint_at_internal_address_is_refused() -> None:
    chain = Chain.embedded(settings=Settings(allow_private_endpoints=False))
    registry = Registry(chain)
    agent, served = echo("internal")
    async with serve(chain, registry, agent, served, 1, STAKE) as internal:
        flow = Workflow("f", inputs=Text).add("echo", "echo")
        with pytest.raises(GraphError, match=r"127\.0\.0\.1, a loopback address"):
            await flow.compile(registry, payer=Payer(chain, chain.accounts[8]), budget=10**18)
        # Pinned, it is refused the same way: the payer never sends a request there.
        pinned = Workflow("g", inputs=Text).add("echo", "echo", agent=internal.agent_id)
        with pytest.raises(GraphError, match="loopback"):
            await pinned.compile(registry, payer=Payer(chain, chain.accounts[8]), budget=10**18)
    assert served == []


# -- item 10: free riders ----------------------------------------------------------------------------------


async def test_unstaked_free_agent_is_not_chosen_by_default(chain: Chain) -> None:
    registry = Registry(chain)
    free, free_served = echo("free-rider", price=0)
    honest, honest_served = echo("honest")
    async with (
        serve(chain, registry, free, free_served, 1, 0) as rider,
        serve(chain, registry, honest, honest_served, 2, STAKE) as staked,
    ):
        payer = Payer(chain, chain.accounts[8])
        flow = Workflow("f", inputs=Text).add("echo", "echo")
        runnable = await flow.compile(registry, payer=payer, budget=10**18)
        assert [offer.agent_id for offer in runnable.candidates["echo"]] == [staked.agent_id]
        report = await runnable.run({"text": "private input"})
        assert report.outputs["echo"] == {"echo": "private input"}
        _flow, plan = await Workflow.from_goal("echo", inputs=Text, registry=registry)
        assert plan.steps[0].offer.agent_id == staked.agent_id
        assert free_served == []  # the free rider never saw an input
        assert honest_served == ["private input"]

        # Named explicitly, the unstaked agent is used.
        pinned = Workflow("p", inputs=Text).add("echo", "echo", agent=rider.agent_id)
        runnable = await pinned.compile(registry, payer=payer, budget=10**18)
        report = await runnable.run({"text": "for you"})
        assert free_served == ["for you"]
        await payer.aclose()


# -- item 11: parallel branches to one agent -------------------------------------------------------------


async def test_parallel_branches_to_one_agent_are_paid_exactly(chain: Chain) -> None:
    registry = Registry(chain)
    agent, served = echo("busy")
    async with serve(chain, registry, agent, served, 1, STAKE) as busy:
        payer = Payer(chain, chain.accounts[8])
        flow = Workflow("fan", inputs=Text)
        for branch in ("a", "b", "c", "d"):
            flow.add(branch, "echo")
        runnable = await flow.compile(registry, payer=payer, budget=10**18)
        events = [event async for event in runnable.stream({"text": "same"})]
        await payer.aclose()
    assert not [e for e in events if isinstance(e, Failover)]
    assert sorted(e.node for e in events if isinstance(e, NodeDone)) == ["a", "b", "c", "d"]
    paid = [e for e in events if isinstance(e, CallPaid)]
    assert len(paid) == 4 and len({e.channel for e in paid}) == 1
    assert sorted(e.cumulative for e in paid) == [PRICE, 2 * PRICE, 3 * PRICE, 4 * PRICE]
    assert len(served) == 4
    (channel,) = {e.channel for e in paid}
    owed = busy.server._owed(channel)
    assert owed == busy.server._paid(channel) == 4 * PRICE  # owed == paid: nothing left unpaid or disputed
    redeemed = ChannelClient(chain, busy.server.account).channel(channel).redeemed
    assert redeemed == 4 * PRICE


# -- item 12: per-token prices --------------------------------------------------------------------------


def per_token_agent(usage: Usage) -> tuple[Agent, list[str]]:
    served: list[str] = []
    agent = Agent("by-the-token", price=1_000, price_per_1k_tokens=10**9, max_prompt_tokens=1_000)

    @agent.capability("echo", max_tokens=500)
    async def run(request: Text, ctx: CallContext) -> Echo:
        served.append(request.text)
        ctx.usage = usage  # what a model run would report
        return Echo(echo=request.text)

    return agent, served


async def test_per_token_agent_is_paid_exactly_its_usage(chain: Chain) -> None:
    registry = Registry(chain)
    agent, served = per_token_agent(Usage(700, 301))
    async with serve(chain, registry, agent, served, 1, STAKE) as tokens:
        payer = Payer(chain, chain.accounts[8])
        runnable = (
            await Workflow("t", inputs=Text).add("echo", "echo").compile(registry, payer=payer, budget=10**13)
        )
        worst = 1_000 + 10**9 * 1_500 // 1_000
        assert runnable.worst_case == worst  # prompt and completion tokens both bound it
        events = [event async for event in runnable.stream({"text": "count me"})]  # streamed
        await payer.aclose()
        (call,) = [e for e in events if isinstance(e, CallPaid)]
        exact = 1_000 + -(-(10**9) * 1_001 // 1_000)
        assert call.price == exact == agent.price_of(Usage(700, 301)) < worst
        assert tokens.server._owed(call.channel) == tokens.server._paid(call.channel) == exact
        assert ChannelClient(chain, tokens.server.account).channel(call.channel).redeemed == exact


async def test_per_token_agent_inflating_its_usage_is_not_paid(chain: Chain) -> None:
    registry = Registry(chain)
    agent, served = per_token_agent(Usage(5_000, 10))  # more than the 1,500 tokens its card bounds
    async with serve(chain, registry, agent, served, 1, STAKE):
        payer = Payer(chain, chain.accounts[8])
        runnable = (
            await Workflow("t", inputs=Text).add("echo", "echo").compile(registry, payer=payer, budget=10**13)
        )
        with pytest.raises(NodeFailed, match="tokens"):
            await runnable.run({"text": "count me"})
        await payer.aclose()
    assert served == ["count me"]  # it did the work, and asked for more than it may: nothing signed
    assert payer.channels.ledger.count("signed") == 0
