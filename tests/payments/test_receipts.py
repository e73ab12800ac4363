"""Receipts agree with eth-account's EIP-712 reference, round-trip on the wire, and break when altered."""

from __future__ import annotations

import dataclasses
import doctest
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given
from hypothesis import strategies as st

from motet.errors import InvalidReceipt
from motet.payments import (
    RECEIPT_TYPE,
    ChannelDomain,
    Receipt,
    ReceiptDomain,
    ReceiptSigner,
    ReceiptVerifier,
    VoucherSigner,
    _receipts,
    canonical_json,
    content_hash,
    model_ref_hash,
    recover_receipt_signer,
    request_hash,
    verify_receipt,
)
from motet.payments._eip712 import keccak
from motet.payments._receipts import RECEIPT_TYPEHASH
from motet.runtimes import ModelRef

KEY = "0x" + "4c" * 32
SIGNER = Account.from_key(KEY).address
DOMAIN = ReceiptDomain(chain_id=131277322940537, contract="0x" + "ab" * 20)
REF = ModelRef("llama.cpp", "0.3.36", "SmolLM2-135M-Instruct", "ab" * 32, "Q4_1")
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

uint256 = st.integers(min_value=0, max_value=2**256 - 1)
uint64 = st.integers(min_value=0, max_value=2**64 - 1)
bytes32 = st.binary(min_size=32, max_size=32)


def _receipt(domain: ReceiptDomain = DOMAIN, **changes: Any) -> Receipt:
    fields: dict[str, Any] = {
        "request_hash": request_hash("text.summarize", {"text": "the cat sat"}, channel_id=7, seq=3),
        "response_hash": content_hash({"summary": "a cat sat"}),
        "price": 1_000,
        "channel_id": 7,
        "seq": 3,
        "model_ref": model_ref_hash(REF),
    }
    fields.update(changes)
    return ReceiptSigner(KEY, domain).sign(**fields)


def test_module_docstring_examples_run() -> None:
    result = doctest.testmod(_receipts)
    assert result.attempted > 0
    assert result.failed == 0


def test_typehash_is_keccak_of_type_string() -> None:
    assert keccak(RECEIPT_TYPE.encode()) == RECEIPT_TYPEHASH
    assert RECEIPT_TYPE == (
        "Receipt(bytes32 requestHash,bytes32 responseHash,uint256 price,uint256 channelId,uint64 seq,"
        "bytes32 modelRef)"
    )


@given(
    request=bytes32,
    response=bytes32,
    price=uint256,
    channel_id=uint256,
    seq=uint64,
    model=bytes32,
    chain_id=st.integers(1, 2**64),
    contract=st.binary(min_size=20, max_size=20),
)
def test_digest_and_signature_equal_eth_account_reference(
    request: bytes,
    response: bytes,
    price: int,
    channel_id: int,
    seq: int,
    model: bytes,
    chain_id: int,
    contract: bytes,
) -> None:
    domain = ReceiptDomain(chain_id, "0x" + contract.hex())
    receipt = ReceiptSigner(KEY, domain).sign(request, response, price, channel_id, seq, model)
    message = encode_typed_data(full_message=receipt.typed_data())
    assert message.header == domain.separator
    reference = Account.sign_message(message, KEY)
    assert receipt.digest() == reference.message_hash
    assert receipt.signature == reference.signature
    assert Account.recover_message(message, signature=receipt.signature) == SIGNER
    assert recover_receipt_signer(receipt) == SIGNER
    verify_receipt(receipt, SIGNER)


def test_signature_is_low_s_with_v_27_or_28() -> None:
    for seq in range(20):
        signature = _receipt(seq=seq).signature
        assert len(signature) == 65
        assert signature[64] in (27, 28)
        assert int.from_bytes(signature[32:64], "big") <= N // 2


def test_receipt_domain_differs_from_voucher_domain() -> None:
    channels = ChannelDomain(DOMAIN.chain_id, DOMAIN.contract)
    assert ReceiptDomain.for_channels(channels) == DOMAIN
    assert DOMAIN.separator != channels.separator
    assert DOMAIN.typed_data_domain()["name"] == "motet-receipts"


