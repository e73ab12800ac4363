"""`ChannelClient`: open, fund, pay through, redeem, close and settle payment channels.

One client acts for one account: as a payer it signs vouchers (persisted in the `Ledger` before they are
returned, so a retry reuses them and never pays twice); as a payee it verifies incoming vouchers against the
channel's state on chain and redeems them in batches.

Example:
    >>> payer = ChannelClient(chain, chain.accounts[0])
    >>> channel = payer.open(agent_payout, deposit=10**15)
    >>> voucher = payer.pay(channel.channel_id, 1_000)           # off chain, microseconds
    >>> payee = ChannelClient(chain, agent_account)
    >>> payee.receive(voucher)                                   # verified, persisted; returns 1_000
    >>> payee.redeem()                                           # one transaction for every channel
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NewType

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.logs import DISCARD

from motet.chain import NATIVE_ASSET, Chain
from motet.errors import (
    ChannelFundsExhausted,
    ChannelNotFound,
    ChannelNotSettleable,
    InvalidAmount,
    InvalidDelegation,
    InvalidVoucher,
    TransactionReverted,
)
from motet.payments._eip712 import keccak
from motet.payments._ledger import Ledger
from motet.payments._vouchers import ChannelDomain, Voucher, VoucherSigner, VoucherVerifier
from motet.units import format_amount, plural

Amount = NewType("Amount", int)
"""An amount in the smallest unit of a channel's asset (wei for the native coin)."""

MAX_BATCH = 256  # PaymentChannels.MAX_BATCH

REJECTIONS = {
    1: "unknown channel",
    2: "channel is settled",
    3: "challenge period over",
    4: "voucher not above redeemed",
    5: "deposit exhausted",
    6: "signature is not 65 bytes",
    7: "signature v is not 27 or 28",
    8: "signature s is not in the lower half",
    9: "signature recovers nobody",
    10: "voucher not signed by the payer",
    11: "voucher not signed by the delegation's session key",
}
"""Why `redeem_many` skipped a voucher, by `VoucherRejected.reason` (PaymentChannels' `REJECT_*` codes)."""


@dataclass(frozen=True, slots=True)
class ChannelState:
    """A channel as the contract holds it."""

    channel_id: int
    payer: str
    payee: str
    asset: str
    """The ERC-20 of the deposit, or `NATIVE_ASSET` (the zero address) for the native coin."""
    deposit: Amount
    redeemed: Amount
    closes_at: int
    """0 while open; otherwise the timestamp from which `settle` works."""
    settled: bool
    delegation: bytes | None = None
    """The delegation the channel was opened under (its vouchers are signed by the session key), or None."""

    @property
    def remaining(self) -> Amount:
        return Amount(self.deposit - self.redeemed)

    def __repr__(self) -> str:
        if self.settled:
            state = "settled"
        elif self.closes_at:
            state = f"closing, settles from {self.closes_at} (unix time)"
        else:
            state = "open"
        asset = "" if self.asset == NATIVE_ASSET else f" of {self.asset}"
        return (
            f"ChannelState({hex(self.channel_id)} from {self.payer} to {self.payee}: deposit "
            f"{format_amount(self.deposit)}{asset}, redeemed {format_amount(self.redeemed)}, {state})"
        )

    @property
    def closing(self) -> bool:
        return self.closes_at != 0 and not self.settled


@dataclass(frozen=True, slots=True)
class Rejection:
    """A voucher the contract skipped in a batch, and why (see `REJECTIONS`)."""

    channel_id: int
    cumulative_amount: int
    reason: str


@dataclass(frozen=True, slots=True)
class Redemption:
    """The result of one redeem transaction."""

    tx_hash: str
    gas_used: int
    paid: Amount
    vouchers: int
    rejected: tuple[Rejection, ...] = ()
    """Vouchers of the batch the contract skipped (they paid nothing); the others paid."""
    credited: Amount = Amount(0)
    """Of `paid`, what could not be pushed to a payee (it rejects the coin) and was credited to its balance in
    the contract instead, where it can `withdraw_to` another address."""


