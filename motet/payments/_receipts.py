"""EIP-712 receipts: the agent's signed statement of what it delivered, for what, and at what price.

An agent signs one receipt per answer. The receipt says: "for the request whose hash is `requestHash`
(capability, input, channel and call number), I answered with the content whose hash is `responseHash`,
charged `price` on channel `channelId` as call number `seq`, and the answer came from the model whose
`ModelRef` hashes to `modelRef`". The payer keeps it as evidence for reputation and disputes.

What a receipt proves, and what it does not:

- It proves that the holder of the agent's key committed to exactly this request, response, price and model.
  Any change to any of them (or to the chain or contract of the domain) breaks the signature, so the agent
  cannot later deny an answer it signed, and the payer cannot present an answer the agent never gave.
- It does not prove that the answer is correct or that the named model really produced it: it makes a wrong
  or misattributed answer *attributable*, which is what reputation and disputes need.
- It is bound to one chain and one channels contract by its EIP-712 domain. The domain's name,
  `motet-receipts`, differs from the vouchers' `motet-channels`, and the struct type differs too, so a receipt
  signature can never be replayed as a voucher (or the other way round).

Hashes are keccak-256 of canonical JSON (`canonical_json`): `request_hash` for the request, `content_hash` of
the output for the response, `model_ref_hash` for the model. Signing and verifying take the same fast path
as vouchers: the struct is hashed directly under a cached domain separator, and libsecp256k1 (through
coincurve) signs and recovers. eth-account's `encode_typed_data` on `Receipt.typed_data()` is the reference the
tests compare against.

Example:
    >>> from motet.runtimes import ModelRef
    >>> domain = ReceiptDomain(chain_id=1, contract="0x" + "11" * 20)
    >>> agent = ReceiptSigner("0x" + "01" * 32, domain)
    >>> ref = ModelRef("llama.cpp", "0.3.36", "SmolLM2-135M-Instruct", "ab" * 32, "Q4_1")
    >>> receipt = agent.sign(
    ...     request_hash=request_hash("text.summarize", {"text": "the cat sat"}, channel_id=7, seq=1),
    ...     response_hash=content_hash({"summary": "a cat sat"}),
    ...     price=1_000,
    ...     channel_id=7,
    ...     seq=1,
    ...     model_ref=model_ref_hash(ref),
    ... )
    >>> verify_receipt(receipt, agent.address)   # raises InvalidReceipt if not
    >>> Receipt.from_dict(receipt.to_dict(), domain) == receipt
    True
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from motet.errors import InvalidReceipt
from motet.payments._eip712 import (
    Domain,
    Signer,
    SignerKeys,
    TypedStruct,
    keccak,
    recover_address,
    signature_problem,
)
from motet.payments._fields import Fields
from motet.payments._vouchers import ChannelDomain
from motet.runtimes._protocol import ModelRef
from motet.units import format_amount

RECEIPT_DOMAIN_NAME = "motet-receipts"
RECEIPT_DOMAIN_VERSION = "1"
RECEIPT_TYPE = (
    "Receipt(bytes32 requestHash,bytes32 responseHash,uint256 price,uint256 channelId,uint64 seq,"
    "bytes32 modelRef)"
)
"""The EIP-712 type string of a receipt."""
RECEIPT_TYPEHASH = keccak(RECEIPT_TYPE.encode())

_FIELDS = Fields.of("receipt", InvalidReceipt)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def canonical_json(value: object) -> bytes:
    """The canonical UTF-8 JSON of `value`: sorted keys, no spaces, no ASCII escaping, no NaN or infinity.

    Raises `TypeError` for values JSON cannot hold and `ValueError` for NaN or infinity. Floats are written by
    Python's `repr`; hash integers and strings when other languages must reproduce the bytes.

    Example:
        >>> canonical_json({"b": [1, 2], "a": "é"})
        b'{"a":"\\xc3\\xa9","b":[1,2]}'
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def content_hash(value: object) -> bytes:
    """keccak-256 of `canonical_json(value)`: the `responseHash` of an output is `content_hash(output)`.

    Example:
        >>> content_hash({"b": 1, "a": 2}) == content_hash({"a": 2, "b": 1})
        True
        >>> len(content_hash("hello"))
        32
    """
    return keccak(canonical_json(value))


