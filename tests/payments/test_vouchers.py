"""The fast voucher path agrees with eth-account's EIP-712 reference, and rejects what the contract rejects."""

from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given
from hypothesis import strategies as st

from motet.errors import InvalidVoucher
from motet.payments import (
    ChannelDomain,
    Voucher,
    VoucherSigner,
    VoucherVerifier,
    recover_signer,
)

KEY = "0x" + "4c" * 32
DOMAIN = ChannelDomain(chain_id=131277322940537, contract="0x" + "ab" * 20)
uint256 = st.integers(min_value=0, max_value=2**256 - 1)


@given(
    channel_id=uint256,
    amount=uint256,
    chain_id=st.integers(1, 2**64),
    contract=st.binary(min_size=20, max_size=20),
)
def test_fast_signature_equals_eth_account_reference(
    channel_id: int, amount: int, chain_id: int, contract: bytes
) -> None:
    domain = ChannelDomain(chain_id, "0x" + contract.hex())
    voucher = VoucherSigner(KEY, domain).sign(channel_id, amount)
    reference = Account.sign_message(encode_typed_data(full_message=voucher.typed_data()), KEY)
    assert voucher.signature == reference.signature
    assert recover_signer(voucher) == Account.from_key(KEY).address


def test_verifier_accepts_payer_and_rejects_everyone_else() -> None:
    signer = VoucherSigner(KEY, DOMAIN)
    verifier = VoucherVerifier(DOMAIN)
    first, second = signer.sign(1, 10), signer.sign(1, 20)
    verifier.verify(first, signer.address)  # recovery path
    verifier.verify(second, signer.address)  # cached-key path
    stranger = Account.create().address
    with pytest.raises(InvalidVoucher, match="not by the payer"):
        VoucherVerifier(DOMAIN).verify(first, stranger)
    tampered = dataclasses.replace(second, cumulative_amount=21)
    with pytest.raises(InvalidVoucher, match="not signed by the payer"):
        verifier.verify(tampered, signer.address)


@pytest.mark.parametrize(
    ("domain", "fragment"),
    [
        (ChannelDomain(1, DOMAIN.contract), "expected chain 131277322940537"),
        (ChannelDomain(DOMAIN.chain_id, "0x" + "cd" * 20), "expected chain"),
    ],
)
def test_voucher_for_another_domain_is_rejected(domain: ChannelDomain, fragment: str) -> None:
    voucher = VoucherSigner(KEY, domain).sign(1, 10)
    with pytest.raises(InvalidVoucher, match=fragment):
        VoucherVerifier(DOMAIN).verify(voucher, Account.from_key(KEY).address)


N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


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
    voucher = VoucherSigner(KEY, DOMAIN).sign(3, 99)
    bad = dataclasses.replace(voucher, signature=mutate(voucher.signature))
    with pytest.raises(InvalidVoucher, match=message):
        recover_signer(bad)
    with pytest.raises(InvalidVoucher):
        VoucherVerifier(DOMAIN).verify(bad, Account.from_key(KEY).address)


def test_wire_form_round_trips_and_names_bad_fields() -> None:
    voucher = VoucherSigner(KEY, DOMAIN).sign(2**200, 2**255)
    assert Voucher.from_dict(voucher.to_dict()) == voucher
    broken = voucher.to_dict()
    del broken["signature"]
    with pytest.raises(InvalidVoucher, match="'signature'"):
        Voucher.from_dict(broken)
    with pytest.raises(InvalidVoucher, match="malformed"):
        Voucher.from_dict({**voucher.to_dict(), "channelId": "seven"})


def test_amounts_outside_uint256_are_refused() -> None:
    with pytest.raises(InvalidVoucher, match="uint256"):
        VoucherSigner(KEY, DOMAIN).sign(1, 2**256)
    with pytest.raises(InvalidVoucher, match="uint256"):
        VoucherSigner(KEY, DOMAIN).sign(-1, 5)
