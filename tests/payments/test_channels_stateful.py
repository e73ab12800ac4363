"""A stateful property test of PaymentChannels: random sequences of operations against a Python model.

The machine opens channels in the native coin and in an ERC-20, tops them up, signs and redeems vouchers
(below, at and above what was redeemed, and beyond the deposit; alone and in batches; now and then signed
by the wrong key), closes, moves time around the challenge deadlines, settles, and pokes settled
channels. For each transaction the model predicts either the exact revert string or the exact payout;
after every step the chain must equal the model, and P1 (solvency), P2 (monotonic) and P6 (one-shot)
must hold. Each example starts from the same snapshot of the session's chain.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
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

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from support.channels import Env

MAX_CHANNELS = 4
SETTLED = "channels: channel is settled"

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
# In a batch one bad voucher sinks all of them, so batches are built mostly of good ones.
batch_kinds = st.sampled_from(["above", "above", "above", "beyond", "at"])
batch_forged = st.sampled_from([False] * 9 + [True])
# When to act on a closing channel: now, or one second before, at, or one second after its deadline (if
# that is still ahead). This puts the challenge-window boundaries (P5) into most examples.
moments = st.sampled_from(["now", -1, 0, 1])


@dataclass
class Expected:
    """What the model says one channel holds."""

    payer: LocalAccount
    payee: LocalAccount
    token: str
    deposit: int
    redeemed: int = 0
    closes_at: int = 0
    settled: bool = False

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
        return "channels: voucher not signed by payer", 0
    return None, min(cumulative, channel.deposit) - channel.redeemed


class ChannelsMachine(RuleBasedStateMachine):
    def __init__(self, env: Env) -> None:
        super().__init__()
        self.env = env
        self.snapshot = env.chain.snapshot()
        accounts = env.chain.accounts
        self.payers = [accounts[1], accounts[4], accounts[7]]  # funded and approved by the fixture
        self.payees = [accounts[2], accounts[5], accounts[6]]
        self.relayer = accounts[3]
        self.assets = [env.native, env.token.address]
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

    def _balance(self, account: LocalAccount, asset: str) -> int:
        if asset == self.env.native:
            return self.env.balance(account)
        return self.env.balance(account, self.env.token)

    def _voucher(self, channel_id: int, channel: Expected, cumulative: int, forge: bool) -> bytes:
        """The payer's signature, or a forgery by the relayer (who is never a payer)."""
        return self.env.sign(self.relayer if forge else channel.payer, channel_id, cumulative)

    # -- rules -----------------------------------------------------------------------------------------

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
            self.close(closing, by_payer=True)

    @precondition(lambda self: len(self.model) < MAX_CHANNELS)
    @rule(payer=st.integers(0, 2), payee=st.integers(0, 3), asset=st.integers(0, 1), amount=amounts)
    def open(self, payer: int, payee: int, asset: int, amount: int) -> None:
        env, functions = self.env, self.env.channels.functions
        payer_account = self.payers[payer]
        payee_account = self.payees[payee] if payee < 3 else payer_account  # 3: to oneself
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
        channel_id = self.channel_count_at_start + len(self.model) + 1
        assert env.events(receipt, "ChannelOpened") == [
            {
                "channel_id": channel_id,
                "payer": payer_account.address,
                "payee": payee_account.address,
                "token": token,
                "deposit": amount,
            }
        ]
        self.model[channel_id] = Expected(payer_account, payee_account, token, amount)
        self.last_redeemed[channel_id] = 0

    @precondition(lambda self: self.model)
    @rule(index=channel_index, amount=amounts, by_payer=st.sampled_from([True, True, True, False]))
    def topup(self, index: int, amount: int, by_payer: bool) -> None:
        env = self.env
        channel_id, channel = self._pick(index)
        sender = channel.payer if by_payer else channel.payee
        value = amount if channel.token == env.native else 0
        call = env.channels.functions.topup(channel_id, amount)
        self._now()
        if channel.settled:
            reason: str | None = SETTLED
        elif not by_payer:
            reason = "channels: caller is not the payer"
        elif channel.closes_at:
            reason = "channels: channel is closing"
        elif amount == 0:
            reason = "channels: deposit is zero"
        else:
            reason = None
        if reason is not None:
            env.reverts(reason, call, sender, value=value)
            return
        receipt = env.send_expecting_success(call, sender, value=value)
        channel.deposit += amount
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
        assert self._balance(channel.payee, channel.token) == payee_before + pay

    @precondition(lambda self: self.model)
    @rule(picks=st.lists(st.tuples(channel_index, batch_kinds, deltas, batch_forged), min_size=1, max_size=4))
    def redeem_many(self, picks: list[tuple[int, str, int, bool]]) -> None:
        env = self.env
        now = self._now()
        trial = {i: replace(c) for i, c in self.model.items()}  # all or nothing: simulate on a copy
        batch, paid, reason = [], [], None
        for index, kind, delta, forge in picks:
            # Batch the channels that can still pay (any channel when none can), so most batches pass.
            live = [
                i
                for i, c in sorted(trial.items())
                if not c.settled and c.redeemed < c.deposit and not (c.closes_at and now >= c.closes_at)
            ]
            candidates = live or sorted(trial)
            channel_id = candidates[index % len(candidates)]
            channel = trial[channel_id]
            cumulative = self._cumulative(channel, kind, delta)
            batch.append((channel_id, cumulative, self._voucher(channel_id, channel, cumulative, forge)))
            if reason is None:
                reason, pay = redeem_outcome(channel, cumulative, now, forge)
                if reason is None:
                    channel.redeemed += pay
                    paid.append((channel_id, cumulative, pay, channel.redeemed))
        call = env.channels.functions.redeem_many(batch)
        if reason is not None:
            env.reverts(reason, call, self.relayer)
            return
        wallets = {(trial[i].payee.address, trial[i].token): trial[i] for i, *_ in paid}
        before = {key: self._balance(c.payee, c.token) for key, c in wallets.items()}
        receipt = env.send_expecting_success(call, self.relayer)
        events = env.events(receipt, "VoucherRedeemed")
        assert [(e["channel_id"], e["cumulative_amount"], e["paid"], e["redeemed"]) for e in events] == paid
        gained: Counter[tuple[str, str]] = Counter()
        for channel_id, _, pay, _ in paid:
            gained[(trial[channel_id].payee.address, trial[channel_id].token)] += pay
        for key, channel in wallets.items():
            assert self._balance(channel.payee, channel.token) == before[key] + gained[key]
        for channel_id, channel in trial.items():
            self.model[channel_id].redeemed = channel.redeemed

    @precondition(lambda self: self.model)
    @rule(index=channel_index, by_payer=st.sampled_from([True, True, True, False]))
    def close(self, index: int, by_payer: bool) -> None:
        env = self.env
        channel_id, channel = self._pick(index)
        sender = channel.payer if by_payer else channel.payee
        call = env.channels.functions.close(channel_id)
        now = self._now()
        if channel.settled:
            reason: str | None = SETTLED
        elif not by_payer:
            reason = "channels: caller is not the payer"
        elif channel.closes_at:
            reason = "channels: channel is closing"
        else:
            reason = None
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
        assert self._balance(channel.payer, channel.token) == payer_before + refund

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
        env.reverts(SETTLED, functions.redeem_many([(channel_id, cumulative, signature)]), channel.payee)
        env.reverts(SETTLED, functions.topup(channel_id, delta), channel.payer, value=value)
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
        """After every step: every channel as modelled, P1 per channel and per asset, P2 per channel."""
        env = self.env
        found, owed_native, owed_token, held_native, held_token = env.lens.functions.read(
            env.channels.address, env.token.address
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
        # P1 per asset: the contract holds exactly what it owes, which is what the model says is unpaid.
        native, token = (sum(c.owed for c in self.model.values() if c.token == a) for a in self.assets)
        assert (owed_native, held_native) == (native, native)
        assert (owed_token, held_token) == (token, token)


def test_channels_follow_the_model(env: Env) -> None:
    assert env.channels.functions.channel_count().call() == 0  # every example starts from a fresh contract

    class Machine(ChannelsMachine):
        """ChannelsMachine on this test's contracts: hypothesis makes one per example, without arguments."""

        def __init__(self) -> None:
            super().__init__(env)

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=25,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
