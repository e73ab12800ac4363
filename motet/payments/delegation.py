"""Wallet delegation: a wallet signs, once, an EIP-712 `Delegation` to a session key, and a `TaskOrder` per task.

A `Delegation` lets one session key pay agents from the delegator's balance in the channels contract, in one
asset, up to a cap summed over every channel opened under it, between `validAfter` and `expiry`, for the listed
capabilities (`"*"` for any). The contract checks the window, revocation and cap each time a voucher under it is
redeemed; the capabilities are checked by whoever runs the tasks (the gateway), since a channel pays an agent,
not a capability. A `TaskOrder` names the delegation, the work (a workflow or a goal), its inputs, a budget, a
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from coincurve import PrivateKey
from eth_utils.address import is_address, to_checksum_address
from web3 import Web3
from web3.logs import DISCARD

from motet.chain import NATIVE_TOKEN, Chain
from motet.errors import InvalidDelegation, InvalidVoucher
from motet.payments.vouchers import ChannelDomain, keccak, recover_digest_signer

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
_UINT256_MAX = 2**256 - 1
_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_ERC1271_ABI: list[dict[str, Any]] = [
    {
        "name": "isValidSignature",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
        "outputs": [{"name": "", "type": "bytes4"}],
    }
]
_ERC1271_MAGIC = bytes.fromhex("1626ba7e")


def eip712_fields(type_string: str) -> list[dict[str, str]]:
    """The EIP-712 field list of a type string: `[{"name": ..., "type": ...}, ...]`."""
    inner = type_string[type_string.index("(") + 1 : -1]
    return [{"name": name, "type": kind} for kind, name in (part.split(" ") for part in inner.split(","))]


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _address_word(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:])


def _uint(name: str, value: object) -> int:
    """A uint256 from an int, or a decimal or 0x-hex string (wallets send big numbers as strings)."""
    if isinstance(value, bool):
        raise InvalidDelegation(f"{name} must be an unsigned integer, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
        except ValueError:
            raise InvalidDelegation(f"{name} must be an unsigned integer, got {text!r}") from None
    if not isinstance(value, int) or not 0 <= value <= _UINT256_MAX:
        raise InvalidDelegation(f"{name} must be an unsigned 256-bit integer, got {value!r}")
    return value


def _address(name: str, value: object) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise InvalidDelegation(f"{name} must be a 20-byte hex address, got {value!r}")
    return str(to_checksum_address(value))


def _bytes32(name: str, value: object) -> bytes:
    if isinstance(value, bytes) and len(value) == 32:
        return value
    if isinstance(value, str) and value.startswith("0x") and len(value) == 66:
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    raise InvalidDelegation(f"{name} must be 32 bytes as 0x-hex, got {value!r}")


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidDelegation(f"{name} must be a string, got {value!r}")
    return value


class _Typed:
    """EIP-712 plumbing shared by `Delegation` and `TaskOrder`: hashing, typed data and parsing."""

    TYPE: ClassVar[str]
    PRIMARY: ClassVar[str]
    WIRE: ClassVar[dict[str, str]]
    """Python field → EIP-712 field name."""

    def _encoded(self) -> bytes:
        raise NotImplementedError

    @property
    def struct_hash(self) -> bytes:
        return keccak(keccak(self.TYPE.encode()) + self._encoded())

    def digest(self, domain: ChannelDomain) -> bytes:
        """The 32-byte EIP-712 digest signed for this in `domain`."""
        return keccak(b"\x19\x01" + domain.separator + self.struct_hash)

    def message(self) -> dict[str, Any]:
        """The EIP-712 message, JSON-safe: integers as decimal strings, bytes as 0x-hex."""
        out: dict[str, Any] = {}
        for attr, wire in self.WIRE.items():
            value = getattr(self, attr)
            if isinstance(value, bool):
                raise TypeError(attr)
            if isinstance(value, int):
                value = str(value)
            elif isinstance(value, bytes):
                value = "0x" + value.hex()
            elif isinstance(value, tuple):
                value = list(value)
            out[wire] = value
        return out

    def typed_data(self, domain: ChannelDomain) -> dict[str, Any]:
        """The full typed data, as `eth_signTypedData_v4` and eth-account's `encode_typed_data` take it."""
        return {
            "types": {"EIP712Domain": _DOMAIN_FIELDS, self.PRIMARY: eip712_fields(self.TYPE)},
            "primaryType": self.PRIMARY,
            "domain": domain.typed_data_domain(),
            "message": self.message(),
        }

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> Self:
        raise NotImplementedError

    @classmethod
    def from_typed_data(cls, data: object, domain: ChannelDomain) -> Self:
        """Parse typed data signed elsewhere; raises `InvalidDelegation` unless its types and domain are motet's
        and `domain`'s exactly (a typed-data JSON for another chain or contract names which)."""
        if not isinstance(data, Mapping):
            raise InvalidDelegation(f"typed data must be a JSON object, got {type(data).__name__}")
        if data.get("primaryType") != cls.PRIMARY:
            raise InvalidDelegation(
                f"typed data's primaryType is {data.get('primaryType')!r}, expected {cls.PRIMARY!r}"
            )
        types = data.get("types")
        expected = {"EIP712Domain": _DOMAIN_FIELDS, cls.PRIMARY: eip712_fields(cls.TYPE)}
        if (
            not isinstance(types, Mapping)
            or {k: types.get(k) for k in expected} != expected
            or set(types) != set(expected)
        ):
            raise InvalidDelegation(f"typed data's types are not motet's {cls.PRIMARY} type: {cls.TYPE}")
        given = data.get("domain")
        if not isinstance(given, Mapping):
            raise InvalidDelegation("typed data has no domain")
        theirs = (
            given.get("name"),
            given.get("version"),
            _uint("domain.chainId", given.get("chainId")),
            _address("domain.verifyingContract", given.get("verifyingContract")),
        )
        ours = domain.typed_data_domain()
        if theirs[2] != domain.chain_id:
            raise InvalidDelegation(f"signed for chain {theirs[2]}, but this is chain {domain.chain_id}")
        if theirs[3] != domain.contract:
            raise InvalidDelegation(
                f"signed for the contract {theirs[3]}, but the channels contract here is {domain.contract}"
            )
        if theirs[:2] != (ours["name"], ours["version"]):
            raise InvalidDelegation(
                f"signed for the domain {theirs[0]!r} version {theirs[1]!r}, expected {ours['name']!r} "
                f"version {ours['version']!r}"
            )
        message = data.get("message")
        if not isinstance(message, Mapping):
            raise InvalidDelegation("typed data has no message")
        unknown = set(message) - set(cls.WIRE.values())
        if unknown:
            raise InvalidDelegation(f"{cls.PRIMARY} has no field {sorted(unknown)[0]!r}")
        return cls.from_message(message)

    @classmethod
    def _values(cls, message: Mapping[str, Any]) -> dict[str, object]:
        missing = [wire for wire in cls.WIRE.values() if wire not in message]
        if missing:
            raise InvalidDelegation(f"{cls.PRIMARY} is missing the field {missing[0]!r}")
        return {attr: message[wire] for attr, wire in cls.WIRE.items()}


