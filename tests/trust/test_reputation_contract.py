"""Reputation.vy on the embedded chain: only a payer rates an agent, weighted by what it really paid.

Every transaction here goes straight to the contract (not through the Python client), so what is refused is
refused on chain. Channels are real: opened, paid and redeemed through `ChannelClient`; receipts are signed by
the agent's payout key.
"""

from __future__ import annotations

import pytest
from support.channels import CONTRACTS_DIR
from support.reputation import AGENT_PRICE, World, fields

from motet.errors import ChainError, TransactionReverted
from motet.payments import ChannelClient, DelegationClient
from motet.trust._reputation import tag_bytes


def refused(reason: str, world: World, *args: object, **kwargs: object) -> None:
    """`world.give(*args, **kwargs)` reverts on chain with exactly `reason`, and nothing is recorded."""
    before = world.totals()
    with pytest.raises(TransactionReverted) as info:
        world.give(*args, **kwargs)  # type: ignore[arg-type]
    assert info.value.reason == reason
    assert world.totals() == before


def test_feedback_from_an_address_that_never_paid_the_agent_is_refused_on_chain(world: World) -> None:
    paid = world.open(world.payer, paid=2_000)
    receipt = world.receipt(paid.channel_id, 1, 2_000)
    # The stranger holds a genuine receipt of a really paid call, but the money was not its own.
    refused("reputation: only the channel's payer can rate its calls", world, world.stranger, receipt, 10)
    # Nor can the agent's payout, or the session key of no delegation, speak for the payer.
    refused("reputation: only the channel's payer can rate its calls", world, world.payout, receipt, 100)
    refused("reputation: only the channel's payer can rate its calls", world, world.session_key, receipt, 100)
    # The stranger's own channel to the agent, with nothing paid through it, weighs nothing either.
    own = world.open(world.stranger)
    refused(
        "reputation: nothing was redeemed on this channel",
        world,
        world.stranger,
        world.receipt(own.channel_id, 1, 2_000),
        10,
    )
    world.give(world.payer, receipt, 90)
    assert world.totals() == (1, 2_000, 90 * 2_000)


def test_feedback_from_payers_is_weighted_by_their_redeemed_amounts(world: World) -> None:
    first = world.open(world.payer, paid=2_000)
    second = world.open(world.payer2, paid=1_000)
    tx1 = world.give(world.payer, world.receipt(first.channel_id, 1, 2_000), 90, tag=tag_bytes("summarize"))
    tx2 = world.give(world.payer2, world.receipt(second.channel_id, 1, 1_000), 40, uri="https://x.example/r")

    assert world.totals() == (2, 3_000, 90 * 2_000 + 40 * 1_000)
    count, weight, score = world.reputation.functions.summary(world.agent).call()
    assert (count, weight) == (2, 3_000)
    assert score == (90 * 2_000 + 40 * 1_000) * 100 // 3_000 == 7_333  # hundredths, rounded down
    (event1,), (event2,) = world.feedback_events(tx1), world.feedback_events(tx2)
    assert (event1["client"], event1["weight"], event1["score"]) == (world.payer.address, 2_000, 90)
    assert event1["tag"] == tag_bytes("summarize") and event1["feedback_index"] == 1
    assert (event2["client"], event2["weight"], event2["feedback_uri"]) == (
        world.payer2.address,
        1_000,
        "https://x.example/r",
    )
    assert event2["request_hash"] == world.receipt(second.channel_id, 1, 1_000).request_hash
    # ERC-8004's per-client reads.
    functions = world.reputation.functions
    assert functions.getLastIndex(world.agent, world.payer.address).call() == 1
    assert functions.getLastIndex(world.agent, world.stranger.address).call() == 0
    assert functions.readFeedback(world.agent, world.payer.address, 1).call() == [
        90,
        tag_bytes("summarize"),
        bytes(32),
        False,
    ]
    assert functions.feedback(world.agent, world.payer2.address, 1).call() == (
        40,
        bytes(32),
        1_000,
        second.channel_id,
        1,
    )
    assert functions.getIdentityRegistry().call() == world.registry.contract.address
    # The other agent is untouched.
    assert functions.summary(world.agent_b).call() == (0, 0, 0)


