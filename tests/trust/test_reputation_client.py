"""`Reputation`, the Python client: it refuses bad input before sending, surfaces the contract's refusals as
typed errors, and reads the payment-weighted summary exactly."""

from __future__ import annotations

from dataclasses import replace

import pytest
from support.reputation import World

from motet.errors import InvalidReceipt, TransactionReverted
from motet.payments import ReceiptDomain, ReceiptSigner
from motet.trust import Reputation, ReputationSummary
from motet.trust._reputation import tag_bytes, tag_text


def test_payers_give_feedback_and_the_summary_is_their_payment_weighted_score(world: World) -> None:
    first = world.open(world.payer, paid=2_000)
    second = world.open(world.payer2, paid=1_000)
    Reputation(world.chain, world.payer).give(
        world.agent, world.receipt(first.channel_id, 1, 2_000), 90, tag="x"
    )
    reputation = Reputation(world.chain, world.payer2)
    assert not reputation.rated(second.channel_id, 1)
    reputation.give(world.agent, world.receipt(second.channel_id, 1, 1_000), 40, uri="https://r.example/1")

    summary = reputation.summary(world.agent)
    assert summary == ReputationSummary(count=2, weight=3_000, score=(90 * 2_000 + 40 * 1_000) / 3_000)
    assert summary.rated and round(summary.score, 3) == 73.333
    assert reputation.rated(second.channel_id, 1)
    assert reputation.last_index(world.agent, world.payer.address) == 1
    assert reputation.last_index(world.agent, world.stranger.address.lower()) == 0
    unrated = reputation.summary(world.agent_b)
    assert unrated == ReputationSummary(count=0, weight=0, score=0.0) and not unrated.rated


def test_the_contracts_refusals_come_back_as_transaction_reverted_with_the_reason(world: World) -> None:
    paid = world.open(world.payer, paid=1_000)
    receipt = world.receipt(paid.channel_id, 1, 1_000)
    with pytest.raises(TransactionReverted, match="only the channel's payer can rate its calls"):
        Reputation(world.chain, world.stranger).give(world.agent, receipt, 90)
    Reputation(world.chain, world.payer).give(world.agent, receipt, 90)
    with pytest.raises(TransactionReverted, match="this call was already rated"):
        Reputation(world.chain, world.payer).give(world.agent, receipt, 50)
    unredeemed = world.open(world.payer, paid=1_000, redeem=False)
    with pytest.raises(TransactionReverted, match="nothing was redeemed on this channel"):
        Reputation(world.chain, world.payer).give(
            world.agent, world.receipt(unredeemed.channel_id, 1, 1_000), 50
        )
    with pytest.raises(TransactionReverted, match="unknown agent"):
        Reputation(world.chain, world.payer).give(99, receipt, 50)


def test_bad_input_is_refused_before_anything_is_sent(world: World) -> None:
    paid = world.open(world.payer, paid=1_000)
    receipt = world.receipt(paid.channel_id, 1, 1_000)
    reputation = Reputation(world.chain, world.payer)
    nonce = world.chain.w3.eth.get_transaction_count(world.payer.address)

    for score in (-1, 101, True, 50.0, "90"):
        with pytest.raises(ValueError, match="score"):
            reputation.give(world.agent, receipt, score)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="33 bytes"):
        reputation.give(world.agent, receipt, 90, tag="t" * 33)
    with pytest.raises(ValueError, match="NUL"):
        reputation.give(world.agent, receipt, 90, tag="a\x00b")
    with pytest.raises(ValueError, match="uri"):
        reputation.give(world.agent, receipt, 90, uri="x" * 2_049)
    # A receipt signed by someone else than the agent's payout, or for another chain or channels contract.
    with pytest.raises(InvalidReceipt, match="not by"):
        reputation.give(world.agent, world.receipt(paid.channel_id, 1, 1_000, signer=world.payer), 90)
    elsewhere = ReceiptDomain(world.chain.chain_id + 1, world.domain.contract)
    foreign = ReceiptSigner(bytes(world.payout.key), elsewhere).sign(
        receipt.request_hash, receipt.response_hash, 1_000, paid.channel_id, 1, receipt.model_ref
    )
    with pytest.raises(InvalidReceipt, match="this chain's reputation takes receipts"):
        reputation.give(world.agent, foreign, 90)
    with pytest.raises(InvalidReceipt, match="signed by"):
        reputation.give(world.agent, replace(receipt, price=2_000), 90)
    with pytest.raises(InvalidReceipt, match="expected a Receipt"):
        reputation.give(world.agent, receipt.to_dict(), 90)  # type: ignore[arg-type]

    assert world.chain.w3.eth.get_transaction_count(world.payer.address) == nonce
    reputation.give(world.agent, receipt, 100, tag="t" * 32, uri="x" * 2_048)
    assert world.chain.w3.eth.get_transaction_count(world.payer.address) == nonce + 1


def test_tags_are_at_most_32_bytes_and_read_back() -> None:
    assert tag_text(tag_bytes("summarize")) == "summarize"
    assert tag_text(tag_bytes("é" * 16)) == "é" * 16
    assert tag_bytes("") == bytes(32)
    with pytest.raises(ValueError, match="34 bytes"):
        tag_bytes("é" * 17)