class ChannelClient:
    """Channels of one account on one `PaymentChannels` deployment."""

    def __init__(
        self, chain: Chain, account: LocalAccount | None = None, ledger: Ledger | None = None
    ) -> None:
        self.chain = chain
        self.account = account or chain.default_account
        self.contract = chain.contract("PaymentChannels")
        self.domain = ChannelDomain(chain.chain_id, self.contract.address)
        self.ledger = ledger or Ledger()
        self._signer = VoucherSigner(bytes(self.account.key), self.domain)
        self._verifier = VoucherVerifier(self.domain)
        self._states: dict[int, ChannelState] = {}
        self._session_keys: dict[bytes, str] = {}

    @property
    def address(self) -> str:
        return str(self.account.address)

    # -- reading --------------------------------------------------------------------------------------

    def channel(self, channel_id: int) -> ChannelState:
        """The channel's current state on chain; raises `ChannelNotFound`."""
        payer, payee, asset, deposit, redeemed, closes_at, settled = self.contract.functions.channels(
            channel_id
        ).call()
        if int(payer, 16) == 0:
            raise ChannelNotFound(channel_id, self.contract.address)
        delegation = bytes(self.contract.functions.channel_delegation(channel_id).call())
        state = ChannelState(
            channel_id=channel_id,
            payer=payer,
            payee=payee,
            asset=asset,
            deposit=Amount(deposit),
            redeemed=Amount(redeemed),
            closes_at=closes_at,
            settled=settled,
            delegation=delegation if any(delegation) else None,
        )
        self._states[channel_id] = state
        return state

    def _cached(self, channel_id: int) -> ChannelState:
        return self._states.get(channel_id) or self.channel(channel_id)

    # -- payer side -----------------------------------------------------------------------------------

    def open(
        self,
        payee: str,
        deposit: int,
        *,
        asset: str = NATIVE_ASSET,
        delegation: bytes | None = None,
        agent_id: int | None = None,
        capability: str | None = None,
    ) -> ChannelState:
        """Open a channel to `payee` with `deposit` of `asset`: the native coin, or an ERC-20.

        With `delegation` (this account being its session key), the channel is the delegator's, funded from the
        delegator's balance in the delegation's asset, and this account signs its vouchers. It then names the
        registered agent (`agent_id`, whose payout is `payee`) and the `capability` it pays for: the contract
        refuses an agent that is not registered and active with that capability, a capability the delegation
        does not allow, and a deposit beyond what the delegation's cap has left.
        """
        payee = Web3.to_checksum_address(payee)
        if delegation is not None:
            if agent_id is None or not capability:
                raise InvalidDelegation(
                    "a delegated channel pays one registered agent for one capability: pass agent_id= and "
                    "capability="
                )
            call = self.contract.functions.open_delegated(
                delegation, payee, agent_id, keccak(capability.encode()), deposit
            )
            receipt = self.chain.send(call, sender=self.account, action="opening a delegated channel")
        elif int(asset, 16) == 0:
            call = self.contract.functions.open(payee, NATIVE_ASSET, 0)
            receipt = self.chain.send(call, sender=self.account, value=deposit, action="opening a channel")
        else:
            self.chain.approve(asset, self.contract.address, deposit, sender=self.account)
            call = self.contract.functions.open(payee, Web3.to_checksum_address(asset), deposit)
            receipt = self.chain.send(call, sender=self.account, action="opening a channel")
        (event,) = self.contract.events.ChannelOpened().process_receipt(receipt, errors=DISCARD)
        return self.channel(int(event["args"]["channel_id"]))

    def topup(self, channel_id: int, amount: int) -> ChannelState:
        """Add `amount` to the deposit of an open channel this account pays from."""
        state = self._cached(channel_id)
        if state.delegation is not None and state.payer != self.address:
            call = self.contract.functions.topup(channel_id, amount)  # from the delegator's balance
            self.chain.send(call, sender=self.account, action=f"topping up channel {hex(channel_id)}")
        elif state.asset == NATIVE_ASSET:
            call = self.contract.functions.topup(channel_id, 0)
            self.chain.send(
                call, sender=self.account, value=amount, action=f"topping up channel {hex(channel_id)}"
            )
        else:
            self.chain.approve(state.asset, self.contract.address, amount, sender=self.account)
            call = self.contract.functions.topup(channel_id, amount)
            self.chain.send(call, sender=self.account, action=f"topping up channel {hex(channel_id)}")
        return self.channel(channel_id)

    def pay(self, channel_id: int, amount: int) -> Voucher:
        """Sign (and persist) a voucher that adds `amount` to what the channel's payee is owed."""
        if amount <= 0:
            raise InvalidAmount(str(amount), "a payment must be more than 0 wei")
        highest = self.ledger.highest_signed(self.domain, channel_id)
        cumulative = (highest.cumulative_amount if highest else 0) + amount
        return self.sign(channel_id, cumulative)

    def sign(self, channel_id: int, cumulative_amount: int) -> Voucher:
        """Sign (and persist) a voucher for an exact cumulative amount.

        Refuses (`VoucherNotAboveHighest`) to sign at or below an amount already signed, and refuses
        (`ChannelFundsExhausted`) to promise more than the deposit.
        """
        state = self._cached(channel_id)
        if cumulative_amount > state.deposit:
            state = self.channel(channel_id)  # the deposit may have been topped up since
            if cumulative_amount > state.deposit:
                highest = self.ledger.highest_signed(self.domain, channel_id)
                signed = highest.cumulative_amount if highest else 0
                raise ChannelFundsExhausted(channel_id, state.deposit - signed, cumulative_amount - signed)
        voucher = self._signer.sign(channel_id, cumulative_amount)
        self.ledger.record_signed(voucher)
        return voucher

    def close(self, channel_id: int) -> int:
        """Start the challenge period; returns the timestamp from which `settle` works."""
        return int(self._end(channel_id, "close", "ChannelClosing", "closing")["closes_at"])

    def settle(self, channel_id: int) -> Amount:
        """Refund the unredeemed deposit to the payer after the challenge period; returns the refund.

        Raises `ChannelNotSettleable` when the contract refuses because the channel is open, its challenge period
        is not over (the message says when it is, in chain time, read from the chain) or it is settled already."""
        try:
            return Amount(int(self._end(channel_id, "settle", "ChannelSettled", "settling")["refunded"]))
        except TransactionReverted as exc:
            state = self.channel(channel_id)
            if state.settled or state.closes_at == 0 or "challenge period not over" in exc.reason:
                raise ChannelNotSettleable(
                    channel_id, state.closes_at, self.chain.timestamp(), state.settled, reason=exc.reason
                ) from exc
            raise

    def _end(self, channel_id: int, function: str, event_name: str, doing: str) -> Any:
        """Send `function(channel_id)` (closing or settling), refresh the channel, return the event's args."""
        receipt = self.chain.send(
            self.contract.functions[function](channel_id),
            sender=self.account,
            action=f"{doing} channel {hex(channel_id)}",
        )
        (event,) = self.contract.events[event_name]().process_receipt(receipt, errors=DISCARD)
        self.channel(channel_id)
        return event["args"]

    # -- payee side -----------------------------------------------------------------------------------

    def verify(self, voucher: Voucher) -> ChannelState:
        """Check a voucher paying this account without recording it; returns the channel it is for.

        Raises `InvalidVoucher` naming the problem: another domain, another payee, a settled or expired
        channel, a bad signature, or an amount above the deposit.
        """
        try:
            state = self._cached(voucher.channel_id)
        except ChannelNotFound as exc:
            raise InvalidVoucher(str(exc)) from exc
        if voucher.cumulative_amount > state.deposit or state.closing or state.settled:
            state = self.channel(voucher.channel_id)  # refresh: top-ups and closes happen
        if state.payee != self.address:
            raise InvalidVoucher(
                f"channel {hex(voucher.channel_id)} pays {state.payee}, not this account {self.address}"
            )
        if state.settled:
            raise InvalidVoucher(f"channel {hex(voucher.channel_id)} is settled")
        if state.closing and self.chain.timestamp() >= state.closes_at:
            raise InvalidVoucher(f"channel {hex(voucher.channel_id)}'s challenge period is over")
        if state.delegation is None:
            self._verifier.verify(voucher, state.payer)
        else:
            # The money was placed when the channel opened or was topped up (the cap was consumed then):
            # the contract checks only the session key's signature, whatever became of the delegation.
            self._verifier.verify(voucher, self._session_key(state.delegation))
        if voucher.cumulative_amount > state.deposit:
            raise InvalidVoucher(
                f"voucher for channel {hex(voucher.channel_id)} promises {voucher.cumulative_amount:,} wei, above "
                f"the deposit of {state.deposit:,} wei"
            )
        return state

    def verifies_offline(self, voucher: Voucher) -> bool:
        """Whether `verify(voucher)` (and `receive`) can answer from what this client already read, without a
        chain read: the channel's state is known, open, and deep enough, and its signer known. A server checks
        such a voucher on its event loop instead of a worker thread."""
        state = self._states.get(voucher.channel_id)
        return (
            state is not None
            and not (state.closing or state.settled)
            and voucher.cumulative_amount <= state.deposit
            and (state.delegation is None or state.delegation in self._session_keys)
        )

    def receive(self, voucher: Voucher) -> Amount:
        """Verify and persist a voucher paying this account; returns what it adds over the last one."""
        state = self.verify(voucher)
        previous = self.ledger.highest_received(self.domain, voucher.channel_id)
        floor = max(previous.cumulative_amount if previous else 0, state.redeemed)
        if voucher.cumulative_amount <= floor:
            raise InvalidVoucher(
                f"voucher for channel {hex(voucher.channel_id)} carries {voucher.cumulative_amount:,} wei, not "
                f"above the {floor:,} wei already received: a replay or a lower amount"
            )
        self.ledger.record_received(voucher)
        return Amount(voucher.cumulative_amount - floor)

    def redeem(
        self,
        vouchers: Sequence[Voucher] | None = None,
        *,
        on_signed: Callable[[Sequence[Voucher], str, bytes], None] | None = None,
    ) -> list[Redemption]:
        """Redeem vouchers (by default every unredeemed one in the ledger), `MAX_BATCH` per transaction.

        Vouchers that cannot pay anything now (already covered, deposit exhausted, channel settled or past
        its challenge period) are left out. The contract skips any other voucher it refuses (a bad signature)
        and pays the rest: each `Redemption` says what was paid, what was credited to a payee that rejects
        the coin, and which vouchers were rejected. `on_signed(batch, tx_hash, raw)` is called for each
        transaction once signed, before it is sent (see `Chain.send`), and `redemption()` reads one back.
        """
        candidates = list(vouchers) if vouchers is not None else self.ledger.unredeemed(self.domain)
        now = self.chain.timestamp()
        pending = [v for v in candidates if self._redeemable(v, now)]
        results = []
        for start in range(0, len(pending), MAX_BATCH):
            batch = pending[start : start + MAX_BATCH]
            call = self.contract.functions.redeem_many(
                [(v.channel_id, v.cumulative_amount, v.signature) for v in batch]
            )
            signed = None if on_signed is None else functools.partial(on_signed, batch)
            receipt = self.chain.send(
                call,
                sender=self.account,
                action=f"redeeming {plural(len(batch), 'voucher')}",
                on_signed=signed,
            )
            results.append(self.redemption(batch, receipt))
        return results

    def redemption(self, batch: Sequence[Voucher], receipt: Any) -> Redemption:
        """What the mined redeem transaction of `batch` (its `receipt`) paid, rejected and credited; the
        vouchers are marked redeemed in the ledger."""
        events = self.contract.events.VoucherRedeemed().process_receipt(receipt, errors=DISCARD)
        rejected = tuple(
            Rejection(
                int(e["args"]["channel_id"]),
                int(e["args"]["cumulative_amount"]),
                REJECTIONS.get(int(e["args"]["reason"]), f"reason {e['args']['reason']}"),
            )
            for e in self.contract.events.VoucherRejected().process_receipt(receipt, errors=DISCARD)
        )
        credited = sum(
            int(e["args"]["amount"])
            for e in self.contract.events.PayoutCredited().process_receipt(receipt, errors=DISCARD)
        )
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        self.ledger.mark_redeemed(batch, tx_hash)
        for channel_id in {v.channel_id for v in batch}:
            self._states.pop(channel_id, None)
        return Redemption(
            tx_hash=tx_hash,
            gas_used=int(receipt["gasUsed"]),
            paid=Amount(sum(int(e["args"]["paid"]) for e in events)),
            vouchers=len(batch),
            rejected=rejected,
            credited=Amount(credited),
        )

    def _session_key(self, delegation_id: bytes) -> str:
        """The session key that signs a delegated channel's vouchers (it never changes: cached)."""
        key = self._session_keys.get(delegation_id)
        if key is None:
            key = str(self.contract.functions.delegations(delegation_id).call()[1])
            if int(key, 16) == 0:  # the contract registers before it opens: a channel's delegation exists
                raise InvalidVoucher(f"delegation 0x{delegation_id.hex()} is not registered")
            self._session_keys[delegation_id] = key
        return key

    def _redeemable(self, voucher: Voucher, now: int) -> bool:
        state = self.channel(voucher.channel_id)
        return (
            not state.settled
            and not (state.closing and now >= state.closes_at)
            and state.redeemed < state.deposit
            and voucher.cumulative_amount > state.redeemed
        )