def test_weight_never_exceeds_what_the_channel_redeemed(world: World) -> None:
    paid = world.open(world.payer, paid=2_500)
    # A receipt priced above what was redeemed weighs only what was redeemed.
    (event,) = world.feedback_events(world.give(world.payer, world.receipt(paid.channel_id, 1, 5_000), 80))
    assert event["weight"] == 2_500
    # The channel's redeemed amount is used up: the next call on it weighs nothing until more is redeemed.
    second = world.receipt(paid.channel_id, 2, 1_000)
    refused(
        "reputation: the channel's redeemed amount already weighs earlier feedback",
        world,
        world.payer,
        second,
        80,
    )
    paid.pay(300)  # received by the payee, not yet on chain
    refused(
        "reputation: the channel's redeemed amount already weighs earlier feedback",
        world,
        world.payer,
        second,
        80,
    )
    paid.redeem()
    (event,) = world.feedback_events(world.give(world.payer, second, 20))
    assert event["weight"] == 300
    assert world.reputation.functions.weight_used(paid.channel_id).call() == paid.redeemed == 2_800
    assert world.totals() == (2, 2_800, 80 * 2_500 + 20 * 300)


def test_a_second_feedback_for_the_same_paid_call_is_refused(world: World) -> None:
    paid = world.open(world.payer, paid=10_000)
    receipt = world.receipt(paid.channel_id, 1, 1_000)
    world.give(world.payer, receipt, 90)
    refused("reputation: this call was already rated", world, world.payer, receipt, 10)
    # Signed again (another response, another price) it is still the same call: channel and seq.
    again = world.receipt(paid.channel_id, 1, 2_000)
    assert again.signature != receipt.signature
    refused("reputation: this call was already rated", world, world.payer, again, 10)
    assert world.reputation.functions.rated(paid.channel_id, 1).call()
    world.give(world.payer, world.receipt(paid.channel_id, 2, 1_000), 70)
    assert world.totals() == (2, 2_000, 90 * 1_000 + 70 * 1_000)


def test_a_receipt_not_signed_by_the_agent_is_refused(world: World) -> None:
    paid = world.open(world.payer, paid=2_000)
    reason = "reputation: receipt not signed by the agent's payout"
    # Signed by the payer itself, or by another agent's payout.
    refused(reason, world, world.payer, world.receipt(paid.channel_id, 1, 2_000, signer=world.payer), 90)
    refused(reason, world, world.payer, world.receipt(paid.channel_id, 1, 2_000, signer=world.payout_b), 90)
    genuine = world.receipt(paid.channel_id, 1, 1_000)
    # A genuine signature over other fields: the price raised after signing.
    forged = world.receipt(paid.channel_id, 1, 2_000)
    refused(reason, world, world.payer, forged, 90, signature=genuine.signature)
    # A malformed signature: its high-s twin, a wrong v, a short one.
    r, s, v = genuine.signature[:32], int.from_bytes(genuine.signature[32:64], "big"), genuine.signature[64]
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    twin = r + (n - s).to_bytes(32, "big") + bytes([55 - v])
    refused(reason, world, world.payer, genuine, 90, signature=twin)
    refused(reason, world, world.payer, genuine, 90, signature=genuine.signature[:64] + b"\x01")
    refused(reason, world, world.payer, genuine, 90, signature=genuine.signature[:64])
    # The same receipt to the wrong agent: agent B's payout did not sign it.
    refused(reason, world, world.payer, genuine, 90, agent=world.agent_b)
    world.give(world.payer, genuine, 90)


