"""EIP-712 vouchers: the off-chain promise that pays a call.

A voucher says "the payer of channel `channelId` owes its payee `cumulativeAmount` in total". It is bound to
one chain and one channels contract by the EIP-712 domain, so it is worthless anywhere else.

The fast path hashes the fixed struct directly (cached domain separator, keccak from safe-pysha3's C code) and
signs, recovers and verifies with libsecp256k1 through coincurve; `VoucherVerifier` caches each payer's public
key so that checking a payer's next voucher is one ECDSA verify, not a recovery. eth-account's
`encode_typed_data` on `Voucher.typed_data()` is the reference the tests compare against.

Example:
    >>> domain = ChannelDomain(chain_id=1, contract="0x" + "11" * 20)
    >>> signer = VoucherSigner("0x" + "01" * 32, domain)
    >>> voucher = signer.sign(channel_id=7, cumulative_amount=1_000)
    >>> recover_signer(voucher) == signer.address
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sha3
from coincurve import PrivateKey, PublicKey
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT
from eth_utils.address import to_checksum_address

from motet.errors import InvalidVoucher

DOMAIN_NAME = "motet-channels"
DOMAIN_VERSION = "1"
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
VOUCHER_TYPE = "Voucher(uint256 channelId,uint256 cumulativeAmount)"
"""The EIP-712 type string; `PaymentChannels.VOUCHER_TYPEHASH` is its keccak (a test checks)."""

_UINT256_MAX = 2**256 - 1
# secp256k1 group order and half of it: signatures with s above the half are malleable twins.
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _SECP256K1_N // 2


@lru_cache(maxsize=4096)
def checksum_address(address: str | bytes) -> str:
    """The EIP-55 checksummed form of an address (cached: a payment path meets the same few addresses)."""
    return to_checksum_address(address)


def keccak(data: bytes) -> bytes:
    """keccak-256 of `data`."""
    digest: bytes = sha3.keccak_256(data).digest()
    return digest


VOUCHER_TYPEHASH = keccak(VOUCHER_TYPE.encode())
_DOMAIN_TYPEHASH = keccak(DOMAIN_TYPE.encode())


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _raw_address(public_key: PublicKey) -> bytes:
    return keccak(public_key.format(compressed=False)[1:])[-20:]


def address_of(public_key: PublicKey) -> str:
    """The checksummed Ethereum address of a secp256k1 public key."""
    return checksum_address(_raw_address(public_key))


@dataclass(frozen=True, slots=True)
class ChannelDomain:
    """The EIP-712 domain of one channels contract on one chain."""

    chain_id: int
    contract: str
    separator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        contract = checksum_address(self.contract)
        object.__setattr__(self, "contract", contract)
        separator = keccak(
            _DOMAIN_TYPEHASH
            + keccak(DOMAIN_NAME.encode())
            + keccak(DOMAIN_VERSION.encode())
            + _word(self.chain_id)
            + bytes(12)
            + bytes.fromhex(contract[2:])
        )
        object.__setattr__(self, "separator", separator)

    def voucher_digest(self, channel_id: int, cumulative_amount: int) -> bytes:
        """The 32-byte digest a payer signs for `(channel_id, cumulative_amount)`."""
        if not 0 <= channel_id <= _UINT256_MAX or not 0 <= cumulative_amount <= _UINT256_MAX:
            raise InvalidVoucher(
                f"channel id {channel_id} and amount {cumulative_amount} must both fit in a uint256"
            )
        struct_hash = keccak(VOUCHER_TYPEHASH + _word(channel_id) + _word(cumulative_amount))
        return keccak(b"\x19\x01" + self.separator + struct_hash)

    def typed_data_domain(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.contract,
        }


@dataclass(frozen=True, slots=True)
class Voucher:
    """A signed voucher: `signature` is 65 bytes `r || s || v` with v in {27, 28}."""

    domain: ChannelDomain
    channel_id: int
    cumulative_amount: int
    signature: bytes = field(repr=False)

    @property
    def digest(self) -> bytes:
        return self.domain.voucher_digest(self.channel_id, self.cumulative_amount)

    def typed_data(self) -> dict[str, Any]:
        """The full EIP-712 typed data, as `eth_signTypedData_v4` and eth-account take it."""
        return {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "Voucher": [
                    {"name": "channelId", "type": "uint256"},
                    {"name": "cumulativeAmount", "type": "uint256"},
                ],
            },
            "primaryType": "Voucher",
            "domain": self.domain.typed_data_domain(),
            "message": {"channelId": self.channel_id, "cumulativeAmount": self.cumulative_amount},
        }

    def to_dict(self) -> dict[str, Any]:
        """The wire form (JSON-safe: big integers as decimal strings)."""
        return {
            "chainId": self.domain.chain_id,
            "contract": self.domain.contract,
            "channelId": str(self.channel_id),
            "cumulativeAmount": str(self.cumulative_amount),
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Voucher:
        """Parse the wire form; raises `InvalidVoucher` naming the bad field."""
        try:
            domain = ChannelDomain(int(data["chainId"]), str(data["contract"]))
            channel_id = int(data["channelId"])
            amount = int(data["cumulativeAmount"])
            signature = bytes.fromhex(str(data["signature"]).removeprefix("0x"))
        except KeyError as exc:
            raise InvalidVoucher(f"voucher is missing the field {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise InvalidVoucher(f"voucher has a malformed field: {exc}") from exc
        return cls(domain, channel_id, amount, signature)


class VoucherSigner:
    """Signs vouchers for one domain with one key, on the fast path.

    It does not remember what it signed: `ChannelClient.pay` pairs it with the `Ledger`, which refuses to go
    below the highest persisted amount.
    """

    __slots__ = ("_key", "address", "domain")

    def __init__(self, private_key: bytes | str, domain: ChannelDomain) -> None:
        raw = bytes.fromhex(private_key.removeprefix("0x")) if isinstance(private_key, str) else private_key
        self._key = PrivateKey(raw)
        self.address = address_of(self._key.public_key)
        self.domain = domain

    def sign(self, channel_id: int, cumulative_amount: int) -> Voucher:
        digest = self.domain.voucher_digest(channel_id, cumulative_amount)
        return Voucher(self.domain, channel_id, cumulative_amount, self.sign_digest(digest))

    def sign_digest(self, digest: bytes) -> bytes:
        # libsecp256k1 always produces low-s signatures; recid 0/1 becomes v 27/28.
        sig = self._key.sign_recoverable(digest, hasher=None)
        return sig[:64] + bytes((sig[64] + 27,))

    def __repr__(self) -> str:
        return f"VoucherSigner(address={self.address!r}, domain={self.domain!r})"


def recover_signer(voucher: Voucher) -> str:
    """The address that signed `voucher`; raises `InvalidVoucher` on a malformed signature.

    Applies the same rules as the contract: 65 bytes, v in {27, 28}, low s, recovered address not zero.
    """
    return recover_digest_signer(voucher.digest, voucher.signature)


def recover_digest_signer(digest: bytes, signature: bytes) -> str:
    """The address that signed `digest`, under the contract's signature rules."""
    return checksum_address(_raw_address(recover_public_key(digest, signature)))


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


