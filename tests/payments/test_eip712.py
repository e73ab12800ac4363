"""The one EIP-712 core: every struct hashes, digests and round-trips its typed data through the same code,
agreeing with eth-account; the validators refuse what each field cannot hold."""

from __future__ import annotations

import doctest
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from motet.errors import InvalidDelegation, InvalidReceipt, InvalidVoucher
from motet.payments import (
    ChannelDomain,
    Delegation,
    Receipt,
    ReceiptDomain,
    ReceiptSigner,
    TaskOrder,
    Voucher,
    VoucherSigner,
    _eip712,
    _fields,
    content_hash,
    sign_typed,
)
from motet.payments._eip712 import SignerKeys, TypedStruct, recover_address
from motet.payments._fields import Fields
from motet.units import UINT256_MAX

KEY = "0x" + "4c" * 32
ADDRESS = Account.from_key(KEY).address
CHANNELS = ChannelDomain(chain_id=31337, contract="0x" + "ab" * 20)
RECEIPTS = ReceiptDomain.for_channels(CHANNELS)
DELEGATION = Delegation(
    delegator=ADDRESS,
    session_key="0x" + "22" * 20,
    cap=10**15,
    valid_after=100,
    expiry=200,
    capabilities=("summarize", "translate"),
    nonce=3,
)
ORDER = TaskOrder(
    delegation=bytes(range(32)), budget=5 * 10**12, deadline=300, nonce=1, goal="summarize this"
)
VOUCHER = VoucherSigner(KEY, CHANNELS).sign(channel_id=7, cumulative_amount=2**200)
RECEIPT = ReceiptSigner(KEY, RECEIPTS).sign(
    bytes(32), content_hash("ok"), price=2**255, channel_id=7, seq=2**64 - 1, model_ref=bytes(range(32))
)
STRUCTS: list[tuple[TypedStruct, ChannelDomain | ReceiptDomain]] = [
    (VOUCHER, CHANNELS),
    (RECEIPT, RECEIPTS),
    (DELEGATION, CHANNELS),
    (ORDER, CHANNELS),
]
IDS = ["voucher", "receipt", "delegation", "task-order"]


@pytest.mark.parametrize("module", [_eip712, _fields])
def test_module_docstring_examples_run(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize(("struct", "domain"), STRUCTS, ids=IDS)
def test_every_struct_digests_as_eth_account_does(struct: TypedStruct, domain: ChannelDomain) -> None:
    typed = struct.typed_data(domain)
    reference = encode_typed_data(full_message=typed)
    assert reference.header == domain.separator
    assert reference.body == struct.struct_hash()
    assert struct.digest(domain) == Account.sign_message(reference, KEY).message_hash
    signature = sign_typed(KEY, struct.digest(domain))
    assert signature == Account.sign_message(reference, KEY).signature
    assert recover_address(struct.digest(domain), signature, ValueError) == ADDRESS


@pytest.mark.parametrize(("struct", "domain"), STRUCTS, ids=IDS)
def test_typed_data_round_trips(struct: TypedStruct, domain: ChannelDomain) -> None:
    extra: dict[str, Any] = {}
    if isinstance(struct, Receipt | Voucher):
        extra = {"signature": struct.signature}  # the domain is the one given
    typed = struct.typed_data(domain)
    assert all(isinstance(value, str | list) for value in typed["message"].values())  # JSON-safe
    assert type(struct).from_typed_data(typed, domain, **extra) == struct


def test_structs_carrying_a_domain_digest_in_it_and_the_others_need_one() -> None:
    assert VOUCHER.digest() == VOUCHER.digest(CHANNELS) == CHANNELS.voucher_digest(7, 2**200)
    assert RECEIPT.typed_data() == RECEIPT.typed_data(RECEIPTS)
    with pytest.raises(TypeError, match="carries no domain"):
        DELEGATION.digest()


def _edited(**changes: Any) -> dict[str, Any]:
    typed = DELEGATION.typed_data(CHANNELS)
    return {**typed, **changes}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("not typed data", "must be a JSON object"),
        (_edited(primaryType="TaskOrder"), "primaryType is 'TaskOrder'"),
        (_edited(types={**DELEGATION.types(), "Extra": []}), "not motet's Delegation type"),
        (_edited(domain={**CHANNELS.typed_data_domain(), "chainId": 1}), "signed for chain 1, but this is"),
        (_edited(domain={**CHANNELS.typed_data_domain(), "verifyingContract": "0x" + "cd" * 20}), "contract"),
        (_edited(domain={**CHANNELS.typed_data_domain(), "name": "other"}), "domain 'other'"),
        (_edited(domain={**CHANNELS.typed_data_domain(), "chainId": "x"}), "'domain.chainId'"),
        (_edited(message={**DELEGATION.message(), "extra": 1}), "no field 'extra'"),
        (
            _edited(message={k: v for k, v in DELEGATION.message().items() if k != "nonce"}),
            "missing the field",
        ),
        (_edited(message={**DELEGATION.message(), "cap": "-1"}), "'cap'"),
        (_edited(message={**DELEGATION.message(), "capabilities": "summarize"}), "a list of strings"),
        (_edited(message="no"), "no message"),
    ],
)
def test_typed_data_that_is_not_motets_is_refused(data: object, words: str) -> None:
    with pytest.raises(InvalidDelegation, match=words):
        Delegation.from_typed_data(data, CHANNELS)


def test_wallet_numbers_may_be_decimal_or_hex_strings() -> None:
    message = {**DELEGATION.message(), "cap": hex(DELEGATION.cap), "nonce": 3}
    assert Delegation.from_message(message) == DELEGATION