def test_a_receipt_for_a_channel_to_another_payee_is_refused(world: World) -> None:
    # The payer really paid agent B; agent A signs a receipt naming that channel.
    to_b = world.open(world.payer, world.payout_b, paid=2_000)
    refused(
        "reputation: the channel does not pay this agent",
        world,
        world.payer,
        world.receipt(to_b.channel_id, 1, 2_000),
        100,
    )
    # Agent B's own receipt for it counts for agent B only.
    world.give(
        world.payer, world.receipt(to_b.channel_id, 1, 2_000, signer=world.payout_b), 60, agent=world.agent_b
    )
    assert world.totals(world.agent_b) == (1, 2_000, 60 * 2_000)
    assert world.totals() == (0, 0, 0)


def test_a_channel_with_nothing_redeemed_gives_no_weight(world: World) -> None:
    unpaid = world.open(world.payer, paid=2_000, redeem=False)  # vouchers received, never redeemed
    receipt = world.receipt(unpaid.channel_id, 1, 2_000)
    refused("reputation: nothing was redeemed on this channel", world, world.payer, receipt, 90)
    assert world.reputation.functions.summary(world.agent).call() == (0, 0, 0)
    assert not world.reputation.functions.rated(unpaid.channel_id, 1).call()
    unpaid.redeem()
    world.give(world.payer, receipt, 90)
    assert world.totals() == (1, 2_000, 90 * 2_000)


def test_a_free_call_a_bad_score_and_an_unknown_agent_are_refused(world: World) -> None:
    paid = world.open(world.payer, paid=2_000)
    refused(
        "reputation: a free call carries no weight",
        world,
        world.payer,
        world.receipt(paid.channel_id, 1, 0),
        90,
    )
    receipt = world.receipt(paid.channel_id, 1, 1_000)
    refused("reputation: score is above 100", world, world.payer, receipt, 101)
    refused("reputation: unknown agent", world, world.payer, receipt, 50, agent=99)
    refused("reputation: unknown channel", world, world.payer, world.receipt(999, 1, 1_000), 50)
    world.give(world.payer, receipt, 100)
    world.give(world.payer, world.receipt(paid.channel_id, 2, 1_000), 0)
    assert world.totals() == (2, 2_000, 100 * 1_000)
    assert world.reputation.functions.summary(world.agent).call()[2] == 5_000


def test_an_agents_owner_cannot_rate_its_own_agent(world: World) -> None:
    own = world.open(world.owner, paid=2_000)
    refused(
        "reputation: an agent's owner cannot rate it",
        world,
        world.owner,
        world.receipt(own.channel_id, 1, 2_000),
        100,
    )
    # Nor through someone else's money: the session key owns agent C and makes calls to it for the payer.
    agent_c = world.registry.register(
        "https://agents.example/c.json",
        ["summarize"],
        1_000,
        payout=world.stranger.address,
        owner=world.session_key,
    )
    to_c, _ = world.open_delegated(paid=1_000, agent=agent_c, payee=world.stranger)
    receipt = world.receipt(to_c.channel_id, 1, 1_000, signer=world.stranger)
    refused(
        "reputation: an agent's owner cannot rate it", world, world.session_key, receipt, 100, agent=agent_c
    )
    world.give(world.payer, receipt, 100, agent=agent_c)  # the delegator, whose money it was, can
    assert world.totals(agent_c) == (1, 1_000, 100 * 1_000)


def test_a_channel_in_another_asset_than_the_agents_price_is_refused(world: World) -> None:
    chain = world.chain
    token = chain.deploy(CONTRACTS_DIR / "TestToken.vy", sender=world.owner)
    chain.send(token.functions.mint(world.payer.address, 10**18), sender=world.owner)
    payer = ChannelClient(chain, world.payer)
    channel = payer.open(world.payout.address, 10**6, asset=token.address)
    payee = ChannelClient(chain, world.payout)
    payee.receive(payer.sign(channel.channel_id, 2_000))
    payee.redeem()
    assert payee.channel(channel.channel_id).redeemed == 2_000
    # Agent A is priced in the native coin: 2,000 units of a token are not 2,000 wei.
    refused(
        "reputation: the channel is not in the agent's price asset",
        world,
        world.payer,
        world.receipt(channel.channel_id, 1, 2_000),
        90,
    )