def model_ref_hash(ref: ModelRef) -> bytes:
    """The `modelRef` of a receipt: `content_hash` of the `ModelRef`'s fields as a dict.

    Example:
        >>> from motet.runtimes import ModelRef
        >>> ref = ModelRef("llama.cpp", "0.3.36", "SmolLM2-135M-Instruct", "ab" * 32, "Q4_1")
        >>> model_ref_hash(ref) == content_hash(
        ...     {"runtime": "llama.cpp", "runtime_version": "0.3.36", "model": "SmolLM2-135M-Instruct",
        ...      "sha256": "ab" * 32, "quantization": "Q4_1", "endpoint": ""})
        True
    """
    return _model_ref_hash(ref)


@functools.lru_cache(maxsize=256)
def _model_ref_hash(ref: ModelRef) -> bytes:  # an agent answers from the same few models: hash each once
    return content_hash(dataclasses.asdict(ref))


def channel_hex(channel_id: int) -> str:
    """A channel id as the request hash writes it: `0x` and 64 lowercase hex digits (a uint256 word).

    Example:
        >>> channel_hex(255)
        '0x00000000000000000000000000000000000000000000000000000000000000ff'
    """
    _FIELDS.uint("channelId", channel_id)
    return "0x" + f"{channel_id:064x}"


def request_hash(capability: str, input: object, channel_id: int, seq: int) -> bytes:
    """The `requestHash` of a receipt: `content_hash` of the capability, its input, the channel and `seq`.

    The hashed object is `{"capability": capability, "input": input, "channel": channel_hex(channel_id),
    "seq": seq}`. Binding the channel and call number makes two identical questions on the same channel
    distinct requests. Raises `InvalidReceipt` when `channel_id` is not a uint256 or `seq` not a uint64.

    Example:
        >>> request_hash("text.summarize", {"text": "hi"}, channel_id=7, seq=1) == content_hash({
        ...     "capability": "text.summarize", "input": {"text": "hi"},
        ...     "channel": "0x" + "00" * 31 + "07", "seq": 1})
        True
    """
    _FIELDS.uint("seq", seq, bits=64)
    return content_hash(
        {"capability": capability, "input": input, "channel": channel_hex(channel_id), "seq": seq}
    )


@dataclass(frozen=True, slots=True)
class ReceiptDomain(Domain):
    """The EIP-712 domain of receipts: `motet-receipts` version 1, on one chain, for one channels contract.

    `contract` is the `PaymentChannels` address whose channels the receipts charge; it is normalised to its
    checksum form. Raises `InvalidReceipt` for a chain id outside uint256 or a malformed address.

    Example:
        >>> domain = ReceiptDomain(chain_id=1, contract="0x" + "11" * 20)
        >>> domain.contract
        '0x1111111111111111111111111111111111111111'
        >>> ReceiptDomain.for_channels(ChannelDomain(1, "0x" + "11" * 20)) == domain
        True
    """

    NAME: ClassVar[str] = RECEIPT_DOMAIN_NAME
    VERSION: ClassVar[str] = RECEIPT_DOMAIN_VERSION
    FIELDS: ClassVar[Fields] = _FIELDS

    @classmethod
    def for_channels(cls, channels: ChannelDomain) -> ReceiptDomain:
        """The receipt domain for the same chain and channels contract as a voucher domain."""
        return cls(channels.chain_id, channels.contract)