FIELDS = Fields.of("thing", ValueError)


@pytest.mark.parametrize(
    ("value", "strings", "expected"),
    [
        (5, "no", 5),
        (UINT256_MAX, "no", UINT256_MAX),
        ("5", "decimal", 5),
        ("0x1f", "any", 31),
        (" 7 ", "any", 7),
    ],
)
def test_uint_accepts(value: object, strings: Any, expected: int) -> None:
    assert FIELDS.uint("n", value, strings=strings) == expected


@pytest.mark.parametrize(
    ("value", "strings", "words"),
    [
        (True, "any", "an integer"),
        (1.0, "any", "an integer"),
        ("5", "no", "an integer \\(uint256\\)"),
        ("0x1f", "decimal", "decimal string"),
        ("1_000", "any", "0x-hex string"),
        (-1, "no", "between 0 and 2\\*\\*256 - 1"),
        (UINT256_MAX + 1, "no", "between 0 and"),
        (str(UINT256_MAX + 1), "decimal", "between 0 and"),
    ],
)
def test_uint_refuses(value: object, strings: Any, words: str) -> None:
    with pytest.raises(ValueError, match=f"thing field 'n' is .*; it must be .*{words}"):
        FIELDS.uint("n", value, strings=strings)


def test_uint_bits_and_minimum() -> None:
    assert FIELDS.uint("seq", 2**64 - 1, bits=64) == 2**64 - 1
    with pytest.raises(ValueError, match="between 0 and 2\\*\\*64 - 1 \\(uint64\\)"):
        FIELDS.uint("seq", 2**64, bits=64)
    with pytest.raises(ValueError, match="between 1 and"):
        FIELDS.uint("amount", 0, minimum=1)


def test_addresses_are_checksummed_and_a_wrong_checksum_is_refused() -> None:
    assert FIELDS.address("a", ADDRESS.lower()) == ADDRESS
    assert FIELDS.address("a", "0x" + ADDRESS[2:].upper()) == ADDRESS
    miscased = ADDRESS[:2] + ADDRESS[2:].swapcase()
    with pytest.raises(ValueError, match="EIP-55 checksum"):
        FIELDS.address("a", miscased)
    for bad in ("0x1234", ADDRESS[2:], None, b"\x00" * 20):
        with pytest.raises(ValueError, match="a hex address"):
            FIELDS.address("a", bad)
    zero = "0x" + "00" * 20
    assert FIELDS.address("a", zero) == zero
    with pytest.raises(ValueError, match="zero address"):
        FIELDS.address("a", zero, zero=False)


def test_bytes_fields() -> None:
    assert FIELDS.bytes32("h", "0x" + "AB" * 32) == b"\xab" * 32
    assert FIELDS.bytes32("h", bytes(32)) == bytes(32)
    assert FIELDS.hex_bytes("sig", "0x" + "01" * 65, 65) == b"\x01" * 65
    assert FIELDS.hex_bytes("sig", "0x") == b""
    for bad in (bytes(31), "ab" * 32, "0x" + "ab" * 31 + "  ", "0x" + "zz" * 32, 5):
        with pytest.raises(ValueError, match="'h'"):
            FIELDS.bytes32("h", bad)
    with pytest.raises(ValueError, match="31 bytes; it must be 32 bytes"):
        FIELDS.bytes32("h", bytes(31))
    with pytest.raises(ValueError, match="0x-hex bytes"):
        FIELDS.hex_bytes("sig", "0x123")
    assert FIELDS.texts("t", ["a", "b"]) == ("a", "b")
    with pytest.raises(ValueError, match="a string"):
        FIELDS.texts("t", ["a", 1])


def test_each_struct_raises_its_own_error() -> None:
    with pytest.raises(InvalidReceipt, match="receipt field 'price'"):
        ReceiptSigner(KEY, RECEIPTS).sign(bytes(32), bytes(32), -1, 1, 1, bytes(32))
    with pytest.raises(InvalidDelegation, match="delegation field 'sessionKey'"):
        Delegation(ADDRESS, "0x12", 1, 0, 1, ("*",), 1)
    with pytest.raises(InvalidDelegation, match="task order field 'budget'"):
        TaskOrder(bytes(32), budget="5", deadline=1, nonce=1, goal="g")  # type: ignore[arg-type]
    with pytest.raises(InvalidVoucher, match="channel domain field 'contract'"):
        ChannelDomain(1, "0x1234")


def test_signer_keys_check_and_bound() -> None:
    keys = SignerKeys(max_keys=1)
    digest = VOUCHER.digest()
    signer = bytes.fromhex(ADDRESS[2:])
    assert keys.check(digest, VOUCHER.signature, signer, ValueError) is None  # recovered, then cached
    assert len(keys) == 1
    assert keys.check(digest, VOUCHER.signature, signer, ValueError) is None  # the cached key
    assert keys.check(bytes(32), VOUCHER.signature, signer, ValueError) == ""  # cached key refuses
    other = bytes.fromhex("22" * 20)
    assert keys.check(digest, VOUCHER.signature, other, ValueError) == ADDRESS  # who did sign
    other_key = "0x" + "01" * 32
    other_address = Account.from_key(other_key).address
    keys.check(digest, sign_typed(other_key, digest), bytes.fromhex(other_address[2:]), ValueError)
    assert len(keys) == 1  # the oldest was dropped
    with pytest.raises(ValueError, match="65"):
        keys.check(digest, VOUCHER.signature[:64], signer, ValueError)
