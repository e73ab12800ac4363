"""Attacks on channels and delegations, through `ChannelClient` and `DelegationClient` on the embedded chain.

Each test sends the attack and asserts the safe outcome: the attacker gains nothing, nobody pays what was not
owed, what is owed stays redeemable, and the refusal names its reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from support.channels import CONTRACTS_DIR
from web3.contract import Contract
from web3.logs import DISCARD

from motet.chain import NATIVE_ASSET, Chain
from motet.errors import ChainError, TransactionReverted
from motet.payments import (
    ChannelClient,
    Delegation,
    DelegationClient,
    Ledger,
    Voucher,
    sign_typed,
)
from motet.payments._eip712 import keccak

HOUR = 3600


def register_agent(chain: Chain, payout: str, capabilities: tuple[str, ...] = ("summarize",)) -> int:
    """Register an agent paying `payout` (owned by account 9); returns its id."""
    registry = chain.contract("AgentRegistry")
    call = registry.functions.register(
        "data:,agent", payout, NATIVE_ASSET, 1, [keccak(c.encode()) for c in capabilities]
    )
    receipt = chain.send(call, sender=chain.accounts[9])
    (event,) = registry.events.AgentRegistered().process_receipt(receipt, errors=DISCARD)
    return int(event["args"]["agent_id"])


@dataclass
class Delegated:
    """A wallet (account 1) with 10,000 wei in its balance, delegated to a session key (account 2), and two
    registered agents paying accounts 3 and 4 ("summarize")."""

    chain: Chain
    wallet: LocalAccount
    session: LocalAccount
    delegation_id: bytes
    payer: ChannelClient
    agents: dict[str, int]

    def agent(self, index: int) -> ChannelClient:
        return ChannelClient(self.chain, self.chain.accounts[3 + index], Ledger())

    def open(
        self, payout: str, deposit: int, capability: str = "summarize", agent_id: int | None = None
    ) -> int:
        agent_id = self.agents.get(payout, 0) if agent_id is None else agent_id
        state = self.payer.open(
            payout, deposit, delegation=self.delegation_id, agent_id=agent_id, capability=capability
        )
        return state.channel_id

    def spent(self) -> int:
        state = DelegationClient(self.chain).state(self.delegation_id)
        assert state is not None
        return state.spent

    def balance(self) -> int:
        return DelegationClient(self.chain).balance(self.wallet.address)


def delegate(
    chain: Chain, cap: int = 5_000, capabilities: tuple[str, ...] = ("summarize",), lifetime: int = HOUR
) -> Delegated:
    wallet, session = chain.accounts[1], chain.accounts[2]
    wallet_client = DelegationClient(chain, wallet)
    wallet_client.deposit(10_000)
    now = chain.timestamp()
    delegation = Delegation(
        delegator=wallet.address,
        session_key=session.address,
        cap=cap,
        valid_after=now - 1,
        expiry=now + lifetime,
        capabilities=capabilities,
        nonce=1,
    )
    signature = sign_typed(bytes(wallet.key), delegation.digest(wallet_client.domain))
    delegation_id = DelegationClient(chain, session).register(delegation, signature)
    agents: dict[str, int] = {
        chain.accounts[i].address: register_agent(chain, chain.accounts[i].address) for i in (3, 4)
    }
    return Delegated(chain, wallet, session, delegation_id, ChannelClient(chain, session, Ledger()), agents)


def wallet_call(chain: Chain, wallet: Contract, owner: LocalAccount, call: Any, value: int = 0) -> Any:
    """Have the contract `wallet` send `call` (a bound contract function) with `value`, as its owner asks."""
    data = bytes.fromhex(call._encode_transaction_data().removeprefix("0x"))
    return chain.send(wallet.functions.execute(call.address, value, data), sender=owner, value=value)


def flip_v(voucher: Voucher) -> Voucher:
    return dataclasses.replace(
        voucher, signature=voucher.signature[:64] + bytes((55 - voucher.signature[64],))
    )


# -- item 2: batches ------------------------------------------------------------------------------------


def test_one_bad_voucher_does_not_block_the_batch(chain: Chain) -> None:
    agent = ChannelClient(chain, chain.accounts[3], Ledger())
    honest = ChannelClient(chain, chain.accounts[1], Ledger())
    hostile = ChannelClient(chain, chain.accounts[2], Ledger())
    first = honest.open(agent.address, 1_000).channel_id
    second = hostile.open(agent.address, 1_000).channel_id
    agent.receive(honest.pay(first, 300))
    bad = flip_v(hostile.pay(second, 500))  # the contract recovers another signer: it cannot pay
    forged = ChannelClient(chain, chain.accounts[5], Ledger())._signer.sign(second, 600)  # not the payer's
    before = chain.balance(agent.address)

    (redemption,) = ChannelClient(chain, chain.accounts[8], agent.ledger).redeem(
        [*agent.ledger.unredeemed(agent.domain), bad, forged]
    )

    assert redemption.paid == 300
    assert [(r.channel_id, r.reason) for r in redemption.rejected] == [
        (second, "voucher not signed by the payer"),
        (second, "voucher not signed by the payer"),
    ]
    assert chain.balance(agent.address) == before + 300
    assert agent.channel(second).redeemed == 0  # the hostile channel paid nothing, and nobody lost anything
    assert agent.channel(first).redeemed == 300


def test_payee_that_rejects_the_coin_does_not_block_others(chain: Chain) -> None:
    owner, rescue = chain.accounts[5], chain.accounts[6]
    wallet = chain.deploy(CONTRACTS_DIR / "RejectingWallet.vy", owner.address)
    payer = ChannelClient(chain, chain.accounts[1], Ledger())
    other = chain.accounts[3].address
    to_wallet = payer.open(wallet.address, 1_000).channel_id
    to_other = payer.open(other, 1_000).channel_id
    vouchers = [payer.pay(to_wallet, 400), payer.pay(to_other, 250)]
    other_before = chain.balance(other)

    # The payer settles its run: one batch for both agents, as the composer's payer does.
    (redemption,) = payer.redeem(vouchers)

    assert (redemption.paid, redemption.credited, redemption.rejected) == (650, 400, ())
    assert chain.balance(other) == other_before + 250
    assert chain.balance(wallet.address) == 0
    channels = payer.contract
    assert channels.functions.balances(wallet.address, NATIVE_ASSET).call() == 400
    # The wallet takes what it is owed to an address that accepts the coin.
    wallet_call(chain, wallet, owner, channels.functions.withdraw_to(NATIVE_ASSET, 400, rescue.address))
    assert channels.functions.balances(wallet.address, NATIVE_ASSET).call() == 0
    assert chain.balance(channels.address) == channels.functions.total_owed(NATIVE_ASSET).call() == 1_350


def test_contract_wallet_that_rejects_the_coin_settles_and_recovers(chain: Chain) -> None:
    owner, rescue, agent = chain.accounts[5], chain.accounts[6], chain.accounts[3]
    wallet = chain.deploy(CONTRACTS_DIR / "RejectingWallet.vy", owner.address)
    channels = chain.contract("PaymentChannels")
    receipt = wallet_call(
        chain, wallet, owner, channels.functions.open(agent.address, NATIVE_ASSET, 0), 1_000
    )
    (opened,) = channels.events.ChannelOpened().process_receipt(receipt, errors=DISCARD)
    channel_id = int(opened["args"]["channel_id"])
    payee = ChannelClient(chain, agent, Ledger())
    wallet_call(chain, wallet, owner, channels.functions.close(channel_id))
    chain.advance_time(chain.settings.challenge_period)

    refund = ChannelClient(chain, chain.accounts[8]).settle(channel_id)  # anyone settles; the push fails

    assert refund == 1_000
    assert payee.channel(channel_id).settled
    assert channels.functions.balances(wallet.address, NATIVE_ASSET).call() == 1_000
    with pytest.raises(TransactionReverted):  # to itself it still cannot receive the coin
        wallet_call(chain, wallet, owner, channels.functions.withdraw(NATIVE_ASSET, 1_000))
    before = chain.balance(rescue.address)
    wallet_call(chain, wallet, owner, channels.functions.withdraw_to(NATIVE_ASSET, 1_000, rescue.address))
    assert chain.balance(rescue.address) == before + 1_000
    assert chain.balance(channels.address) == channels.functions.total_owed(NATIVE_ASSET).call() == 0


# -- item 4: delegations --------------------------------------------------------------------------------


def test_wallet_cannot_revoke_to_take_back_delivered_money(chain: Chain) -> None:
    setup = delegate(chain, lifetime=600)
    agent = setup.agent(0)
    channel_id = setup.open(agent.address, 1_000)
    assert agent.receive(setup.payer.pay(channel_id, 400)) == 400  # the work was delivered and paid for

    DelegationClient(chain, setup.wallet).revoke(setup.delegation_id)  # then the wallet revokes
    wallet = ChannelClient(chain, setup.wallet, Ledger())
    wallet.close(channel_id)  # and closes at once, hoping to settle before the agent redeems

    assert agent.receive(setup.payer.pay(channel_id, 100)) == 100  # placed money: still good
    chain.advance_time(601)  # the delegation also expires meanwhile
    before = chain.balance(agent.address)
    (redemption,) = ChannelClient(chain, chain.accounts[8], agent.ledger).redeem()
    assert redemption.paid == 500 and not redemption.rejected
    assert chain.balance(agent.address) == before + 500
    chain.advance_time(chain.settings.challenge_period - 601)
    assert wallet.settle(channel_id) == 500  # the wallet gets back only what was never owed
    assert setup.balance() == 10_000 - 1_000 + 500


def test_session_key_cannot_pay_itself(chain: Chain) -> None:
    setup = delegate(chain)
    # The session key registers itself (and the wallet's own address) as agents with the delegated capability.
    for payout in (setup.session.address, setup.wallet.address):
        setup.agents[payout] = register_agent(chain, payout)
    with pytest.raises(TransactionReverted, match="payee is the session key"):
        setup.open(setup.session.address, 1_000)
    with pytest.raises(TransactionReverted, match="payer and payee are the same"):
        setup.open(setup.wallet.address, 1_000)
    assert (setup.spent(), setup.balance()) == (0, 10_000)


def test_session_key_cannot_pay_unregistered_or_off_capability_agent(chain: Chain) -> None:
    setup = delegate(chain)
    stranger = chain.accounts[5].address
    off_capability = register_agent(chain, stranger, ("translate",))
    agent = chain.accounts[3].address
    refused = "payee is not an active agent registered with that capability"
    attempts: list[tuple[Callable[[], object], str]] = [
        (lambda: setup.open(stranger, 100, agent_id=0), refused),  # not registered at all
        (lambda: setup.open(stranger, 100, agent_id=off_capability), refused),  # registered, other capability
        (lambda: setup.open(stranger, 100, agent_id=setup.agents[agent]), refused),  # borrowing an agent's id
        (lambda: setup.open(agent, 100, capability="translate"), "capability not delegated"),
    ]
    for attempt, reason in attempts:
        with pytest.raises(TransactionReverted, match=reason):
            attempt()
    registry = chain.contract("AgentRegistry")
    chain.send(registry.functions.set_active(setup.agents[agent], False), sender=chain.accounts[9])
    with pytest.raises(TransactionReverted, match=refused):  # a deactivated agent
        setup.open(agent, 100)
    assert (setup.spent(), setup.balance()) == (0, 10_000)


def test_cap_counts_money_placed_across_channels(chain: Chain) -> None:
    setup = delegate(chain, cap=1_500)
    first_agent, second_agent = setup.agent(0), setup.agent(1)
    first = setup.open(first_agent.address, 1_000)
    second = setup.open(second_agent.address, 500)
    assert setup.spent() == 1_500
    with pytest.raises(TransactionReverted, match="delegation cap exceeded"):
        setup.payer.topup(first, 1)
    with pytest.raises(TransactionReverted, match="delegation cap exceeded"):
        setup.open(second_agent.address, 1)
    assert (setup.spent(), setup.balance()) == (1_500, 8_500)
    # Everything placed is payable, on both channels, though the cap is reached.
    assert first_agent.receive(setup.payer.pay(first, 1_000)) == 1_000
    assert second_agent.receive(setup.payer.pay(second, 500)) == 500
    assert first_agent.redeem()[0].paid == 1_000
    assert second_agent.redeem()[0].paid == 500


# -- item 14: a copy of the contract with other immutables ----------------------------------------------


def test_copy_with_short_challenge_period_is_refused(chain: Chain) -> None:
    registry = chain.contract("AgentRegistry")
    genuine = chain.contract("PaymentChannels")
    copy = chain.deploy("PaymentChannels", 1, registry.address)  # same code, a 1-second challenge period
    assert (
        bytes(chain.w3.eth.get_code(copy.address))[:100]
        == bytes(chain.w3.eth.get_code(genuine.address))[:100]
    )

    with pytest.raises(ChainError, match="its challenge period is 1 s, but motet's is 3600 s"):
        chain.use("PaymentChannels", copy.address)
    other_registry = chain.deploy("AgentRegistry", chain.settings.unbonding_delay)
    elsewhere = chain.deploy("PaymentChannels", chain.settings.challenge_period, other_registry.address)
    with pytest.raises(ChainError, match=f"pays agents of the registry {other_registry.address}"):
        chain.use("PaymentChannels", elsewhere.address)
    assert chain.use("PaymentChannels", genuine.address).address == genuine.address
    # A fresh client (no registry known yet) refuses a copy whose registry has another unbonding delay.
    odd_registry = chain.deploy("AgentRegistry", 5)
    odd = chain.deploy("PaymentChannels", chain.settings.challenge_period, odd_registry.address)
    fresh = Chain(chain.w3, chain.accounts, kind="embedded")
    with pytest.raises(ChainError, match="unbonding delay is 5 s"):
        fresh.use("PaymentChannels", odd.address)
