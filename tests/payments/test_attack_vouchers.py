"""Attacks on vouchers: a payer who signs something the agent accepts off chain but the contract refuses."""

from __future__ import annotations

import dataclasses

import pytest

from motet.chain import Chain
from motet.errors import InvalidVoucher, TransactionReverted
from motet.payments import ChannelClient, Ledger


def test_v_flipped_voucher_is_refused_off_chain_like_on_chain(chain: Chain) -> None:
    payer = ChannelClient(chain, chain.accounts[6], Ledger())
    payee = ChannelClient(chain, chain.accounts[7], Ledger())
    channel = payer.open(payee.address, 10_000)
    first = payer.pay(channel.channel_id, 1_000)
    assert payee.receive(first) == 1_000  # the payer's public key is now cached by the payee's verifier

    honest = payer.pay(channel.channel_id, 1_000)
    flipped = dataclasses.replace(
        honest, signature=honest.signature[:64] + bytes((55 - honest.signature[64],))
    )
    # The same (r, s) with v flipped passes a bare ECDSA verify against the cached key, but recovers another
    # address: the contract refuses it, and so must the agent, before it serves anything for it.
    with pytest.raises(InvalidVoucher, match="not signed by the payer"):
        payee.receive(flipped)
    with pytest.raises(TransactionReverted, match="not signed by payer"):
        chain.send(
            payee.contract.functions.redeem(channel.channel_id, flipped.cumulative_amount, flipped.signature),
            sender=payee.account,
        )
    # Nothing was recorded from it: the agent's highest voucher is still one the contract pays.
    highest = payee.ledger.highest_received(payee.domain, channel.channel_id)
    assert highest is not None and highest.signature == first.signature
    (redemption,) = payee.redeem()
    assert redemption.paid == 1_000
    assert payee.receive(honest) == 1_000  # the honest voucher still pays
