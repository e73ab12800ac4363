"""One channel's whole life through `ChannelClient`, on the embedded chain and on anvil."""

from __future__ import annotations

import pytest

from motet.chain import Chain
from motet.errors import (
    ChannelFundsExhausted,
    InvalidAmount,
    InvalidVoucher,
    TransactionReverted,
    VoucherNotAboveHighest,
)
from motet.payments import ChannelClient, Ledger


@pytest.fixture(params=["embedded", "anvil"])
def any_chain(request: pytest.FixtureRequest) -> Chain:
    if request.param == "embedded":
        return Chain.embedded()
    node: Chain = request.getfixturevalue("anvil_chain")
    return node


def test_channel_lifecycle(any_chain: Chain) -> None:
    chain = any_chain
    payer_account, payee_account = chain.accounts[6], chain.accounts[7]
    payer = ChannelClient(chain, payer_account, Ledger())
    payee = ChannelClient(chain, payee_account, Ledger())
    price, calls = 1_000, 50

    channel = payer.open(payee.address, price * calls)
    assert (channel.payer, channel.payee, channel.deposit, channel.redeemed) == (
        payer.address,
        payee.address,
        price * calls,
        0,
    )
    for _ in range(calls):
        assert payee.receive(payer.pay(channel.channel_id, price)) == price
    with pytest.raises(ChannelFundsExhausted, match=f"channel {hex(channel.channel_id)} has 0 wei left"):
        payer.pay(channel.channel_id, price)
    top = payer.ledger.highest_signed(payer.domain, channel.channel_id)
    assert top is not None
    with pytest.raises(VoucherNotAboveHighest):
        payer.sign(channel.channel_id, top.cumulative_amount)
    with pytest.raises(InvalidVoucher, match="replay"):
        payee.receive(top)

    before = chain.balance(payee.address)
    relayer = ChannelClient(chain, chain.accounts[8], payee.ledger)
    (redemption,) = relayer.redeem()
    assert redemption.paid == price * calls
    assert chain.balance(payee.address) - before == price * calls
    assert relayer.redeem() == []  # nothing left to redeem

    payer.topup(channel.channel_id, 5 * price)
    payee.receive(payer.pay(channel.channel_id, 2 * price))
    closes_at = payer.close(channel.channel_id)
    assert closes_at > chain.timestamp()
    (late,) = payee.redeem()  # the payee may still redeem during the challenge period
    assert late.paid == 2 * price
    with pytest.raises(TransactionReverted, match="challenge period is not over: it ends at"):  # and when
        payer.settle(channel.channel_id)
    chain.advance_time(chain.settings.challenge_period)
    payer_before = chain.balance(payer.address)
    refund = ChannelClient(chain, chain.accounts[9]).settle(channel.channel_id)  # anyone may settle
    assert refund == 3 * price
    assert chain.balance(payer.address) - payer_before == 3 * price
    state = payer.channel(channel.channel_id)
    assert state.settled and state.redeemed == price * calls + 2 * price
    with pytest.raises(InvalidVoucher, match="settled"):
        payee.verify(top)


@pytest.mark.parametrize("amount", [0, -5])
def test_a_payment_of_nothing_is_refused_and_signs_nothing(chain: Chain, amount: int) -> None:
    payer = ChannelClient(chain, chain.accounts[6], Ledger())
    channel = payer.open(chain.accounts[7].address, 1_000)
    with pytest.raises(InvalidAmount, match="a payment must be more than 0 wei"):
        payer.pay(channel.channel_id, amount)
    assert payer.ledger.highest_signed(payer.domain, channel.channel_id) is None
