"""One EIP-712 core: hashing, domains, the typed-struct base, signing and recovery.

`Voucher`, `Receipt`, `Delegation` and `TaskOrder` are `TypedStruct`s: each names its EIP-712 type string, and
the base derives from it the type hash, the field list, one `struct_hash()`, one `digest(domain)`, one
`typed_data(domain)` (the JSON `eth_signTypedData_v4` signs) and one parser of that JSON back. Python attribute
names are the EIP-712 names in snake case (`cumulativeAmount` is `cumulative_amount`).

Signing and recovery take the fast path: keccak from safe-pysha3's C code, domain separators and checksummed
addresses cached, and libsecp256k1 (through coincurve) to sign, recover and verify. Signatures follow the
contract's rules: 65 bytes `r || s || v`, v in {27, 28}, s in the lower half of the curve order.

Fields are checked by `motet.payments._fields.Fields`, the one family of validators: each struct and domain names
one that raises its own error (`InvalidVoucher`, `InvalidReceipt`, `InvalidDelegation`).

Example:
    >>> class Ping(TypedStruct):
    ...     TYPE = "Ping(uint256 count)"
    ...     def __init__(self, count: int) -> None:
    ...         self.count = count
    >>> Ping(7).message()
    {'count': '7'}
    >>> Ping.TYPEHASH == keccak(b"Ping(uint256 count)")
    True
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar, Literal, Self

import sha3
from coincurve import PrivateKey, PublicKey
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from motet.payments._fields import Fields, checksum_address

UINT64_MAX = 2**64 - 1

DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
"""The EIP-712 domain type every motet struct is signed under."""

# secp256k1 group order and half of it: signatures with s above the half are malleable twins.
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _SECP256K1_N // 2
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


# -- hashing --------------------------------------------------------------------------------------------


def keccak(data: bytes) -> bytes:
    """keccak-256 of `data`."""
    digest: bytes = sha3.keccak_256(data).digest()
    return digest


def word(value: int) -> bytes:
    """A uint as one 32-byte big-endian EIP-712 word."""
    return value.to_bytes(32, "big")


def address_word(address: str) -> bytes:
    """A 0x-hex address as one EIP-712 word (left-padded with zeros)."""
    return bytes(12) + bytes.fromhex(address[2:])


def eip712_fields(type_string: str) -> list[dict[str, str]]:
    """The EIP-712 field list of a type string: `[{"name": ..., "type": ...}, ...]`.

    Example:
        >>> eip712_fields("Voucher(uint256 channelId,uint256 cumulativeAmount)")[1]
        {'name': 'cumulativeAmount', 'type': 'uint256'}
    """
    inner = type_string[type_string.index("(") + 1 : -1]
    return [{"name": name, "type": kind} for kind, name in (part.split(" ") for part in inner.split(","))]


DOMAIN_FIELDS = eip712_fields(DOMAIN_TYPE)
_DOMAIN_TYPEHASH = keccak(DOMAIN_TYPE.encode())


@lru_cache(maxsize=256)
def _separator(name: str, version: str, chain_id: int, contract: str) -> bytes:
    return keccak(
        _DOMAIN_TYPEHASH
        + keccak(name.encode())
        + keccak(version.encode())
        + word(chain_id)
        + address_word(contract)
    )


# -- domains --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Domain:
    """An EIP-712 domain: the subclass's `NAME` and `VERSION`, on one chain, for one verifying contract.

    `contract` is normalised to its checksum form; the domain separator is computed once per domain.
    """

    NAME: ClassVar[str]
    VERSION: ClassVar[str] = "1"
    FIELDS: ClassVar[Fields]

    chain_id: int
    contract: str
    separator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.FIELDS.uint("chainId", self.chain_id)
        contract = self.FIELDS.address("contract", self.contract)
        object.__setattr__(self, "contract", contract)
        object.__setattr__(self, "separator", _separator(self.NAME, self.VERSION, self.chain_id, contract))

    def digest_of(self, struct_hash: bytes) -> bytes:
        """The 32-byte digest signed for a struct hash in this domain: keccak(0x1901 ‖ separator ‖ hash)."""
        return keccak(b"\x19\x01" + self.separator + struct_hash)

    def typed_data_domain(self) -> dict[str, Any]:
        """The `domain` member of the typed data."""
        return {
            "name": self.NAME,
            "version": self.VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.contract,
        }


# -- typed structs --------------------------------------------------------------------------------------


def _encode_string_array(values: tuple[str, ...]) -> bytes:
    return keccak(b"".join(keccak(value.encode()) for value in values))


def _encoder(kind: str) -> Callable[[Any], bytes]:
    """How `encodeData` writes a value of the EIP-712 type `kind` as one word."""
    if kind.startswith("uint"):
        return word
    encoders: dict[str, Callable[[Any], bytes]] = {
        "address": address_word,
        "bytes32": bytes,
        "string": lambda value: keccak(value.encode()),
        "string[]": _encode_string_array,
    }
    return encoders[kind]


def _checker(kind: str, strings: Literal["no", "any"]) -> Callable[[Fields, str, Any], Any]:
    """The validator of a value of the EIP-712 type `kind`; with `strings="any"`, integers may be strings."""
    if kind.startswith("uint"):
        bits = int(kind[4:])
        return lambda fields, name, value: fields.uint(name, value, bits=bits, strings=strings)
    checkers: dict[str, Callable[[Fields, str, Any], Any]] = {
        "address": Fields.address,
        "bytes32": Fields.bytes32,
        "string": Fields.text,
        "string[]": Fields.texts,
    }
    return checkers[kind]


def _json(kind: str, value: Any) -> Any:
    if kind.startswith("uint"):
        return str(value)  # wallets and JavaScript lose precision on big JSON numbers
    if kind == "bytes32":
        return "0x" + value.hex()
    if kind == "string[]":
        return list(value)
    return value


class TypedStruct:
    """The base of every EIP-712 struct motet signs: one hash, digest, typed data and parser for all.

    A subclass sets `TYPE` (the EIP-712 type string) and `FIELDS` (validators raising its error) and has one
    attribute per EIP-712 field, named in snake case. Structs that carry their domain (a `domain` attribute:
    vouchers, receipts) digest in it by default; the others (delegations, task orders) are given one.
    """

    __slots__ = ()

    TYPE: ClassVar[str]
    FIELDS: ClassVar[Fields]
    PRIMARY: ClassVar[str]
    """The primary type's name (`Voucher` for `Voucher(uint256 channelId,...)`)."""
    TYPEHASH: ClassVar[bytes]
    SPEC: ClassVar[tuple[tuple[str, str, str], ...]]
    """(attribute, EIP-712 name, EIP-712 type) of each field, in the type's order."""
    _ENCODE: ClassVar[tuple[tuple[str, Callable[[Any], bytes]], ...]]
    _CHECK: ClassVar[tuple[tuple[str, str, Callable[[Fields, str, Any], Any]], ...]]
    _PARSE: ClassVar[tuple[tuple[str, str, Callable[[Fields, str, Any], Any]], ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "TYPE" in cls.__dict__:
            cls.PRIMARY = cls.TYPE[: cls.TYPE.index("(")]
            cls.TYPEHASH = keccak(cls.TYPE.encode())
            cls.SPEC = tuple(
                (_CAMEL.sub("_", f["name"]).lower(), f["name"], f["type"]) for f in eip712_fields(cls.TYPE)
            )
            cls._ENCODE = tuple((attr, _encoder(kind)) for attr, _, kind in cls.SPEC)
            cls._CHECK = tuple((attr, name, _checker(kind, "no")) for attr, name, kind in cls.SPEC)
            cls._PARSE = tuple((attr, name, _checker(kind, "any")) for attr, name, kind in cls.SPEC)

    def _check_fields(self) -> None:
        """Validate every field by its EIP-712 type (integers must be `int`s), storing normalised values."""
        fields = self.FIELDS
        for attr, name, check in self._CHECK:
            value = getattr(self, attr)
            checked = check(fields, name, value)
            if checked is not value:
                object.__setattr__(self, attr, checked)

    def struct_hash(self) -> bytes:
        """`hashStruct`: keccak of the type hash and the encoded fields."""
        return keccak(self.TYPEHASH + b"".join(encode(getattr(self, attr)) for attr, encode in self._ENCODE))

    def _domain(self, domain: Domain | None) -> Domain:
        if domain is not None:
            return domain
        own = getattr(self, "domain", None)
        if not isinstance(own, Domain):
            raise TypeError(f"a {self.PRIMARY} carries no domain: pass the one it is signed in")
        return own

    def digest(self, domain: Domain | None = None) -> bytes:
        """The 32-byte EIP-712 digest signed for this struct in `domain` (by default its own)."""
        return self._domain(domain).digest_of(self.struct_hash())

    def message(self) -> dict[str, Any]:
        """The EIP-712 message, JSON-safe: integers as decimal strings, bytes as 0x-hex."""
        return {name: _json(kind, getattr(self, attr)) for attr, name, kind in self.SPEC}

    @classmethod
    def types(cls) -> dict[str, list[dict[str, str]]]:
        """The `types` member of the typed data."""
        return {"EIP712Domain": DOMAIN_FIELDS, cls.PRIMARY: eip712_fields(cls.TYPE)}

    def typed_data(self, domain: Domain | None = None) -> dict[str, Any]:
        """The full typed data, as `eth_signTypedData_v4` and eth-account's `encode_typed_data` take it."""
        return {
            "types": self.types(),
            "primaryType": self.PRIMARY,
            "domain": self._domain(domain).typed_data_domain(),
            "message": self.message(),
        }

    @classmethod
    def from_message(cls, message: Mapping[str, Any], **extra: Any) -> Self:
        """Parse an EIP-712 message (integers as numbers, decimal or 0x-hex strings); `extra` gives the
        constructor what the message does not hold (a receipt's `domain` and `signature`)."""
        names = [name for _, name, _ in cls.SPEC]
        unknown = sorted(set(message) - set(names))
        if unknown:
            raise cls.FIELDS.refusal(f"{cls.PRIMARY} has no field {unknown[0]!r}")
        missing = [name for name in names if name not in message]
        if missing:
            raise cls.FIELDS.refusal(f"{cls.PRIMARY} is missing the field {missing[0]!r}")
        values = dict(extra)
        for attr, name, parse in cls._PARSE:
            values[attr] = parse(cls.FIELDS, name, message[name])
        return cls(**values)

    @classmethod
    def from_typed_data(cls, data: object, domain: Domain, **extra: Any) -> Self:
        """Parse typed data signed elsewhere, refusing anything whose types or domain are not motet's
        `TYPE` and `domain` exactly (typed data for another chain or contract says which). A struct that
        carries its domain gets `domain`; `extra` gives the rest the message does not hold (a `signature`)."""
        refusal = cls.FIELDS.refusal
        if not isinstance(data, Mapping):
            raise refusal(f"typed data must be a JSON object, got {type(data).__name__}")
        if data.get("primaryType") != cls.PRIMARY:
            raise refusal(
                f"typed data's primaryType is {data.get('primaryType')!r}, expected {cls.PRIMARY!r}"
            )
        types, expected = data.get("types"), cls.types()
        if not isinstance(types, Mapping) or set(types) != set(expected) or dict(types) != expected:
            raise refusal(f"typed data's types are not motet's {cls.PRIMARY} type: {cls.TYPE}")
        given = data.get("domain")
        if not isinstance(given, Mapping):
            raise refusal("typed data has no domain")
        chain_id = cls.FIELDS.uint("domain.chainId", given.get("chainId"), strings="any")
        contract = cls.FIELDS.address("domain.verifyingContract", given.get("verifyingContract"))
        if chain_id != domain.chain_id:
            raise refusal(f"signed for chain {chain_id}, but this is chain {domain.chain_id}")
        if contract != domain.contract:
            raise refusal(
                f"signed for the contract {contract}, but the channels contract here is {domain.contract}"
            )
        if (given.get("name"), given.get("version")) != (domain.NAME, domain.VERSION):
            raise refusal(
                f"signed for the domain {given.get('name')!r} version {given.get('version')!r}, expected "
                f"{domain.NAME!r} version {domain.VERSION!r}"
            )
        message = data.get("message")
        if not isinstance(message, Mapping):
            raise refusal("typed data has no message")
        if "domain" in getattr(cls, "__dataclass_fields__", {}):
            extra = {"domain": domain, **extra}
        return cls.from_message(message, **extra)


# -- signing and recovery -------------------------------------------------------------------------------


def _raw_address(public_key: PublicKey) -> bytes:
    return keccak(public_key.format(compressed=False)[1:])[-20:]


def address_of(public_key: PublicKey) -> str:
    """The checksummed Ethereum address of a secp256k1 public key."""
    return checksum_address(_raw_address(public_key))


class Signer:
    """One private key signing EIP-712 digests on the fast path (what a wallet's `eth_signTypedData` returns).

    Example:
        >>> signer = Signer("0x" + "01" * 32)
        >>> signer.address
        '0x1a642f0E3c3aF545E7AcBD38b07251B3990914F1'
        >>> recover_address(bytes(32), signer.sign_digest(bytes(32)), ValueError) == signer.address
        True
    """

    __slots__ = ("_key", "address")

    def __init__(self, private_key: bytes | str) -> None:
        raw = bytes.fromhex(private_key.removeprefix("0x")) if isinstance(private_key, str) else private_key
        self._key = PrivateKey(raw)
        self.address: str = address_of(self._key.public_key)

    def sign_digest(self, digest: bytes) -> bytes:
        """65 bytes `r || s || v`: libsecp256k1 always produces low s, and recid 0/1 becomes v 27/28."""
        sig = self._key.sign_recoverable(digest, hasher=None)
        return sig[:64] + bytes((sig[64] + 27,))


def sign_typed(private_key: bytes | str, digest: bytes) -> bytes:
    """Sign an EIP-712 digest: 65 bytes `r || s || v`, low s, v in {27, 28} (what a wallet returns)."""
    return Signer(private_key).sign_digest(digest)


def signature_problem(signature: bytes) -> str | None:
    """Why `signature` breaks the contract's rules (65 bytes `r || s || v`, v in {27, 28}, low s), or None."""
    if len(signature) != 65:
        return f"signature is {len(signature)} bytes; it must be 65 (r, s, v)"
    v = signature[64]
    if v not in (27, 28):
        return f"signature v is {v}; it must be 27 or 28"
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not 0 < r < _SECP256K1_N or not 0 < s <= _HALF_N:
        return "signature r or s is out of range (s must be in the lower half of the curve order)"
    return None


def recover_public_key(digest: bytes, signature: bytes, error: Callable[[str], Exception]) -> PublicKey:
    """The public key that signed `digest`; `error(problem)` is raised for a signature the contract refuses."""
    problem = signature_problem(signature)
    if problem is not None:
        raise error(problem)
    try:
        return PublicKey.from_signature_and_message(
            signature[:64] + bytes((signature[64] - 27,)), digest, hasher=None
        )
    except Exception as exc:
        raise error("signature does not recover to any public key") from exc


def recover_address(digest: bytes, signature: bytes, error: Callable[[str], Exception]) -> str:
    """The checksummed address that signed `digest`, under the contract's signature rules."""
    return checksum_address(_raw_address(recover_public_key(digest, signature, error)))


class SignerKeys:
    """The public keys of signers already seen, so that a known signer's next signature costs one recovery
    and a key comparison (no hashing of the key into an address); past `max_keys` signers (None: no bound)
    the oldest is dropped. The recovery uses the signature's own v, like the contract's `ecrecover`: the
    v-flipped twin of a good signature recovers another key and is refused."""

    __slots__ = ("_keys", "max_keys")

    def __init__(self, max_keys: int | None = None) -> None:
        self.max_keys = max_keys
        self._keys: dict[bytes, Any] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def check(
        self, digest: bytes, signature: bytes, signer: bytes, error: Callable[[str], Exception]
    ) -> str | None:
        """None when the 20-byte address `signer` signed `digest`; otherwise who did: the recovered address,
        or "" when `signer`'s cached key refuses the signature. Raises `error(problem)` for a malformed one."""
        cached = self._keys.get(signer)
        if cached is not None:
            problem = signature_problem(signature)
            if problem is not None:
                raise error(problem)
            # Recover with the given v, as the contract does, and compare with the cached key: a bare
            # verify of (r, s) would accept the twin signature whose v is flipped, which recovers to another
            # address on chain.
            ctx = GLOBAL_CONTEXT.ctx
            sig = ffi.new("secp256k1_ecdsa_recoverable_signature *")
            recovered = ffi.new("secp256k1_pubkey *")
            if (
                lib.secp256k1_ecdsa_recoverable_signature_parse_compact(
                    ctx, sig, signature[:64], signature[64] - 27
                )
                and lib.secp256k1_ecdsa_recover(ctx, recovered, sig, digest)
                and lib.secp256k1_ec_pubkey_cmp(ctx, recovered, cached) == 0
            ):
                return None
            return ""
        public_key = recover_public_key(digest, signature, error)
        raw = _raw_address(public_key)
        if raw != signer:
            return checksum_address(raw)
        if self.max_keys is not None and len(self._keys) >= self.max_keys:
            del self._keys[next(iter(self._keys))]
        self._keys[signer] = public_key.public_key
        return None
