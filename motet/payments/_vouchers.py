"""EIP-712 vouchers: the off-chain promise that pays a call.

A voucher says "the payer of channel `channelId` owes its payee `cumulativeAmount` in total". It is bound to
one chain and one channels contract by the EIP-712 domain, so it is worthless anywhere else.

The fast path hashes the fixed struct directly (cached domain separator, keccak from safe-pysha3's C code) and
signs and recovers with libsecp256k1 through coincurve; `VoucherVerifier` caches each payer's public key so
that checking a payer's next voucher is one recovery (with the voucher's own v, exactly as the contract
recovers) compared with that key, without hashing it into an address. eth-account's
`encode_typed_data` on `Voucher.typed_data()` is the reference the tests compare against.

Example:
    >>> domain = ChannelDomain(chain_id=1, contract="0x" + "11" * 20)
    >>> signer = VoucherSigner("0x" + "01" * 32, domain)
    >>> voucher = signer.sign(channel_id=7, cumulative_amount=1_000)
    >>> recover_signer(voucher) == signer.address
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from motet.errors import InvalidVoucher
from motet.payments._eip712 import (
    Domain,
    Signer,
    SignerKeys,
    TypedStruct,
    keccak,
    recover_address,
    word,
)
from motet.payments._fields import Fields
from motet.units import UINT256_MAX, format_amount

DOMAIN_NAME = "motet-channels"
DOMAIN_VERSION = "1"
VOUCHER_TYPE = "Voucher(uint256 channelId,uint256 cumulativeAmount)"
"""The EIP-712 type string; `PaymentChannels.VOUCHER_TYPEHASH` is its keccak (a test checks)."""
VOUCHER_TYPEHASH = keccak(VOUCHER_TYPE.encode())


def _voucher_struct_hash(channel_id: int, cumulative_amount: int) -> bytes:
    # The fast path: the two words hashed directly, range-checked without a call per field.
    if not 0 <= channel_id <= UINT256_MAX or not 0 <= cumulative_amount <= UINT256_MAX:
        raise InvalidVoucher(
            f"channel id {channel_id} and amount {cumulative_amount} must both fit in a uint256"
        )
    return keccak(VOUCHER_TYPEHASH + word(channel_id) + word(cumulative_amount))


@dataclass(frozen=True, slots=True)
class ChannelDomain(Domain):
    """The EIP-712 domain of one channels contract on one chain: vouchers and delegations are signed in it."""

    NAME: ClassVar[str] = DOMAIN_NAME
    VERSION: ClassVar[str] = DOMAIN_VERSION
    FIELDS: ClassVar[Fields] = Fields.of("channel domain", InvalidVoucher)

    def voucher_digest(self, channel_id: int, cumulative_amount: int) -> bytes:
        """The 32-byte digest a payer signs for `(channel_id, cumulative_amount)`."""
        return self.digest_of(_voucher_struct_hash(channel_id, cumulative_amount))


@dataclass(frozen=True, slots=True)
class Voucher(TypedStruct):
    """A signed voucher: `signature` is 65 bytes `r || s || v` with v in {27, 28}."""

    TYPE: ClassVar[str] = VOUCHER_TYPE
    FIELDS: ClassVar[Fields] = Fields.of("voucher", InvalidVoucher)

    domain: ChannelDomain
    channel_id: int
    cumulative_amount: int
    signature: bytes = field(repr=False)

    def struct_hash(self) -> bytes:
        return _voucher_struct_hash(self.channel_id, self.cumulative_amount)

    def __repr__(self) -> str:
        return (
            f"Voucher(channel {hex(self.channel_id)}, {format_amount(self.cumulative_amount)} in all, "
            f"chain {self.domain.chain_id}, channels {_short(self.domain.contract)})"
        )

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


class VoucherSigner(Signer):
    """Signs vouchers for one domain with one key, on the fast path.

    It does not remember what it signed: `ChannelClient.pay` pairs it with the `Ledger`, which refuses to go
    below the highest persisted amount.
    """

    __slots__ = ("domain",)

    def __init__(self, private_key: bytes | str, domain: ChannelDomain) -> None:
        super().__init__(private_key)
        self.domain = domain

    def sign(self, channel_id: int, cumulative_amount: int) -> Voucher:
        digest = self.domain.voucher_digest(channel_id, cumulative_amount)
        return Voucher(self.domain, channel_id, cumulative_amount, self.sign_digest(digest))

    def __repr__(self) -> str:
        return f"VoucherSigner(address={self.address!r}, domain={self.domain!r})"


def recover_signer(voucher: Voucher) -> str:
    """The address that signed `voucher`; raises `InvalidVoucher` on a malformed signature.

    Applies the same rules as the contract: 65 bytes, v in {27, 28}, low s, recovered address not zero.
    """
    return recover_digest_signer(voucher.digest(), voucher.signature)


def recover_digest_signer(digest: bytes, signature: bytes) -> str:
    """The address that signed `digest`, under the contract's signature rules; raises `InvalidVoucher`."""
    return recover_address(digest, signature, InvalidVoucher)


class VoucherVerifier:
    """Checks that vouchers of one domain were signed by the expected payer, fast.

    The first voucher from a payer is checked by recovery; its public key is then cached and later vouchers
    are recovered (with their own v: a voucher passes only if the contract would recover the same signer)
    and compared with it.

    Example:
        >>> verifier = VoucherVerifier(domain)
        >>> verifier.verify(voucher, payer="0x...")   # raises InvalidVoucher if not
    """

    __slots__ = ("_keys", "domain")

    def __init__(self, domain: ChannelDomain) -> None:
        self.domain = domain
        self._keys = SignerKeys()

    def verify(self, voucher: Voucher, payer: str) -> None:
        """Raise `InvalidVoucher` unless `voucher` is for this domain and signed by `payer`."""
        if voucher.domain != self.domain:
            raise InvalidVoucher(
                f"voucher is for chain {voucher.domain.chain_id} contract {voucher.domain.contract}, "
                f"expected chain {self.domain.chain_id} contract {self.domain.contract}"
            )
        digest = self.domain.voucher_digest(voucher.channel_id, voucher.cumulative_amount)
        expected = bytes.fromhex(payer.removeprefix("0x"))
        wrong = self._keys.check(digest, voucher.signature, expected, InvalidVoucher)
        if wrong == "":
            raise InvalidVoucher(
                f"voucher for channel {hex(voucher.channel_id)} is not signed by the payer {payer}"
            )
        if wrong is not None:
            raise InvalidVoucher(
                f"voucher for channel {hex(voucher.channel_id)} is signed by {wrong}, not by the payer {payer}"
            )


def _short(address: str) -> str:
    """`0x5FbDB2315678afecb367f032d93F642f64180aa3` → `0x5FbD…0aa3`."""
    return address if len(address) <= 12 else f"{address[:6]}…{address[-4:]}"
