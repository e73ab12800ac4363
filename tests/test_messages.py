"""Messages a user can act on: each names the thing, the unit and the next step that user can take. On the real
embedded chain, the real bundled model, and an agent served over real HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, Field
from support.agents import PRICE, Running, start

from motet.agents import Agent
from motet.chain import Chain
from motet.composer import Budget
from motet.errors import (
    AgentCallFailed,
    BudgetExceeded,
    ChannelFundsExhausted,
    ChannelNotSettleable,
    InvalidModelOutput,
)
from motet.payments import ChannelClient
from motet.runtimes import LlamaCppRuntime, Sampling
from motet.units import GWEI

pytestmark = pytest.mark.slow

DOUBLED = re.compile(r"\b(\w+) \1\b")
"""A word written twice in a row ("at at", "the the")."""


@pytest.fixture(scope="module")
def shared() -> Chain:
    """One embedded chain for the module (motet's contracts deployed once); each test opens its own channels."""
    return Chain.embedded()


def test_settling_too_early_says_when_the_challenge_period_ends_and_what_to_do(shared: Chain) -> None:
    chain = shared
    payer = ChannelClient(chain, chain.accounts[2])
    channel = payer.open(chain.accounts[1].address, 5 * GWEI).channel_id
    with pytest.raises(ChannelNotSettleable, match=rf"channel {hex(channel)} is open: close it first"):
        payer.settle(channel)

    closes_at = payer.close(channel)
    with pytest.raises(ChannelNotSettleable) as caught:
        payer.settle(channel)
    left = closes_at - chain.timestamp()
    assert 3500 < left <= 3600  # the contract's challenge period, read back from the chain: 1 hour
    when = datetime.fromtimestamp(closes_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    shown = "1 h 0 min" if left == 3600 else f"{left // 60} min {left % 60} s"
    assert str(caught.value) == (
        f"channel {hex(channel)}'s challenge period is not over: it ends at {when} (chain time), "
        f"{shown} from now; settle it again after that"
    )
    assert caught.value.closes_at == closes_at

    chain.set_next_timestamp(closes_at)  # then, as the message says, it settles
    assert payer.settle(channel) == 5 * GWEI
    with pytest.raises(ChannelNotSettleable, match=rf"channel {hex(channel)} is settled already"):
        payer.settle(channel)


def test_amounts_in_messages_name_their_unit(shared: Chain) -> None:
    chain = shared
    payer = ChannelClient(chain, chain.accounts[2])
    channel = payer.open(chain.accounts[1].address, 3 * GWEI).channel_id
    payer.sign(channel, 2 * GWEI)
    with pytest.raises(ChannelFundsExhausted) as exhausted:
        payer.sign(channel, 5 * GWEI)
    assert str(exhausted.value).startswith(
        f"channel {hex(channel)} has 1 gwei left, the payment needs 3 gwei: top up with "
        f"`ChannelClient.topup({hex(channel)}, amount)`"
    )
    with pytest.raises(BudgetExceeded) as over:
        Budget(10**15).reserve(2 * 10**15, what="node 'summarize'")
    assert str(over.value) == (
        "node 'summarize' could cost 0.002 ETH, and with 0 wei already spent or reserved that passes the budget "
        "of 0.001 ETH: raise the budget or lower the price caps"
    )


class Topic(BaseModel):
    topic: str = Field(max_length=200, description="What the text is about, in a sentence.")


class Text(BaseModel):
    text: str


@pytest.fixture
async def terse(shared: Chain, smollm2: LlamaCppRuntime) -> AsyncIterator[Running]:
    """An agent whose capability may write 3 tokens: its answers are always cut off."""
    agent = Agent("terse", runtime=smollm2, price=PRICE)
    agent.prompt("topic", input=Text, output=Topic, instructions="Say what the text is about.", max_tokens=3)
    async for running in start(shared, agent):
        yield running


async def test_an_answer_cut_off_at_max_tokens_tells_each_reader_what_they_can_do(
    terse: Running, smollm2: LlamaCppRuntime
) -> None:
    # Who calls the runtime directly sets max_tokens: the message says so, and JSON's own words read once.
    with pytest.raises(InvalidModelOutput) as direct:
        await smollm2.complete("Say hello.", Sampling(max_tokens=3, seed=0), schema=Topic)
    assert direct.value.cut_off
    assert "pass a larger Sampling(max_tokens=...)" in str(direct.value)
    assert not DOUBLED.search(str(direct.value)), str(direct.value)

    # Who calls a served agent (a workflow's payer) cannot: choose another agent, or ask its operator.
    channel = terse.payer.open(terse.server.account.address, 10 * PRICE).channel_id
    with pytest.raises(AgentCallFailed) as served:
        await terse.client.invoke("topic", {"text": "The library reopened."}, channel=channel)
    message = str(served.value)
    assert served.value.status == 502
    assert (
        "the answer was cut off at topic's limit of 3 tokens before it was complete, so nothing is owed"
        in (message)
    )
    assert "choose another agent for it, or ask this agent's operator to raise its max_tokens" in message
    assert "Sampling" not in message and not DOUBLED.search(message), message
