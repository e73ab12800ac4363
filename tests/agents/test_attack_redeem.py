"""A payer that closes a channel to take back what it owes: a served agent redeems on its own, at once when a
channel it holds vouchers for starts closing, and for everything once the unredeemed total or age passes its
threshold. Real agent server on 127.0.0.1, embedded chain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from support.agents import PRICE, Running, call_signer, echo_agent

from motet.agents import AgentClient, AgentServer
from motet.chain import Chain
from motet.payments import ChannelClient
from motet.registry import Registry


async def served(chain: Chain, **thresholds: float) -> AsyncIterator[tuple[Running, list[str]]]:
    agent, calls = echo_agent()
    server = AgentServer(agent, chain=chain, account=chain.accounts[1], watch_interval=0.1, **thresholds)  # type: ignore[arg-type]
    async with server.running() as url:
        payer = ChannelClient(chain, chain.accounts[2])
        async with AgentClient(url, signer=call_signer(payer)) as client:
            yield Running(chain, server, url, client, payer, Registry(chain), 0), calls


@pytest.fixture
async def watching(chain: Chain) -> AsyncIterator[tuple[Running, list[str]]]:
    async for running in served(chain):  # default thresholds: 0.1 ETH or a day, far from this test's amounts
        yield running


async def redeemed(server: AgentServer, seconds: float = 20.0) -> None:
    """Wait until the running server has sent a redeem transaction on its own."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not server.redemptions:
        assert asyncio.get_running_loop().time() < deadline, "the agent did not redeem"
        await asyncio.sleep(0.05)


async def test_agent_redeems_when_payer_starts_closing(
    watching: tuple[Running, list[str]], chain: Chain
) -> None:
    running, calls = watching
    payer, server = running.payer, running.server
    deposit = 10 * PRICE
    channel = payer.open(server.account.address, deposit).channel_id
    first = await running.client.invoke("echo", {"text": "one"}, channel=channel)
    second = await running.client.invoke(
        "echo", {"text": "two"}, channel=channel, payment=payer.sign(channel, first.owed)
    )
    await running.client.pay(channel, payer.sign(channel, second.owed))
    await asyncio.sleep(0.5)
    assert server.redemptions == []  # under the thresholds: nothing redeemed yet
    # The payer starts closing, hoping the agent will not redeem within the challenge period.
    closes_at = payer.close(channel)
    started = chain.timestamp()
    await redeemed(server)
    assert chain.timestamp() < closes_at, "redeemed within the challenge period"
    assert sum(r.paid for r in server.redemptions) == 2 * PRICE
    assert payer.channel(channel).redeemed == 2 * PRICE
    # The payer settles after the challenge period and gets back only what was never owed.
    chain.advance_time(closes_at - started + 1)
    refund = payer.settle(channel)
    assert refund == deposit - 2 * PRICE
    assert calls == ["one", "two"]


async def test_agent_redeems_once_its_unredeemed_total_passes_the_threshold(chain: Chain) -> None:
    async for running, _ in served(chain, redeem_above=2 * PRICE):
        payer, server = running.payer, running.server
        channel = payer.open(server.account.address, 10 * PRICE).channel_id
        first = await running.client.invoke("echo", {"text": "one"}, channel=channel)
        await running.client.pay(channel, payer.sign(channel, first.owed))
        await asyncio.sleep(0.5)
        assert server.redemptions == []  # PRICE held: under the threshold
        second = await running.client.invoke("echo", {"text": "two"}, channel=channel)
        await running.client.pay(channel, payer.sign(channel, second.owed))
        await redeemed(server)
        assert payer.channel(channel).redeemed == 2 * PRICE


async def test_agent_redeems_once_its_oldest_voucher_passes_the_age_threshold(chain: Chain) -> None:
    async for running, _ in served(chain, redeem_after=1.0):
        payer, server = running.payer, running.server
        channel = payer.open(server.account.address, 10 * PRICE).channel_id
        first = await running.client.invoke("echo", {"text": "one"}, channel=channel)
        await running.client.pay(channel, payer.sign(channel, first.owed))
        await redeemed(server)
        assert payer.channel(channel).redeemed == PRICE