def test_a_delegated_channels_feedback_is_the_delegators(world: World) -> None:
    delegated, delegation_id = world.open_delegated(paid=3_000)
    # The session key made the calls and rates one for the delegator, whose money paid.
    (event,) = world.feedback_events(
        world.give(world.session_key, world.receipt(delegated.channel_id, 1, 1_000), 70)
    )
    assert event["client"] == world.payer.address
    functions = world.reputation.functions
    assert functions.getLastIndex(world.agent, world.payer.address).call() == 1
    assert functions.getLastIndex(world.agent, world.session_key.address).call() == 0
    # The delegator rates another call itself.
    world.give(world.payer, world.receipt(delegated.channel_id, 2, 1_000), 90)
    # Revoking the delegation takes the session key's voice; the delegator keeps its own.
    DelegationClient(world.chain, world.payer).revoke(delegation_id)
    third = world.receipt(delegated.channel_id, 3, 1_000)
    refused("reputation: only the channel's payer can rate its calls", world, world.session_key, third, 10)
    world.give(world.payer, third, 80)
    assert functions.getLastIndex(world.agent, world.payer.address).call() == 3
    assert world.totals() == (3, 3_000, (70 + 90 + 80) * 1_000)


def test_feedback_uri_is_logged_not_stored_and_gas_is_bounded(world: World) -> None:
    paid = world.open(world.payer, paid=2_000)
    first = world.give(world.payer, world.receipt(paid.channel_id, 1, 1_000), 90)
    uri = "https://r.example/" + "x" * 2_000
    second = world.give(world.payer, world.receipt(paid.channel_id, 2, 1_000), 80, uri=uri)
    (event,) = world.feedback_events(second)
    assert event["feedback_uri"] == uri
    # The first feedback of an agent, a client and a channel writes eight new storage words (the call's flag,
    # the channel's used weight, the client's index, the feedback's two without a tag, the agent's three
    # totals); a later one on the same channel writes three and updates five. The URI costs only calldata and
    # log data.
    assert int(first["gasUsed"]) < 250_000
    assert int(second["gasUsed"]) < 220_000


def test_a_reputation_contract_bound_to_another_registry_or_channels_is_refused(world: World) -> None:
    chain = world.chain
    channels = chain.contract("PaymentChannels")
    other_registry = chain.deploy("AgentRegistry", chain.settings.unbonding_delay, sender=world.owner)
    stranger_reputation = chain.deploy(
        "Reputation", other_registry.address, channels.address, sender=world.owner
    )
    with pytest.raises(ChainError, match="reads the AgentRegistry at"):
        chain.use("Reputation", stranger_reputation.address)
    other_channels = chain.deploy(
        "PaymentChannels",
        chain.settings.challenge_period,
        world.registry.contract.address,
        sender=world.owner,
    )
    wrong_channels = chain.deploy(
        "Reputation", world.registry.contract.address, other_channels.address, sender=world.owner
    )
    with pytest.raises(ChainError, match="reads the PaymentChannels at"):
        chain.use("Reputation", wrong_channels.address)
    # motet's own deployment passes the same check.
    assert chain.use("Reputation", world.reputation.address).address == world.reputation.address
    with pytest.raises(TransactionReverted, match="registry is the zero address"):
        chain.deploy("Reputation", "0x" + "00" * 20, channels.address, sender=world.owner)


def test_receipt_fields_match_the_signed_struct(world: World) -> None:
    # The contract recovers the same signer as the Python verifier for the same receipt.
    paid = world.open(world.payer, paid=AGENT_PRICE)
    receipt = world.receipt(paid.channel_id, 7, AGENT_PRICE)
    assert fields(receipt)[4] == 7
    (event,) = world.feedback_events(world.give(world.payer, receipt, 55))
    assert (event["channel_id"], event["seq"], event["weight"]) == (paid.channel_id, 7, AGENT_PRICE)