@dataclass(frozen=True, slots=True)
class Receipt(TypedStruct):
    """A signed receipt: `signature` is 65 bytes `r || s || v` with v in {27, 28} and low s.

    Build one with `ReceiptSigner.sign` or `Receipt.from_dict`; check it with `verify_receipt` or a
    `ReceiptVerifier`. The wire form (`to_dict`) writes hashes and the signature as 0x-hex, `price` and
    `channelId` as decimal strings (like vouchers), `seq` and `chainId` as integers.

    Example:
        >>> domain = ReceiptDomain(chain_id=1, contract="0x" + "11" * 20)
        >>> receipt = ReceiptSigner("0x" + "01" * 32, domain).sign(
        ...     bytes(32), content_hash("ok"), price=5, channel_id=7, seq=1, model_ref=bytes(32))
        >>> sorted(receipt.to_dict())  # doctest: +NORMALIZE_WHITESPACE
        ['chainId', 'channelId', 'contract', 'modelRef', 'price', 'requestHash', 'responseHash', 'seq',
         'signature']
        >>> receipt.to_dict()["price"], receipt.to_dict()["channelId"]
        ('5', '7')
    """

    TYPE: ClassVar[str] = RECEIPT_TYPE
    FIELDS: ClassVar[Fields] = _FIELDS

    request_hash: bytes
    response_hash: bytes
    price: int
    channel_id: int
    seq: int
    model_ref: bytes
    signature: bytes = field(repr=False)
    domain: ReceiptDomain

    def __post_init__(self) -> None:
        self._check_fields()

    def __repr__(self) -> str:
        return (
            f"Receipt(channel {hex(self.channel_id)} call {self.seq}, price {format_amount(self.price)}, "
            f"request 0x{self.request_hash[:4].hex()}…, response 0x{self.response_hash[:4].hex()}…, "
            f"model 0x{self.model_ref[:4].hex()}…, chain {self.domain.chain_id})"
        )

    def struct(self) -> tuple[bytes, bytes, int, int, int, bytes]:
        """The signed fields in the type string's order: the `Receipt` tuple the validation and reputation
        contracts take (their signature is passed beside it)."""
        return (self.request_hash, self.response_hash, self.price, self.channel_id, self.seq, self.model_ref)

    def to_dict(self) -> dict[str, Any]:
        """The wire form (JSON-safe: big integers as decimal strings, bytes as 0x-hex)."""
        return {
            "chainId": self.domain.chain_id,
            "contract": self.domain.contract,
            "requestHash": "0x" + self.request_hash.hex(),
            "responseHash": "0x" + self.response_hash.hex(),
            "price": str(self.price),
            "channelId": str(self.channel_id),
            "seq": self.seq,
            "modelRef": "0x" + self.model_ref.hex(),
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], domain: ReceiptDomain) -> Receipt:
        """Parse the wire form of a receipt expected in `domain`; raises `InvalidReceipt` naming the bad field.

        Every field is required and checked: hashes are `0x` and 64 hex digits, the signature `0x` and 130
        hex digits with v 27 or 28 and low s, `price` and `channelId` uint256 and `seq` uint64 (decimal strings
        or integers), and `chainId` and `contract` must be `domain`'s. The signer is not checked here: call
        `verify_receipt` or a `ReceiptVerifier`.
        """
        if not isinstance(data, Mapping):
            raise InvalidReceipt(f"receipt is {type(data).__name__}; it must be a JSON object")
        try:
            chain_id = _FIELDS.uint("chainId", data["chainId"], strings="decimal")
            contract = _FIELDS.address("contract", data["contract"])
            if chain_id != domain.chain_id or contract != domain.contract:
                field_name = "chainId" if chain_id != domain.chain_id else "contract"
                raise InvalidReceipt(
                    f"receipt field {field_name!r}: the receipt is for chain {chain_id} contract {contract}, "
                    f"expected chain {domain.chain_id} contract {domain.contract}"
                )
            signature = _FIELDS.hex_bytes("signature", data["signature"], 65)
            _check_signature(signature)
            return cls(
                request_hash=_FIELDS.hex_bytes("requestHash", data["requestHash"], 32),
                response_hash=_FIELDS.hex_bytes("responseHash", data["responseHash"], 32),
                price=_FIELDS.uint("price", data["price"], strings="decimal"),
                channel_id=_FIELDS.uint("channelId", data["channelId"], strings="decimal"),
                seq=_FIELDS.uint("seq", data["seq"], bits=64, strings="decimal"),
                model_ref=_FIELDS.hex_bytes("modelRef", data["modelRef"], 32),
                signature=signature,
                domain=domain,
            )
        except KeyError as missing:
            raise InvalidReceipt(f"receipt is missing the field {missing.args[0]!r}") from None


def _signature_error(problem: str) -> InvalidReceipt:
    return InvalidReceipt(f"receipt field 'signature': {problem}")


def _check_signature(signature: bytes) -> None:
    problem = signature_problem(signature)
    if problem is not None:
        raise _signature_error(problem)


def _expected_address(signer: str) -> bytes:
    if not isinstance(signer, str) or not _ADDRESS.fullmatch(signer):
        raise InvalidReceipt(f"expected signer {signer!r} is not a 0x-prefixed 20-byte address")
    return bytes.fromhex(signer[2:])


class ReceiptSigner(Signer):
    """Signs receipts for one domain with one (agent's) key, on the fast path.

    Example:
        >>> domain = ReceiptDomain(chain_id=1, contract="0x" + "11" * 20)
        >>> agent = ReceiptSigner("0x" + "01" * 32, domain)
        >>> agent.address
        '0x1a642f0E3c3aF545E7AcBD38b07251B3990914F1'
        >>> receipt = agent.sign(bytes(32), bytes(32), price=1, channel_id=2, seq=3, model_ref=bytes(32))
        >>> recover_receipt_signer(receipt) == agent.address
        True
    """

    __slots__ = ("domain",)

    def __init__(self, private_key: bytes | str, domain: ReceiptDomain) -> None:
        super().__init__(private_key)
        self.domain = domain

    def sign(
        self,
        request_hash: bytes,
        response_hash: bytes,
        price: int,
        channel_id: int,
        seq: int,
        model_ref: bytes,
    ) -> Receipt:
        """Sign a receipt; raises `InvalidReceipt` naming a field of the wrong size or range."""
        receipt = Receipt(request_hash, response_hash, price, channel_id, seq, model_ref, b"", self.domain)
        # Signed in place before anyone sees it: building it again would validate every field twice.
        object.__setattr__(receipt, "signature", self.sign_digest(receipt.digest()))
        return receipt

    def __repr__(self) -> str:
        return f"ReceiptSigner(address={self.address!r}, domain={self.domain!r})"