def test_a_voucher_signature_is_not_a_receipt() -> None:
    voucher = VoucherSigner(KEY, ChannelDomain(DOMAIN.chain_id, DOMAIN.contract)).sign(7, 1_000)
    forged = dataclasses.replace(_receipt(), signature=voucher.signature)
    with pytest.raises(InvalidReceipt):
        verify_receipt(forged, SIGNER)


def test_round_trip_through_the_wire_form() -> None:
    receipt = _receipt(price=2**255, channel_id=2**200, seq=2**64 - 1)
    wire = receipt.to_dict()
    assert wire["price"] == str(2**255)
    assert wire["channelId"] == str(2**200)
    assert wire["seq"] == 2**64 - 1
    assert wire["chainId"] == DOMAIN.chain_id
    assert wire["contract"] == DOMAIN.contract
    assert wire["requestHash"] == "0x" + receipt.request_hash.hex()
    assert wire["signature"] == "0x" + receipt.signature.hex()
    assert Receipt.from_dict(wire, DOMAIN) == receipt
    # integers and uppercase hex are accepted too
    loose = {**wire, "price": 2**255, "channelId": 2**200, "seq": str(2**64 - 1)}
    loose["modelRef"] = "0x" + wire["modelRef"][2:].upper()
    loose["contract"] = wire["contract"].lower()
    assert Receipt.from_dict(loose, DOMAIN) == receipt


@pytest.mark.parametrize(
    "change",
    [
        {"price": 1_001},
        {"seq": 4},
        {"channel_id": 8},
        {"response_hash": content_hash({"summary": "a dog sat"})},
        {"request_hash": content_hash("another request")},
        {"model_ref": model_ref_hash(dataclasses.replace(REF, quantization="Q8_0"))},
        {"domain": ReceiptDomain(1, DOMAIN.contract)},
        {"domain": ReceiptDomain(DOMAIN.chain_id, "0x" + "cd" * 20)},
    ],
    ids=lambda change: next(iter(change)),
)
def test_tampering_with_any_field_breaks_the_signature(change: dict[str, Any]) -> None:
    receipt = _receipt()
    verify_receipt(receipt, SIGNER)
    tampered = dataclasses.replace(receipt, **change)
    with pytest.raises(InvalidReceipt, match="not by"):
        verify_receipt(tampered, SIGNER)
    verifier = ReceiptVerifier(tampered.domain)
    with pytest.raises(InvalidReceipt, match="not by"):
        verifier.verify(tampered, SIGNER)
    verifier.verify(_receipt(tampered.domain), SIGNER)  # caches the key
    with pytest.raises(InvalidReceipt, match="not signed by"):
        verifier.verify(tampered, SIGNER)


def test_wrong_signer_fails_and_case_does_not_matter() -> None:
    receipt = _receipt()
    verify_receipt(receipt, SIGNER.lower())
    verify_receipt(receipt, "0x" + SIGNER[2:].upper())
    stranger = Account.create().address
    with pytest.raises(InvalidReceipt, match=f"signed by {SIGNER}, not by {stranger}"):
        verify_receipt(receipt, stranger)
    with pytest.raises(InvalidReceipt, match="not by"):
        ReceiptVerifier(DOMAIN).verify(receipt, stranger)
    with pytest.raises(ValueError, match="not a 0x-prefixed 20-byte address"):
        verify_receipt(receipt, "alice")


def test_verifier_and_domain_argument_reject_another_domain() -> None:
    other = ReceiptDomain(1, DOMAIN.contract)
    receipt = _receipt(other)
    verify_receipt(receipt, SIGNER)
    with pytest.raises(InvalidReceipt, match="expected chain 131277322940537"):
        verify_receipt(receipt, SIGNER, domain=DOMAIN)
    with pytest.raises(InvalidReceipt, match="expected chain 131277322940537"):
        ReceiptVerifier(DOMAIN).verify(receipt, SIGNER)