@dataclass(frozen=True, slots=True)
class Delegation(_Typed):
    """What a wallet lets a session key spend: `cap` of `asset` in `[valid_after, expiry)` on `capabilities`."""

    delegator: str
    session_key: str
    cap: int
    valid_after: int
    expiry: int
    capabilities: tuple[str, ...]
    nonce: int
    asset: str = NATIVE_TOKEN
    """The ERC-20, or the zero address for the native coin."""

    TYPE: ClassVar[str] = DELEGATION_TYPE
    PRIMARY: ClassVar[str] = "Delegation"
    WIRE: ClassVar[dict[str, str]] = {
        "delegator": "delegator",
        "session_key": "sessionKey",
        "asset": "asset",
        "cap": "cap",
        "valid_after": "validAfter",
        "expiry": "expiry",
        "capabilities": "capabilities",
        "nonce": "nonce",
    }

    def __post_init__(self) -> None:
        for name in ("delegator", "session_key", "asset"):
            object.__setattr__(self, name, _address(name, getattr(self, name)))
        for name in ("cap", "valid_after", "expiry", "nonce"):
            _uint(name, getattr(self, name))
        caps = self.capabilities
        if isinstance(caps, str) or not isinstance(caps, Sequence):
            raise InvalidDelegation(f"capabilities must be a list of names, got {caps!r}")
        object.__setattr__(self, "capabilities", tuple(_text("capability", c) for c in caps))
        if not self.capabilities:
            raise InvalidDelegation(
                f"capabilities is empty: list the allowed ones, or {ANY_CAPABILITY!r} for any"
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

    def _encoded(self) -> bytes:
        return (
            _address_word(self.delegator)
            + _address_word(self.session_key)
            + _address_word(self.asset)
            + _word(self.cap)
            + _word(self.valid_after)
            + _word(self.expiry)
            + self.capabilities_hash
            + _word(self.nonce)
        )

    def allows(self, capability: str) -> bool:
        return ANY_CAPABILITY in self.capabilities or capability in self.capabilities

    def as_struct(self) -> tuple[Any, ...]:
        """The contract's `Delegation` struct argument."""
        return (
            self.delegator,
            self.session_key,
            self.asset,
            self.cap,
            self.valid_after,
            self.expiry,
            self.capabilities_hash,
            self.nonce,
        )

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> Delegation:
        values = cls._values(message)
        caps = values["capabilities"]
        if not isinstance(caps, list):
            raise InvalidDelegation(f"capabilities must be a list of names, got {caps!r}")
        return cls(
            delegator=_address("delegator", values["delegator"]),
            session_key=_address("sessionKey", values["session_key"]),
            asset=_address("asset", values["asset"]),
            cap=_uint("cap", values["cap"]),
            valid_after=_uint("validAfter", values["valid_after"]),
            expiry=_uint("expiry", values["expiry"]),
            capabilities=tuple(_text("capability", c) for c in caps),
            nonce=_uint("nonce", values["nonce"]),
        )


@dataclass(frozen=True, slots=True)
class TaskOrder(_Typed):
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
    PRIMARY: ClassVar[str] = "TaskOrder"
    WIRE: ClassVar[dict[str, str]] = {
        "delegation": "delegation",
        "workflow": "workflow",
        "goal": "goal",
        "inputs": "inputs",
        "budget": "budget",
        "deadline": "deadline",
        "nonce": "nonce",
    }

    def __post_init__(self) -> None:
        object.__setattr__(self, "delegation", _bytes32("delegation", self.delegation))
        for name in ("budget", "deadline", "nonce"):
            _uint(name, getattr(self, name))
        for name in ("workflow", "goal", "inputs"):
            _text(name, getattr(self, name))
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

    def _encoded(self) -> bytes:
        return (
            self.delegation
            + keccak(self.workflow.encode())
            + keccak(self.goal.encode())
            + keccak(self.inputs.encode())
            + _word(self.budget)
            + _word(self.deadline)
            + _word(self.nonce)
        )

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> TaskOrder:
        values = cls._values(message)
        return cls(
            delegation=_bytes32("delegation", values["delegation"]),
            workflow=_text("workflow", values["workflow"]),
            goal=_text("goal", values["goal"]),
            inputs=_text("inputs", values["inputs"]),
            budget=_uint("budget", values["budget"]),
            deadline=_uint("deadline", values["deadline"]),
            nonce=_uint("nonce", values["nonce"]),
        )


def sign_typed(private_key: bytes | str, digest: bytes) -> bytes:
    """Sign an EIP-712 digest: 65 bytes `r || s || v`, low s, v in {27, 28} (what a wallet returns)."""
    raw = bytes.fromhex(private_key.removeprefix("0x")) if isinstance(private_key, str) else private_key
    sig = PrivateKey(raw).sign_recoverable(digest, hasher=None)
    return sig[:64] + bytes((sig[64] + 27,))


def parse_signature(value: object) -> bytes:
    """A signature from its 0x-hex form; raises `InvalidDelegation`."""
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    raise InvalidDelegation(f"signature must be 0x-hex bytes, got {value!r}")


@dataclass(frozen=True, slots=True)
class DelegationState:
    """A registered delegation as the contract holds it."""

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
        """Why the contract would refuse to pay under this delegation at `now`, or None."""
        if self.revoked:
            return "the delegation is revoked"
        if now < self.valid_after:
            return f"the delegation is not valid before {self.valid_after} (now {now})"
        if now >= self.expiry:
            return f"the delegation expired at {self.expiry} (now {now})"
        return None


def _topic(address: str) -> str:
    return "0x" + bytes(12).hex() + _address("address", address)[2:].lower()


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

    def deposit(self, amount: int, *, token: str | None = None, owner: str | None = None) -> int:
        """Add to `owner`'s balance (this account's by default), paid by this account: what delegated channels
        are funded from. Returns the new balance."""
        owner = Web3.to_checksum_address(owner or self.account.address)
        asset = Web3.to_checksum_address(token) if token else NATIVE_TOKEN
        call = self.contract.functions.deposit_for(owner, asset, 0 if token is None else amount)
        if token is not None:
            self.chain.approve(token, self.contract.address, amount, sender=self.account)
        self.chain.send(call, sender=self.account, value=0 if token else amount, action="depositing")
        return self.balance(owner, token=token)

    def withdraw(self, amount: int, *, token: str | None = None) -> int:
        call = self.contract.functions.withdraw(token or NATIVE_TOKEN, amount)
        self.chain.send(call, sender=self.account, action="withdrawing")
        return self.balance(self.account.address, token=token)

    def balance(self, owner: str, *, token: str | None = None) -> int:
        """`owner`'s balance in the contract (not in channels)."""
        result = self.contract.functions.balances(
            Web3.to_checksum_address(owner), token or NATIVE_TOKEN
        ).call()
        return int(result)

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
            wallet = self.chain.w3.eth.contract(address=signer, abi=_ERC1271_ABI)
            try:
                answer = wallet.functions.isValidSignature(digest, signature).call()
            except Exception:
                return False
            return bytes(answer) == _ERC1271_MAGIC
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
    "read_delegation",
    "sign_typed",
]