def recover_receipt_signer(receipt: Receipt) -> str:
    """The checksummed address that signed `receipt`; raises `InvalidReceipt` on a malformed receipt.

    Applies the same signature rules as vouchers: 65 bytes, v in {27, 28}, low s.
    """
    return recover_address(receipt.digest(), receipt.signature, _signature_error)


def verify_receipt(receipt: Receipt, signer: str, *, domain: ReceiptDomain | None = None) -> None:
    """Raise `InvalidReceipt` unless `receipt` was signed by `signer` (compared case-insensitively).

    Pass `domain` to also require the receipt to be for that chain and contract; without it, the receipt's
    own domain is used for the digest. Raises `ValueError` when `signer` is not an address.

    Example:
        >>> domain = ReceiptDomain(chain_id=1, contract="0x" + "11" * 20)
        >>> agent = ReceiptSigner("0x" + "01" * 32, domain)
        >>> receipt = agent.sign(bytes(32), bytes(32), price=1, channel_id=2, seq=3, model_ref=bytes(32))
        >>> verify_receipt(receipt, agent.address.lower())
        >>> verify_receipt(receipt, "0x" + "22" * 20)
        Traceback (most recent call last):
        ...
        motet.errors.InvalidReceipt: receipt for channel 0x2 seq 3 is signed by 0x1a642f0E3c3aF545E7AcBD38b07251B3990914F1, not by 0x2222222222222222222222222222222222222222
    """
    expected = _expected_address(signer)
    if domain is not None:
        _check_domain(receipt, domain)
    recovered = recover_receipt_signer(receipt)
    if bytes.fromhex(recovered[2:]) != expected:
        raise InvalidReceipt(
            f"receipt for channel {hex(receipt.channel_id)} seq {receipt.seq} is signed by {recovered}, not by {signer}"
        )


def _check_domain(receipt: Receipt, domain: ReceiptDomain) -> None:
    if receipt.domain != domain:
        raise InvalidReceipt(
            f"receipt is for chain {receipt.domain.chain_id} contract {receipt.domain.contract}, "
            f"expected chain {domain.chain_id} contract {domain.contract}"
        )


class ReceiptVerifier:
    """Checks receipts of one domain against their expected signers, fast.

    The first receipt from a signer is checked by recovery; its public key is then cached (up to `max_keys`
    signers, oldest dropped first) and later receipts cost one ECDSA verify.

    Example:
        >>> domain = ReceiptDomain(chain_id=1, contract="0x" + "11" * 20)
        >>> agent = ReceiptSigner("0x" + "01" * 32, domain)
        >>> verifier = ReceiptVerifier(domain)
        >>> for seq in (1, 2):   # recovery first, then the cached key
        ...     receipt = agent.sign(bytes(32), bytes(32), price=1, channel_id=2, seq=seq, model_ref=bytes(32))
        ...     verifier.verify(receipt, agent.address)
    """

    __slots__ = ("_keys", "domain")

    def __init__(self, domain: ReceiptDomain, *, max_keys: int = 4096) -> None:
        self.domain = domain
        self._keys = SignerKeys(max_keys)

    @property
    def max_keys(self) -> int | None:
        return self._keys.max_keys

    def verify(self, receipt: Receipt, signer: str) -> None:
        """Raise `InvalidReceipt` unless `receipt` is for this domain and signed by `signer`."""
        expected = _expected_address(signer)
        _check_domain(receipt, self.domain)
        wrong = self._keys.check(receipt.digest(), receipt.signature, expected, _signature_error)
        if wrong == "":
            raise InvalidReceipt(
                f"receipt for channel {hex(receipt.channel_id)} seq {receipt.seq} is not signed by {signer}"
            )
        if wrong is not None:
            raise InvalidReceipt(
                f"receipt for channel {hex(receipt.channel_id)} seq {receipt.seq} is signed by {wrong}, not by {signer}"
            )