def test_verifier_cache_is_bounded() -> None:
    verifier = ReceiptVerifier(DOMAIN, max_keys=2)
    keys = ["0x" + f"{i:02x}" * 32 for i in range(1, 5)]
    for key in keys:
        signer = ReceiptSigner(key, DOMAIN)
        receipt = signer.sign(bytes(32), bytes(32), 1, 1, 1, bytes(32))
        verifier.verify(receipt, signer.address)
        verifier.verify(receipt, signer.address)
    assert len(verifier._keys) == 2


def _high_s(sig: bytes) -> bytes:
    s = int.from_bytes(sig[32:64], "big")
    return sig[:32] + (N - s).to_bytes(32, "big") + bytes((55 - sig[64],))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda sig: sig[:64], "64 bytes"),
        (lambda sig: sig + b"\x00", "66 bytes"),
        (lambda sig: sig[:64] + b"\x00", "v is 0"),
        (lambda sig: sig[:64] + b"\x1d", "v is 29"),
        (_high_s, "lower half"),
        (lambda sig: bytes(32) + sig[32:], "out of range"),
    ],
)
def test_signature_hygiene(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    receipt = _receipt()
    bad = dataclasses.replace(receipt, signature=mutate(receipt.signature))
    with pytest.raises(InvalidReceipt, match=message):
        verify_receipt(bad, SIGNER)
    with pytest.raises(InvalidReceipt, match=message):
        recover_receipt_signer(bad)
    verifier = ReceiptVerifier(DOMAIN)
    with pytest.raises(InvalidReceipt, match=message):
        verifier.verify(bad, SIGNER)
    verifier.verify(receipt, SIGNER)
    with pytest.raises(InvalidReceipt, match=message):
        verifier.verify(bad, SIGNER)  # cached-key path checks too
    if len(bad.signature) == 65:
        with pytest.raises(InvalidReceipt, match="'signature'"):
            Receipt.from_dict(bad.to_dict(), DOMAIN)


def _without(field: str) -> dict[str, Any]:
    wire = _receipt().to_dict()
    del wire[field]
    return wire


def _with(field: str, value: object) -> dict[str, Any]:
    return {**_receipt().to_dict(), field: value}


_SIG = _receipt().to_dict()["signature"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        *[(_without(name), name) for name in _receipt().to_dict()],
        (_with("requestHash", "0x" + "zz" * 32), "requestHash"),
        (_with("requestHash", "0x" + "ab" * 31), "requestHash"),
        (_with("requestHash", "ab" * 32), "requestHash"),
        (_with("requestHash", "0x" + "ab" * 33), "requestHash"),
        (_with("responseHash", bytes(32)), "responseHash"),
        (_with("responseHash", " 0x" + "ab" * 32), "responseHash"),
        (_with("modelRef", None), "modelRef"),
        (_with("price", "-1"), "price"),
        (_with("price", -1), "price"),
        (_with("price", "1_000"), "price"),
        (_with("price", " 5"), "price"),
        (_with("price", "1.5"), "price"),
        (_with("price", 1.0), "price"),
        (_with("price", True), "price"),
        (_with("price", str(2**256)), "price"),
        (_with("channelId", "0x07"), "channelId"),
        (_with("channelId", 2**256), "channelId"),
        (_with("seq", 2**64), "seq"),
        (_with("seq", str(2**64)), "seq"),
        (_with("seq", -1), "seq"),
        (_with("signature", _SIG[:-2]), "signature"),
        (_with("signature", "0x" + "ab" * 64), "signature"),
        (_with("signature", _SIG[:-2] + "1d"), "signature"),
        (_with("signature", _SIG + "00"), "signature"),
        (_with("chainId", 1), "chainId"),
        (_with("chainId", "x"), "chainId"),
        (_with("contract", "0x" + "cd" * 20), "contract"),
        (_with("contract", "0x" + "cd" * 19), "contract"),
    ],
)
def test_malformed_wire_forms_name_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidReceipt, match=f"'{field}'"):
        Receipt.from_dict(data, DOMAIN)