def recover_public_key(
    digest: bytes, signature: bytes, error: Callable[[str], Exception] = InvalidVoucher
) -> PublicKey:
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


class VoucherVerifier:
    """Checks that vouchers of one domain were signed by the expected payer, fast.

    The first voucher from a payer is checked by recovery; its public key is then cached and later vouchers
    cost one ECDSA verify.

    Example:
        >>> verifier = VoucherVerifier(domain)
        >>> verifier.verify(voucher, payer="0x...")   # raises InvalidVoucher if not
    """

    __slots__ = ("_keys", "domain")

    def __init__(self, domain: ChannelDomain) -> None:
        self.domain = domain
        self._keys: dict[bytes, Any] = {}

    def verify(self, voucher: Voucher, payer: str) -> None:
        """Raise `InvalidVoucher` unless `voucher` is for this domain and signed by `payer`."""
        if voucher.domain != self.domain:
            raise InvalidVoucher(
                f"voucher is for chain {voucher.domain.chain_id} contract {voucher.domain.contract}, "
                f"expected chain {self.domain.chain_id} contract {self.domain.contract}"
            )
        expected = bytes.fromhex(payer.removeprefix("0x"))
        digest = self.domain.voucher_digest(voucher.channel_id, voucher.cumulative_amount)
        cached = self._keys.get(expected)
        if cached is not None:
            problem = signature_problem(voucher.signature)
            if problem is not None:
                raise InvalidVoucher(problem)
            sig = ffi.new("secp256k1_ecdsa_signature *")
            ctx = GLOBAL_CONTEXT.ctx
            if lib.secp256k1_ecdsa_signature_parse_compact(ctx, sig, voucher.signature[:64]) and (
                lib.secp256k1_ecdsa_verify(ctx, sig, digest, cached)
            ):
                return
            raise InvalidVoucher(
                f"voucher for channel {voucher.channel_id} is not signed by the payer {payer}"
            )
        public_key = recover_public_key(digest, voucher.signature)
        if _raw_address(public_key) != expected:
            raise InvalidVoucher(
                f"voucher for channel {voucher.channel_id} is signed by {address_of(public_key)}, "
                f"not by the payer {payer}"
            )
        self._keys[expected] = public_key.public_key
