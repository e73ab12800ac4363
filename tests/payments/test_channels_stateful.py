"""A stateful property test of PaymentChannels: random sequences of operations against a Python model.

The machine opens channels in the native coin and in an ERC-20, tops them up, signs and redeems vouchers
(below, at and above what was redeemed, and beyond the deposit; alone and in batches, where a bad voucher is
skipped; now and then signed by the wrong key), closes, moves time around the challenge deadlines, settles,
and pokes settled channels. A delegator keeps balances (deposit, withdraw) and two delegations to a session
key (one native with one capability, one in the token with "*"): the session key opens channels to payees
that are or are not registered agents, with delegated or other capabilities, and tops them up; the delegator
revokes, and time runs past expiry. A contract wallet that rejects the native coin is a payee: its payouts
are credited to its balance, which it withdraws to another address.

For each transaction the model predicts either the exact revert string or the exact payout; after every
step the chain must equal the model, and P1 (solvency, balances included), P2 (monotonic), P6 (one-shot),
D1 (the sum placed under a delegation is its `spent`, within its cap), D4 (every delegated channel pays a
registered agent, never the session key or the delegator) and D5 (money placed in an open delegated channel
stays redeemable after revocation or expiry) must hold. Each example starts from the same snapshot of the
session's chain.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from support.channels import CONTRACTS_DIR

from motet.payments import Delegation, sign_typed
from motet.payments._eip712 import keccak

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from support.channels import Env
    from web3.contract import Contract

MAX_CHANNELS = 6
SETTLED = "channels: channel is settled"
NOT_REGISTERED = "channels: payee is not an active agent registered with that capability"
CAPABILITIES = ["summarize", "translate", "draw"]  # the agents declare the first two
REJECT_CODES = {
    "channels: unknown channel": 1,
    SETTLED: 2,
    "channels: challenge period over": 3,
    "channels: voucher not above redeemed": 4,
    "channels: deposit exhausted": 5,
    "channels: voucher not signed by payer": 10,
    "channels: voucher not signed by the delegation's session key": 11,
}

channel_index = st.integers(min_value=0, max_value=63)
# Mostly positive; zero (a revert) about one time in ten.
amounts = st.sampled_from([False] * 9 + [True]).flatmap(
    lambda zero: st.just(0) if zero else st.integers(min_value=1, max_value=3_000)
)
# How a voucher's cumulative amount relates to the channel: below, at or above what was redeemed, or
# above the whole deposit; `delta` is the distance.
voucher_kinds = st.sampled_from(["below", "at", "above", "above", "beyond"])
deltas = st.integers(min_value=1, max_value=1_500)
forged = st.sampled_from([False, False, False, True])
# A batch skips its bad vouchers and pays the rest.
batch_kinds = st.sampled_from(["above", "above", "above", "beyond", "at"])
batch_forged = st.sampled_from([False] * 4 + [True])
senders = st.sampled_from(["payer", "payer", "session", "other"])
# When to act on a closing channel: now, or one second before, at, or one second after its deadline (if
# that is still ahead). This puts the challenge-window boundaries (P5) into most examples.
moments = st.sampled_from(["now", -1, 0, 1])


@dataclass
class Expected:
    """What the model says one channel holds."""

    payer: LocalAccount
    payee: LocalAccount | Contract
    token: str
    deposit: int
    redeemed: int = 0
    closes_at: int = 0
    settled: bool = False
    delegation: int | None = None
    """The index of the delegation it was opened under (its vouchers are the session key's), or None."""

    @property
    def refunded(self) -> int:
        return self.deposit - self.redeemed if self.settled else 0

    @property
    def owed(self) -> int:
        return 0 if self.settled else self.deposit - self.redeemed

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.payer.address,
            self.payee.address,
            self.token,
            self.deposit,
            self.redeemed,
            self.closes_at,
            self.settled,
        )


@dataclass
class Delegated:
    """What the model says one delegation holds."""

    delegation_id: bytes
    asset: str
    cap: int
    expiry: int
    capabilities: tuple[str, ...]
    placed: int = 0
    revoked: bool = False

    def problem(self, now: int) -> str | None:
        """Why the contract refuses new money under it now (it is valid from before the first step)."""
        if self.revoked:
            return "channels: delegation revoked"
        if now >= self.expiry:
            return "channels: delegation expired"
        return None

    def allows(self, capability: str) -> bool:
        return "*" in self.capabilities or capability in self.capabilities