def test_from_dict_rejects_a_non_object() -> None:
    with pytest.raises(InvalidReceipt, match="JSON object"):
        Receipt.from_dict(["not", "a", "dict"], DOMAIN)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"request_hash": bytes(31)}, "requestHash"),
        ({"response_hash": "00" * 32}, "responseHash"),
        ({"model_ref": bytes(33)}, "modelRef"),
        ({"price": -1}, "price"),
        ({"price": 2**256}, "price"),
        ({"channel_id": 2**256}, "channelId"),
        ({"seq": 2**64}, "seq"),
        ({"seq": 1.0}, "seq"),
    ],
)
def test_signing_out_of_range_values_is_refused(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidReceipt, match=f"'{field}'"):
        _receipt(**change)


def test_domain_validation() -> None:
    with pytest.raises(InvalidReceipt, match="'contract'"):
        ReceiptDomain(1, "0x1234")
    with pytest.raises(InvalidReceipt, match="'chainId'"):
        ReceiptDomain(-1, DOMAIN.contract)
    assert ReceiptDomain(1, DOMAIN.contract.lower()) == ReceiptDomain(1, DOMAIN.contract)


def test_canonical_json_is_key_order_independent_and_compact() -> None:
    a = {"b": {"y": 1, "x": [3, {"q": None, "p": True}]}, "a": "é☃"}
    b = {"a": "é☃", "b": {"x": [3, {"p": True, "q": None}], "y": 1}}
    assert canonical_json(a) == canonical_json(b)
    assert canonical_json(a) == '{"a":"é☃","b":{"x":[3,{"p":true,"q":null}],"y":1}}'.encode()
    assert content_hash(a) == content_hash(b) == keccak(canonical_json(a))
    assert content_hash([1, 2]) != content_hash([2, 1])
    with pytest.raises(ValueError, match="JSON compliant"):
        canonical_json({"x": float("nan")})
    with pytest.raises(TypeError):
        canonical_json({"x": b"bytes"})


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(ModelRef)])
def test_model_ref_hash_changes_with_every_field(name: str) -> None:
    changed = dataclasses.replace(REF, **{name: getattr(REF, name) + "x"})
    assert model_ref_hash(changed) != model_ref_hash(REF)
    assert model_ref_hash(dataclasses.replace(REF)) == model_ref_hash(REF)


def test_request_hash_binds_capability_input_channel_and_seq() -> None:
    base = request_hash("text.summarize", {"text": "hi"}, 7, 1)
    assert base == content_hash(
        {
            "capability": "text.summarize",
            "input": {"text": "hi"},
            "channel": "0x" + "00" * 31 + "07",
            "seq": 1,
        }
    )
    others = {
        request_hash("text.translate", {"text": "hi"}, 7, 1),
        request_hash("text.summarize", {"text": "ho"}, 7, 1),
        request_hash("text.summarize", {"text": "hi"}, 8, 1),
        request_hash("text.summarize", {"text": "hi"}, 7, 2),
    }
    assert base not in others
    assert len(others) == 4
    with pytest.raises(InvalidReceipt, match="'seq'"):
        request_hash("text.summarize", {}, 7, 2**64)
    with pytest.raises(InvalidReceipt, match="'channelId'"):
        request_hash("text.summarize", {}, -1, 0)


@given(
    request=bytes32,
    response=bytes32,
    price=uint256,
    channel_id=uint256,
    seq=uint64,
    model=bytes32,
    chain_id=uint256,
    contract=st.binary(min_size=20, max_size=20),
    key=st.integers(1, N - 1),
)
def test_random_receipts_round_trip_and_verify(
    request: bytes,
    response: bytes,
    price: int,
    channel_id: int,
    seq: int,
    model: bytes,
    chain_id: int,
    contract: bytes,
    key: int,
) -> None:
    domain = ReceiptDomain(chain_id, "0x" + contract.hex())
    signer = ReceiptSigner(key.to_bytes(32, "big"), domain)
    receipt = signer.sign(request, response, price, channel_id, seq, model)
    parsed = Receipt.from_dict(receipt.to_dict(), domain)
    assert parsed == receipt
    verify_receipt(parsed, signer.address, domain=domain)
    verifier = ReceiptVerifier(domain)
    verifier.verify(parsed, signer.address)
    verifier.verify(parsed, signer.address)
