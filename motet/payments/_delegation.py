"""Wallet delegation: a wallet signs, once, an EIP-712 `Delegation` to a session key, and a `TaskOrder` per task.

A `Delegation` lets one session key pay agents from the delegator's balance in the channels contract, in one
asset, between `validAfter` and `expiry`, for the listed capabilities (`"*"` for any). The cap bounds the money
placed in its channels (deposits and top-ups), summed over all of them; the contract checks the window,
revocation and cap when the session key opens or tops up a channel, and opens one only to an agent registered
and active with a delegated capability (never to the session key or the delegator). Money once placed stays
redeemable by its agent: a voucher on a delegated channel needs only the session key's signature, whatever
becomes of the delegation (revoked, expired) afterwards. A `TaskOrder` names the delegation, the work (a workflow or a goal), its inputs, a budget, a
deadline and a nonce; the gateway checks it and runs it.

Both are signed in the channels contract's EIP-712 domain (chain id and contract), with `eth_signTypedData_v4`
in a browser wallet or any EIP-712 library; `typed_data()` gives the JSON to sign and `from_typed_data()` takes
it back, refusing anything that differs from motet's types or domain.

Example:
    >>> delegation = Delegation(
    ...     delegator=wallet, session_key=gateway_key, cap=10**15, valid_after=now, expiry=now + 3600,
    ...     capabilities=("summarize",), nonce=1,
    ... )
    >>> signature = wallet_sign(delegation.typed_data(domain))
    >>> delegation_id = DelegationClient(chain).register(delegation, signature)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from web3 import Web3
from web3.logs import DISCARD

from motet.chain import NATIVE_ASSET, Chain
from motet.errors import InvalidDelegation, InvalidVoucher
from motet.payments._eip712 import TypedStruct, eip712_fields, keccak, sign_typed
from motet.payments._fields import Fields
from motet.payments._vouchers import ChannelDomain, recover_digest_signer

DELEGATION_TYPE = (
    "Delegation(address delegator,address sessionKey,address asset,uint256 cap,uint256 validAfter,"
    "uint256 expiry,string[] capabilities,uint256 nonce)"
)
"""The EIP-712 type string; `PaymentChannels.DELEGATION_TYPEHASH` is its keccak (a test checks)."""

TASK_ORDER_TYPE = (
    "TaskOrder(bytes32 delegation,string workflow,string goal,string inputs,uint256 budget,uint256 deadline,"
    "uint256 nonce)"
)
"""The EIP-712 type string of a task order (checked off chain, by the gateway)."""

ANY_CAPABILITY = "*"

MAX_DELEGATED_CAPABILITIES = 32
"""Most capabilities one delegation may list (PaymentChannels.MAX_DELEGATED_CAPABILITIES)."""


@dataclass(frozen=True, slots=True)
class Delegation(TypedStruct):
    """What a wallet lets a session key spend: `cap` of `asset` in `[valid_after, expiry)` on `capabilities`."""

    delegator: str
    session_key: str
    cap: int
    valid_after: int
    expiry: int
    capabilities: tuple[str, ...]
    nonce: int
    asset: str = NATIVE_ASSET
    """The ERC-20, or the zero address for the native coin."""

    TYPE: ClassVar[str] = DELEGATION_TYPE
    FIELDS: ClassVar[Fields] = Fields.of("delegation", InvalidDelegation)

    def __post_init__(self) -> None:
        self._check_fields()
        if not self.capabilities:
            raise InvalidDelegation(
                f"capabilities is empty: list the allowed ones, or {ANY_CAPABILITY!r} for any"
            )
        if len(self.capabilities) > MAX_DELEGATED_CAPABILITIES:
            raise InvalidDelegation(
                f"{len(self.capabilities)} capabilities: a delegation lists at most {MAX_DELEGATED_CAPABILITIES} "
                f"(or {ANY_CAPABILITY!r} for any)"
            )
        if self.expiry == 0:
            raise InvalidDelegation("expiry is 0: a delegation needs an end (there is no 'forever')")
        if self.valid_after >= self.expiry:
            raise InvalidDelegation(f"validAfter {self.valid_after} is not before expiry {self.expiry}")
        if self.cap == 0:
            raise InvalidDelegation("cap is 0: the delegation could pay for nothing")
        if self.session_key == self.delegator:
            raise InvalidDelegation("the session key is the delegator itself")

    @property
    def capabilities_hash(self) -> bytes:
        """The EIP-712 encoding of the `string[]`: keccak of the concatenated keccaks of the names."""
        return keccak(b"".join(keccak(c.encode()) for c in self.capabilities))

    def allows(self, capability: str) -> bool:
        return ANY_CAPABILITY in self.capabilities or capability in self.capabilities

    def as_struct(self) -> tuple[Any, ...]:
        """The contract's `Delegation` struct argument: the capabilities as the keccak256 of each name (the
        contract stores them, to check channels against them, and hashes them into the digest)."""
        return (
            self.delegator,
            self.session_key,
            self.asset,
            self.cap,
            self.valid_after,
            self.expiry,
            [keccak(c.encode()) for c in self.capabilities],
            self.nonce,
        )


@dataclass(frozen=True, slots=True)
class TaskOrder(TypedStruct):
    """A task a wallet asks the gateway to run under one of its delegations.

    `workflow` names a workflow the gateway offers, or holds one as JSON; `goal` asks the planner instead (one of
    the two, not both). `inputs` is the run's inputs as JSON text, signed as the exact string.
    """

    delegation: bytes
    budget: int
    deadline: int
    nonce: int
    workflow: str = ""
    goal: str = ""
    inputs: str = "{}"

    TYPE: ClassVar[str] = TASK_ORDER_TYPE
    FIELDS: ClassVar[Fields] = Fields.of("task order", InvalidDelegation)

    def __post_init__(self) -> None:
        self._check_fields()
        if bool(self.workflow) == bool(self.goal):
            raise InvalidDelegation("a task order names a workflow or a goal: exactly one of them")
        if self.budget == 0:
            raise InvalidDelegation("budget is 0: the task could pay for nothing")
        self.input_values()

    def input_values(self) -> dict[str, Any]:
        """The inputs, parsed; raises `InvalidDelegation` unless they are a JSON object."""
        try:
            values = json.loads(self.inputs)
        except ValueError as exc:
            raise InvalidDelegation(f"inputs is not JSON: {exc}") from None
        if not isinstance(values, dict):
            raise InvalidDelegation(f"inputs must be a JSON object, got {type(values).__name__}")
        return values


def parse_signature(value: object) -> bytes:
    """A signature from its 0x-hex form; raises `InvalidDelegation`."""
    return _SIGNATURE.hex_bytes("signature", value)


_SIGNATURE = Fields.of("signed typed data", InvalidDelegation)


@dataclass(frozen=True, slots=True)
class DelegationState:
    """A registered delegation as the contract holds it. `spent` is the money placed in its channels so far
    (deposits and top-ups over all of them), which the cap bounds."""

    delegation_id: bytes
    delegator: str
    session_key: str
    asset: str
    cap: int
    valid_after: int
    expiry: int
    spent: int
    revoked: bool

    @property
    def remaining(self) -> int:
        """What the session key may still place in channels under this delegation (ignoring its window)."""
        return self.cap - self.spent

    def status(self, now: int) -> str:
        """One word or two for a table: `active`, `revoked`, `not yet valid` or `expired`."""
        if self.revoked:
            return "revoked"
        if now < self.valid_after:
            return "not yet valid"
        if now >= self.expiry:
            return "expired"
        return "active"

    def problem(self, now: int) -> str | None:
        """Why the contract would refuse to open or top up a channel under this delegation at `now`, or None.

        It never stops the redemption of money already placed in its channels."""
        if self.revoked:
            return "the delegation is revoked"
        if now < self.valid_after:
            return f"the delegation is not valid before {self.valid_after} (now {now})"
        if now >= self.expiry:
            return f"the delegation expired at {self.expiry} (now {now})"
        return None


def _topic(address: str) -> str:
    return "0x" + bytes(12).hex() + Delegation.FIELDS.address("address", address)[2:].lower()


def read_delegation(contract: Any, delegation_id: bytes) -> DelegationState | None:
    """A registered delegation from the channels contract, or None if it never was."""
    values = contract.functions.delegations(delegation_id).call()
    delegator, session_key, asset, cap, valid_after, expiry, spent = values
    if int(delegator, 16) == 0:
        return None
    revoked = bool(contract.functions.revoked(delegator, delegation_id).call())
    return DelegationState(
        delegation_id, delegator, session_key, asset, cap, valid_after, expiry, spent, revoked
    )


@dataclass
class DelegationClient:
    """Balances and delegations on one `PaymentChannels` deployment, acting for one account."""

    chain: Chain
    account: Any = None
    domain: ChannelDomain = field(init=False)

    def __post_init__(self) -> None:
        self.account = self.account or self.chain.default_account
        self.contract = self.chain.contract("PaymentChannels")
        self.domain = ChannelDomain(self.chain.chain_id, self.contract.address)

    def deposit(self, amount: int, *, asset: str = NATIVE_ASSET, owner: str | None = None) -> int:
        """Add `amount` of `asset` to `owner`'s balance (this account's by default), paid by this account: what
        delegated channels are funded from. Returns the new balance."""
        owner = Web3.to_checksum_address(owner or self.account.address)
        asset = Web3.to_checksum_address(asset)
        native = asset == NATIVE_ASSET
        if not native:
            self.chain.approve(asset, self.contract.address, amount, sender=self.account)
        call = self.contract.functions.deposit_for(owner, asset, 0 if native else amount)
        self.chain.send(call, sender=self.account, value=amount if native else 0, action="depositing")
        return self.balance(owner, asset=asset)

    def withdraw(self, amount: int, *, asset: str = NATIVE_ASSET, to: str | None = None) -> int:
        """Take `amount` of `asset` back from this account's balance, to this account or to `to` (how a contract
        wallet that rejects the native coin recovers a payout or refund credited to it); returns what is left."""
        asset = Web3.to_checksum_address(asset)
        call = (
            self.contract.functions.withdraw(asset, amount)
            if to is None
            else self.contract.functions.withdraw_to(asset, amount, Web3.to_checksum_address(to))
        )
        self.chain.send(call, sender=self.account, action="withdrawing")
        return self.balance(self.account.address, asset=asset)

    def balance(self, owner: str, *, asset: str = NATIVE_ASSET) -> int:
        """`owner`'s balance of `asset` in the contract (not in channels)."""
        call = self.contract.functions.balances(
            Web3.to_checksum_address(owner), Web3.to_checksum_address(asset)
        )
        return int(call.call())

    def register(self, delegation: Delegation, signature: bytes) -> bytes:
        """Register a signed delegation on chain (this account pays the gas); returns its id."""
        call = self.contract.functions.delegate(delegation.as_struct(), signature)
        receipt = self.chain.send(call, sender=self.account, action="registering the delegation")
        (event,) = self.contract.events.DelegationRegistered().process_receipt(receipt, errors=DISCARD)
        return bytes(event["args"]["delegation_id"])

    def revoke(self, delegation_id: bytes) -> None:
        """Revoke one of this account's delegations, registered or not."""
        self.chain.send(
            self.contract.functions.revoke(delegation_id),
            sender=self.account,
            action="revoking the delegation",
        )

    def state(self, delegation_id: bytes) -> DelegationState | None:
        """The registered delegation, or None if it never was."""
        return read_delegation(self.contract, delegation_id)

    def delegations(
        self, *, delegator: str | None = None, session_key: str | None = None
    ) -> list[DelegationState]:
        """Registered delegations from `delegator` and/or to `session_key`, oldest first, as they stand now."""
        topics: list[Any] = [self.contract.events.DelegationRegistered().topic, None]
        topics.append(_topic(delegator) if delegator else None)
        topics.append(_topic(session_key) if session_key else None)
        logs = self.chain.w3.eth.get_logs(
            {"address": self.contract.address, "fromBlock": 0, "toBlock": "latest", "topics": topics}
        )
        found = [read_delegation(self.contract, bytes(log["topics"][1])) for log in logs]
        return [state for state in found if state is not None]

    def signed_by(self, signer: str, digest: bytes, signature: bytes) -> bool:
        """Whether `signer` signed `digest`: ECDSA for an account, ERC-1271 for a contract wallet."""
        signer = Web3.to_checksum_address(signer)
        if self.chain.w3.eth.get_code(signer):
            return self.chain.wallet_accepts(signer, digest, signature)
        try:
            return bool(recover_digest_signer(digest, signature) == signer)
        except InvalidVoucher:
            return False


__all__ = [
    "ANY_CAPABILITY",
    "DELEGATION_TYPE",
    "TASK_ORDER_TYPE",
    "Delegation",
    "DelegationClient",
    "DelegationState",
    "TaskOrder",
    "eip712_fields",
    "parse_signature",
    "sign_typed",
]