def redeem_outcome(channel: Expected, cumulative: int, now: int, forged: bool) -> tuple[str | None, int]:
    """The revert string, or None and the amount paid: the contract's checks, in its order."""
    if channel.settled:
        return SETTLED, 0
    if channel.closes_at and now >= channel.closes_at:
        return "channels: challenge period over", 0
    if cumulative <= channel.redeemed:
        return "channels: voucher not above redeemed", 0
    if channel.redeemed >= channel.deposit:
        return "channels: deposit exhausted", 0
    if forged:
        if channel.delegation is not None:
            return "channels: voucher not signed by the delegation's session key", 0
        return "channels: voucher not signed by payer", 0
    return None, min(cumulative, channel.deposit) - channel.redeemed


class ChannelsMachine(RuleBasedStateMachine):
    def __init__(self, env: Env, wallet: Contract) -> None:
        super().__init__()
        self.env = env
        self.snapshot = env.chain.snapshot()
        accounts = env.chain.accounts
        self.payers = [accounts[1], accounts[4], accounts[7]]  # funded and approved by the fixture
        self.payees = [accounts[2], accounts[5], accounts[6]]  # 2 and 5 are registered agents, 6 is not
        self.relayer = accounts[3]
        self.delegator = accounts[1]
        self.session = accounts[8]
        self.wallet = wallet  # a contract payee that rejects the native coin; accounts[9] owns it
        self.wallet_owner = accounts[9]
        self.assets = [env.native, env.token.address]
        self.delegations: list[Delegated] = []
        self.balances: Counter[tuple[str, str]] = Counter()
        """The contract's `balances`, by (owner, asset)."""
        self.model: dict[int, Expected] = {}
        self.last_redeemed: dict[int, int] = {}
        self.clock = 0
        self.channel_count_at_start = env.channels.functions.channel_count().call()

    def teardown(self) -> None:
        self.env.chain.revert(self.snapshot)

    # -- helpers ---------------------------------------------------------------------------------------

    def _now(self) -> int:
        """Pin the timestamp of the next transaction and return it."""
        self.clock = max(self.clock, self.env.pending_timestamp())
        self.env.chain.set_next_timestamp(self.clock)
        return self.clock

    def _move_to(self, channel: Expected, moment: str | int) -> None:
        """Let time run to `moment` seconds from `channel`'s deadline, if it is closing and that is ahead."""
        if moment != "now" and channel.closes_at and not channel.settled:
            assert isinstance(moment, int)
            self.clock = max(self.clock, self.env.pending_timestamp(), channel.closes_at + moment)

    def _pick(self, index: int) -> tuple[int, Expected]:
        channel_id = sorted(self.model)[index % len(self.model)]
        return channel_id, self.model[channel_id]

    def _cumulative(self, channel: Expected, kind: str, delta: int) -> int:
        return {
            "below": max(channel.redeemed - delta, 0),
            "at": channel.redeemed,
            "above": channel.redeemed + delta,
            "beyond": channel.deposit + delta,
        }[kind]

    def _balance(self, account: LocalAccount | Contract, asset: str) -> int:
        if asset == self.env.native:
            return self.env.balance(account)
        return self.env.balance(account, self.env.token)

    def _voucher(self, channel_id: int, channel: Expected, cumulative: int, forge: bool) -> bytes:
        """The payer's (or the session key's) signature, or a forgery by the relayer (who is neither)."""
        signer = channel.payer if channel.delegation is None else self.session
        return self.env.sign(self.relayer if forge else signer, channel_id, cumulative)

    def _other(self, channel: Expected) -> LocalAccount:
        """Someone who is neither the payer nor the session key: the payee, or the relayer for the wallet."""
        return self.relayer if channel.payee is self.wallet else channel.payee  # type: ignore[return-value]

    def _paid(self, channel: Expected, amount: int) -> int:
        """Book a payout to `channel`'s payee; returns what its own balance of the asset gains. The native
        coin pushed to the wallet fails and is credited to its balance in the contract instead."""
        if channel.payee is self.wallet and channel.token == self.env.native:
            self.balances[(self.wallet.address, channel.token)] += amount
            return 0
        return amount

    def _new_channel(self, receipt: Any, channel: Expected) -> None:
        channel_id = self.channel_count_at_start + len(self.model) + 1
        assert self.env.events(receipt, "ChannelOpened") == [
            {
                "channel_id": channel_id,
                "payer": channel.payer.address,
                "payee": channel.payee.address,
                "token": channel.token,
                "deposit": channel.deposit,
            }
        ]
        self.model[channel_id] = channel
        self.last_redeemed[channel_id] = 0

    # -- rules -----------------------------------------------------------------------------------------

    @initialize(
        caps=st.tuples(st.integers(1, 4_000), st.integers(1, 4_000)),
        lifetimes=st.tuples(st.sampled_from([600, 7_200]), st.sampled_from([600, 7_200])),
        funds=st.tuples(st.integers(0, 4_000), st.integers(0, 4_000)),
    )
    def delegate(self, caps: tuple[int, int], lifetimes: tuple[int, int], funds: tuple[int, int]) -> None:
        """The delegator funds its balances and registers a native delegation ("summarize") and a token one
        ("*") to the session key."""
        env = self.env
        now = self._now()
        for asset, cap, lifetime, capabilities in zip(
            self.assets, caps, lifetimes, [("summarize",), ("*",)], strict=True
        ):
            delegation = Delegation(
                delegator=self.delegator.address,
                session_key=self.session.address,
                cap=cap,
                valid_after=now - 1,
                expiry=now + lifetime,
                capabilities=capabilities,
                nonce=len(self.delegations),
                asset=asset,
            )
            signature = sign_typed(bytes(self.delegator.key), delegation.digest(env.domain()))
            call = env.channels.functions.delegate(delegation.as_struct(), signature)
            env.send_expecting_success(call, self.relayer)
            self.delegations.append(
                Delegated(delegation.digest(env.domain()), asset, cap, now + lifetime, capabilities)
            )
        for asset, amount in zip(self.assets, funds, strict=True):
            if amount:
                self.deposit(self.assets.index(asset), amount)

    @initialize(
        payers=st.tuples(st.integers(0, 2), st.integers(0, 2)),
        payees=st.tuples(st.integers(0, 2), st.integers(0, 2)),
        deposits=st.tuples(st.integers(1, 3_000), st.integers(1, 3_000)),
        closing=st.sampled_from([None, 0, 1]),
    )
    def open_one_of_each(
        self, payers: tuple[int, int], payees: tuple[int, int], deposits: tuple[int, int], closing: int | None
    ) -> None:
        """Start with a native and an ERC-20 channel, one of them often closing already, so that every
        example has something to redeem and many reach a settle."""
        self.clock = self.env.pending_timestamp()
        for asset in (0, 1):
            self.open(payers[asset], payees[asset], asset, deposits[asset])
        if closing is not None:
            self.close(closing, "payer")

    @precondition(lambda self: len(self.model) < MAX_CHANNELS)
    @rule(payer=st.integers(0, 2), payee=st.integers(0, 4), asset=st.integers(0, 1), amount=amounts)
    def open(self, payer: int, payee: int, asset: int, amount: int) -> None:
        env, functions = self.env, self.env.channels.functions
        payer_account = self.payers[payer]
        # 3: to oneself; 4: to the contract wallet that rejects the native coin.
        candidates: list[LocalAccount | Contract] = [*self.payees, payer_account, self.wallet]
        payee_account = candidates[payee]
        token = self.assets[asset]
        value = amount if token == env.native else 0
        call = functions.open(payee_account.address, token, amount)
        self._now()
        if payee_account is payer_account:
            env.reverts("channels: payer and payee are the same", call, payer_account, value=value)
            return
        if amount == 0:
            env.reverts("channels: deposit is zero", call, payer_account, value=value)
            return
        before = self._balance(payer_account, token)
        receipt = env.send_expecting_success(call, payer_account, value=value)
        gas = env.gas_cost(receipt) if token == env.native else 0
        assert self._balance(payer_account, token) == before - amount - gas
        self._new_channel(receipt, Expected(payer_account, payee_account, token, amount))

    @precondition(lambda self: len(self.model) < MAX_CHANNELS)
    @rule(
        which=st.integers(0, 1),
        payee=st.sampled_from([0, 0, 1, 1, 2, 3, 4]),
        capability=st.sampled_from([0, 0, 0, 1, 2]),
        amount=amounts,
    )
    def open_delegated(self, which: int, payee: int, capability: int, amount: int) -> None:
        """The session key opens a channel under a delegation; D4 and the cap (D1) decide."""
        env = self.env
        delegated = self.delegations[which]
        # 0, 1: registered agents; 2: not registered; 3: the session key; 4: the delegator.
        payee_account = [*self.payees, self.session, self.delegator][payee]
        name = CAPABILITIES[capability]
        call = env.channels.functions.open_delegated(
            delegated.delegation_id,
            payee_account.address,
            env.agents.get(payee_account.address, 0),
            keccak(name.encode()),
            amount,
        )
        now = self._now()
        key = (self.delegator.address, delegated.asset)
        reason = delegated.problem(now)
        if reason is not None:
            pass
        elif payee_account is self.delegator:
            reason = "channels: payer and payee are the same"
        elif payee_account is self.session:
            reason = "channels: payee is the session key"
        elif not delegated.allows(name):
            reason = "channels: capability not delegated"
        elif payee_account.address not in env.agents or name not in ("summarize", "translate"):
            reason = NOT_REGISTERED
        elif delegated.placed + amount > delegated.cap:
            reason = "channels: delegation cap exceeded"
        elif amount == 0:
            reason = "channels: deposit is zero"
        elif self.balances[key] < amount:
            reason = "channels: balance too low"
        if reason is not None:
            env.reverts(reason, call, self.session)
            return
        receipt = env.send_expecting_success(call, self.session)
        delegated.placed += amount
        self.balances[key] -= amount
        self._new_channel(
            receipt, Expected(self.delegator, payee_account, delegated.asset, amount, delegation=which)
        )

    @rule(asset=st.integers(0, 1), amount=amounts)
    def deposit(self, asset: int, amount: int) -> None:
        """The delegator adds to its balance."""
        env = self.env
        token = self.assets[asset]
        native = token == env.native
        call = env.channels.functions.deposit(token, 0 if native else amount)
        self._now()
        if amount == 0:
            env.reverts("channels: deposit is zero", call, self.delegator, value=amount if native else 0)
            return
        receipt = env.send_expecting_success(call, self.delegator, value=amount if native else 0)
        self.balances[(self.delegator.address, token)] += amount
        assert env.events(receipt, "Deposited") == [
            {
                "owner": self.delegator.address,
                "token": token,
                "amount": amount,
                "balance": self.balances[(self.delegator.address, token)],
            }
        ]

    @rule(asset=st.integers(0, 1), amount=amounts)
    def withdraw(self, asset: int, amount: int) -> None:
        """The delegator takes part of its balance back."""
        env = self.env
        token = self.assets[asset]
        key = (self.delegator.address, token)
        call = env.channels.functions.withdraw(token, amount)
        self._now()
        if amount == 0:
            env.reverts("channels: withdrawal is zero", call, self.delegator)
            return
        if self.balances[key] < amount:
            env.reverts("channels: balance too low", call, self.delegator)
            return
        before = self._balance(self.delegator, token)
        receipt = env.send_expecting_success(call, self.delegator)
        self.balances[key] -= amount
        gas = env.gas_cost(receipt) if token == env.native else 0
        assert self._balance(self.delegator, token) == before + amount - gas

    @precondition(lambda self: self.balances[(self.wallet.address, self.env.native)] > 0)
    @rule(part=st.integers(1, 4))
    def wallet_recovers(self, part: int) -> None:
        """The wallet sends part of what was credited to it to an address that takes the coin."""
        env = self.env
        key = (self.wallet.address, env.native)
        amount = max(self.balances[key] // part, 1)
        rescue = env.deployer
        data = env.channels.functions.withdraw_to(
            env.native, amount, rescue.address
        )._encode_transaction_data()
        call = self.wallet.functions.execute(env.channels.address, 0, bytes.fromhex(data[2:]))
        self._now()
        before = env.balance(rescue)
        env.send_expecting_success(call, self.wallet_owner)
        self.balances[key] -= amount
        assert env.balance(rescue) == before + amount

    @rule(which=st.integers(0, 1))
    def revoke(self, which: int) -> None:
        """The delegator revokes: new channels and top-ups stop, placed money does not (D5)."""
        delegated = self.delegations[which]
        self._now()
        self.env.send_expecting_success(
            self.env.channels.functions.revoke(delegated.delegation_id), self.delegator
        )
        delegated.revoked = True

    @precondition(lambda self: self.model)
    @rule(index=channel_index, amount=amounts, by=senders)
    def topup(self, index: int, amount: int, by: str) -> None:
        """The payer tops up from what it sends; on a delegated channel the session key from the delegator's
        balance, within the cap; anyone else is refused."""
        env = self.env
        channel_id, channel = self._pick(index)
        sender = {"payer": channel.payer, "session": self.session, "other": self._other(channel)}[by]
        from_balance = sender is not channel.payer
        value = amount if channel.token == env.native and not from_balance else 0
        call = env.channels.functions.topup(channel_id, amount)
        now = self._now()
        delegated = None if channel.delegation is None else self.delegations[channel.delegation]
        key = (self.delegator.address, channel.token)
        reason: str | None = None
        if channel.settled:
            reason = SETTLED
        elif not from_balance:
            if channel.closes_at:
                reason = "channels: channel is closing"
            elif amount == 0:
                reason = "channels: deposit is zero"
        elif delegated is None:
            reason = "channels: caller is not the payer"
        elif delegated.problem(now) is not None:
            reason = delegated.problem(now)
        elif sender is not self.session:
            reason = "channels: caller is not the delegation's session key"
        elif channel.closes_at:
            reason = "channels: channel is closing"
        elif delegated.placed + amount > delegated.cap:
            reason = "channels: delegation cap exceeded"
        elif amount == 0:
            reason = "channels: deposit is zero"
        elif self.balances[key] < amount:
            reason = "channels: balance too low"
        if reason is not None:
            env.reverts(reason, call, sender, value=value)
            return
        receipt = env.send_expecting_success(call, sender, value=value)
        channel.deposit += amount
        if from_balance:
            assert delegated is not None
            delegated.placed += amount
            self.balances[key] -= amount
        assert env.events(receipt, "ChannelToppedUp") == [
            {"channel_id": channel_id, "amount": amount, "deposit": channel.deposit}
        ]

    @precondition(lambda self: self.model)
    @rule(index=channel_index, kind=voucher_kinds, delta=deltas, forge=forged, moment=moments)
    def redeem(self, index: int, kind: str, delta: int, forge: bool, moment: str | int) -> None:
        env = self.env
        channel_id, channel = self._pick(index)
        self._move_to(channel, moment)
        cumulative = self._cumulative(channel, kind, delta)
        call = env.channels.functions.redeem(
            channel_id, cumulative, self._voucher(channel_id, channel, cumulative, forge)
        )
        reason, pay = redeem_outcome(channel, cumulative, self._now(), forge)
        if reason is not None:
            env.reverts(reason, call, self.relayer)
            return
        redeemed_before = env.channel(channel_id)[4]
        payee_before = self._balance(channel.payee, channel.token)
        gained = self._paid(channel, pay)
        receipt = env.send_expecting_success(call, self.relayer)
        # P2: an accepted voucher is strictly above what was redeemed before it.
        assert cumulative > redeemed_before
        channel.redeemed += pay
        assert env.events(receipt, "VoucherRedeemed") == [
            {
                "channel_id": channel_id,
                "payee": channel.payee.address,
                "cumulative_amount": cumulative,
                "paid": pay,
                "redeemed": channel.redeemed,
            }
        ]
        assert self._balance(channel.payee, channel.token) == payee_before + gained

    @precondition(lambda self: self.model)
    @rule(picks=st.lists(st.tuples(channel_index, batch_kinds, deltas, batch_forged), min_size=1, max_size=4))
    def redeem_many(self, picks: list[tuple[int, str, int, bool]]) -> None:
        env = self.env
        now = self._now()
        batch, paid, rejected = [], [], []
        gained: Counter[tuple[str, str]] = Counter()
        payees: dict[tuple[str, str], Expected] = {}
        for index, kind, delta, forge in picks:
            # Batch the channels that can still pay (any channel when none can), so most vouchers pay.
            live = [
                i
                for i, c in sorted(self.model.items())
                if not c.settled and c.redeemed < c.deposit and not (c.closes_at and now >= c.closes_at)
            ]
            candidates = live or sorted(self.model)
            channel_id = candidates[index % len(candidates)]
            channel = self.model[channel_id]
            cumulative = self._cumulative(channel, kind, delta)
            batch.append((channel_id, cumulative, self._voucher(channel_id, channel, cumulative, forge)))
            reason, pay = redeem_outcome(channel, cumulative, now, forge)
            if reason is not None:
                rejected.append(
                    {
                        "channel_id": channel_id,
                        "cumulative_amount": cumulative,
                        "reason": REJECT_CODES[reason],
                    }
                )
                continue
            channel.redeemed += pay
            paid.append((channel_id, cumulative, pay, channel.redeemed))
            key = (str(channel.payee.address), channel.token)
            payees[key] = channel
            gained[key] += self._paid(channel, pay)
        before = {key: self._balance(c.payee, c.token) for key, c in payees.items()}
        receipt = env.send_expecting_success(env.channels.functions.redeem_many(batch), self.relayer)
        events = env.events(receipt, "VoucherRedeemed")
        assert [(e["channel_id"], e["cumulative_amount"], e["paid"], e["redeemed"]) for e in events] == paid
        assert env.events(receipt, "VoucherRejected") == rejected
        for key, channel in payees.items():
            assert self._balance(channel.payee, channel.token) == before[key] + gained[key]

    @precondition(lambda self: self.model)
    @rule(index=channel_index, by=senders)
    def close(self, index: int, by: str) -> None:
        """The payer closes; on a delegated channel its session key may too (revoked or not)."""
        env = self.env
        channel_id, channel = self._pick(index)
        sender = {"payer": channel.payer, "session": self.session, "other": self._other(channel)}[by]
        call = env.channels.functions.close(channel_id)
        now = self._now()
        reason: str | None = None
        if channel.settled:
            reason = SETTLED
        elif sender is not channel.payer and channel.delegation is None:
            reason = "channels: caller is not the payer"
        elif sender is not channel.payer and sender is not self.session:
            reason = "channels: caller is not the payer or its session key"
        elif channel.closes_at:
            reason = "channels: channel is closing"
        if reason is not None:
            env.reverts(reason, call, sender)
            return
        receipt = env.send_expecting_success(call, sender)
        channel.closes_at = now + env.challenge_period
        assert env.events(receipt, "ChannelClosing") == [
            {"channel_id": channel_id, "closes_at": channel.closes_at}
        ]

    @rule(seconds=st.sampled_from([1, 600, 3_599, 3_600, 3_601]))
    def wait(self, seconds: int) -> None:
        self.clock = max(self.clock, self.env.pending_timestamp()) + seconds

    @precondition(lambda self: self.model)
    @rule(index=channel_index, any_channel=st.sampled_from([False, False, True]), moment=moments)
    def settle(self, index: int, any_channel: bool, moment: str | int) -> None:
        env = self.env
        closing = sorted(i for i, c in self.model.items() if c.closes_at and not c.settled)
        if closing and not any_channel:
            channel_id = closing[index % len(closing)]
            channel = self.model[channel_id]
        else:
            channel_id, channel = self._pick(index)
        self._move_to(channel, moment)
        call = env.channels.functions.settle(channel_id)
        now = self._now()
        if channel.settled:
            reason: str | None = SETTLED
        elif not channel.closes_at:
            reason = "channels: channel is not closing"
        elif now < channel.closes_at:
            reason = "channels: challenge period not over"
        else:
            reason = None
        if reason is not None:
            env.reverts(reason, call, self.relayer)
            return
        refund = channel.deposit - channel.redeemed
        payer_before = self._balance(channel.payer, channel.token)
        receipt = env.send_expecting_success(call, self.relayer)
        channel.settled = True
        assert env.events(receipt, "ChannelSettled") == [
            {"channel_id": channel_id, "redeemed": channel.redeemed, "refunded": refund}
        ]
        if channel.delegation is None:
            assert self._balance(channel.payer, channel.token) == payer_before + refund
        else:  # drawn from the delegator's balance, refunded to it
            self.balances[(channel.payer.address, channel.token)] += refund
            assert self._balance(channel.payer, channel.token) == payer_before

    @precondition(lambda self: any(c.settled for c in self.model.values()))
    @rule(index=channel_index, delta=deltas)
    def poke_settled(self, index: int, delta: int) -> None:
        """P6: every entry point refuses a settled channel, whoever calls."""
        env, functions = self.env, self.env.channels.functions
        settled = sorted(i for i, c in self.model.items() if c.settled)
        channel_id = settled[index % len(settled)]
        channel = self.model[channel_id]
        cumulative = channel.deposit + delta
        signature = env.sign(channel.payer, channel_id, cumulative)
        value = delta if channel.token == env.native else 0
        self._now()
        env.reverts(SETTLED, functions.redeem(channel_id, cumulative, signature), self.relayer)
        skipped = env.send_expecting_success(
            functions.redeem_many([(channel_id, cumulative, signature)]), self.relayer
        )
        assert env.events(skipped, "VoucherRejected") == [
            {"channel_id": channel_id, "cumulative_amount": cumulative, "reason": REJECT_CODES[SETTLED]}
        ]
        env.reverts(SETTLED, functions.topup(channel_id, delta), channel.payer, value=value)
        env.reverts(SETTLED, functions.topup(channel_id, delta), self.session)
        env.reverts(SETTLED, functions.close(channel_id), channel.payer)
        env.reverts(SETTLED, functions.settle(channel_id), channel.payer)

    @precondition(lambda self: len(self.model) >= 3)
    @rule(beyond=st.integers(min_value=1, max_value=3))
    def unknown_channel(self, beyond: int) -> None:
        env = self.env
        channel_id = self.channel_count_at_start + len(self.model) + beyond
        signature = env.sign(self.payers[0], channel_id, 10)
        self._now()
        env.reverts(
            "channels: unknown channel",
            env.channels.functions.redeem(channel_id, 10, signature),
            self.relayer,
        )
        env.reverts("channels: unknown channel", env.channels.functions.close(channel_id), self.payers[0])

    # -- invariants ------------------------------------------------------------------------------------

    @invariant()
    def chain_equals_model(self) -> None:
        """After every step: every channel and balance as modelled, P1 per channel and per asset, P2 per
        channel, and D1, D4 and D5 (one `eth_call` reads the books)."""
        env = self.env
        owners = [self.delegator.address, self.wallet.address]
        found, owed_native, owed_token, held_native, held_token, balances, spent = env.lens.functions.books(
            env.channels.address, env.token.address, owners, [d.delegation_id for d in self.delegations]
        ).call({"from": self.relayer.address})
        onchain = {
            self.channel_count_at_start + i + 1: tuple(c)
            for i, c in enumerate(found[self.channel_count_at_start :])
        }
        assert onchain == {channel_id: c.as_tuple() for channel_id, c in self.model.items()}
        for channel_id, channel in self.model.items():
            # P1 per channel: what was paid and refunded never exceeds what was deposited.
            assert channel.redeemed + channel.refunded <= channel.deposit
            # P2: redeemed never goes down.
            assert onchain[channel_id][4] >= self.last_redeemed[channel_id]
            self.last_redeemed[channel_id] = onchain[channel_id][4]
        # P1 per asset: the contract holds exactly what it owes, which is what the model says is unpaid in
        # channels plus what its balances hold.
        native, token = (
            sum(c.owed for c in self.model.values() if c.token == a)
            + sum(amount for (_, asset), amount in self.balances.items() if asset == a)
            for a in self.assets
        )
        assert (owed_native, held_native) == (native, native)
        assert (owed_token, held_token) == (token, token)
        assert balances == [self.balances[(owner, asset)] for owner in owners for asset in self.assets]
        for which, delegated in enumerate(self.delegations):
            # D1: what was placed under it (deposits and session-key top-ups) is its `spent`, within the cap.
            assert spent[which] == delegated.placed <= delegated.cap
            channels = [c for c in self.model.values() if c.delegation == which]
            assert sum(c.deposit for c in channels) >= delegated.placed
        for channel_id, channel in self.model.items():
            if channel.delegation is None:
                continue
            # D4: a registered agent, never the session key or the delegator.
            assert channel.payee.address in env.agents
            assert channel.payee.address not in (self.session.address, self.delegator.address)
            # D5: placed money stays redeemable whatever became of the delegation.
            delegated = self.delegations[channel.delegation]
            if channel.closes_at or channel.settled or channel.redeemed >= channel.deposit:
                continue
            if delegated.problem(self.clock) is None:
                continue
            signature = env.sign(self.session, channel_id, channel.deposit)
            would_pay = env.channels.functions.redeem(channel_id, channel.deposit, signature).call(
                env._caller
            )
            assert would_pay == channel.deposit - channel.redeemed


def test_channels_follow_the_model(env: Env) -> None:
    assert env.channels.functions.channel_count().call() == 0  # every example starts from a fresh contract
    wallet = env.chain.deploy(CONTRACTS_DIR / "RejectingWallet.vy", env.chain.accounts[9].address)

    class Machine(ChannelsMachine):
        """ChannelsMachine on this test's contracts: hypothesis makes one per example, without arguments."""

        def __init__(self) -> None:
            super().__init__(env, wallet)

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=25,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
