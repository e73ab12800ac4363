"""PaymentChannels.vy on the embedded chain: exact revert strings, every event, every balance change.

Redeems and settles are sent by a relayer (or a stranger) so that the payee's and payer's native balances
change by exactly the amounts paid; where an account sends its own transaction, its gas is added back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from web3.types import Wei

from motet.errors import TransactionReverted
from motet.payments import (
    VOUCHER_TYPE,
    ChannelDomain,
    recover_signer,
)
from motet.payments._eip712 import keccak
from motet.payments._vouchers import DOMAIN_NAME, DOMAIN_VERSION, VOUCHER_TYPEHASH

if TYPE_CHECKING:
    from support.channels import Env

NATIVE = "0x" + "00" * 20
CHALLENGE_PERIOD = 3600
"""The tests' Settings default, which `Chain.contract("PaymentChannels")` deploys with."""

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F


def signature_parts(signature: bytes) -> tuple[int, int, int]:
    return (
        int.from_bytes(signature[:32], "big"),
        int.from_bytes(signature[32:64], "big"),
        signature[64],
    )


def make_signature(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((v,))


def assert_solvent(env: Env) -> None:
    """P1 at the contract level: it holds exactly what it owes, per asset."""
    assert env.balance(env.channels.address) == env.owed(NATIVE)
    for token in env.tokens:
        assert env.balance(env.channels.address, token) == env.owed(token)


# -- lifecycle -----------------------------------------------------------------------------------------


def test_native_lifecycle_moves_exact_amounts_and_logs_every_event(env: Env) -> None:
    channels, payer, payee = env.channels, env.payer, env.payee
    assert channels.functions.channel_count().call() == 0
    assert (
        channels.functions.open(payee.address, NATIVE, 0).call({"from": payer.address, "value": Wei(1_000)})
        == 1
    )

    payer_before = env.balance(payer)
    channel_id, receipt = env.open_native(1_000)
    assert channel_id == 1
    assert channels.functions.channel_count().call() == 1
    assert env.balance(payer) == payer_before - 1_000 - env.gas_cost(receipt)
    assert env.events(receipt, "ChannelOpened") == [
        {"channel_id": 1, "payer": payer.address, "payee": payee.address, "token": NATIVE, "deposit": 1_000}
    ]
    assert env.channel(1) == (payer.address, payee.address, NATIVE, 1_000, 0, 0, False)
    assert env.balance(channels.address) == env.owed() == 1_000

    payer_before = env.balance(payer)
    receipt = env.send(channels.functions.topup(1, 0), payer, value=500)
    assert env.balance(payer) == payer_before - 500 - env.gas_cost(receipt)
    assert env.events(receipt, "ChannelToppedUp") == [{"channel_id": 1, "amount": 500, "deposit": 1_500}]
    assert env.channel(1)[3] == 1_500
    assert env.balance(channels.address) == env.owed() == 1_500

    payee_before = env.balance(payee)
    signature = env.sign(payer, 1, 300)
    assert channels.functions.redeem(1, 300, signature).call({"from": env.relayer.address}) == 300
    receipt = env.redeem(1, 300, signature)
    assert env.events(receipt, "VoucherRedeemed") == [
        {"channel_id": 1, "payee": payee.address, "cumulative_amount": 300, "paid": 300, "redeemed": 300}
    ]
    assert env.balance(payee) == payee_before + 300
    assert env.balance(channels.address) == env.owed() == 1_200

    receipt = env.redeem(1, 700, env.sign(payer, 1, 700))
    assert env.events(receipt, "VoucherRedeemed") == [
        {"channel_id": 1, "payee": payee.address, "cumulative_amount": 700, "paid": 400, "redeemed": 700}
    ]
    assert env.balance(payee) == payee_before + 700
    assert env.balance(channels.address) == env.owed() == 800

    closed_at = env.pending_timestamp() + 10
    env.chain.set_next_timestamp(closed_at)
    receipt = env.send(channels.functions.close(1), payer)
    assert env.block_timestamp(receipt) == closed_at
    deadline = closed_at + CHALLENGE_PERIOD
    assert env.events(receipt, "ChannelClosing") == [{"channel_id": 1, "closes_at": deadline}]
    assert env.channel(1)[5] == deadline

    env.chain.set_next_timestamp(deadline)
    payer_before = env.balance(payer)
    assert channels.functions.settle(1).call({"from": env.stranger.address}, "pending") == 800
    receipt = env.send(channels.functions.settle(1), env.stranger)
    assert env.events(receipt, "ChannelSettled") == [{"channel_id": 1, "redeemed": 700, "refunded": 800}]
    assert env.balance(payer) == payer_before + 800
    assert env.balance(payee) == payee_before + 700
    assert env.channel(1) == (payer.address, payee.address, NATIVE, 1_500, 700, deadline, True)
    assert env.balance(channels.address) == env.owed() == 0


def test_token_lifecycle_after_an_exact_approval(env: Env) -> None:
    channels, token, payee = env.channels, env.token, env.payee
    payer = env.stranger  # holds no tokens and no allowance yet
    env.send(token.functions.mint(payer.address, 10_000), env.deployer)
    env.reverts(
        "erc20: insufficient allowance", channels.functions.open(payee.address, token.address, 4_000), payer
    )
    env.send(token.functions.approve(channels.address, 5_000), payer)

    channel_id, receipt = env.open_token(token, 4_000, payer=payer)
    assert env.events(receipt, "ChannelOpened") == [
        {
            "channel_id": channel_id,
            "payer": payer.address,
            "payee": payee.address,
            "token": token.address,
            "deposit": 4_000,
        }
    ]
    assert env.events(receipt, "Transfer", token) == [
        {"sender": payer.address, "receiver": channels.address, "value": 4_000}
    ]
    assert token.functions.allowance(payer.address, channels.address).call() == 1_000
    assert env.balance(payer, token) == 6_000
    assert env.balance(channels, token) == env.owed(token) == 4_000
    assert env.owed(NATIVE) == 0

    receipt = env.send(channels.functions.topup(channel_id, 1_000), payer)
    assert env.events(receipt, "ChannelToppedUp") == [
        {"channel_id": channel_id, "amount": 1_000, "deposit": 5_000}
    ]
    assert token.functions.allowance(payer.address, channels.address).call() == 0
    assert env.balance(channels, token) == env.owed(token) == 5_000

    receipt = env.redeem(channel_id, 1_250, env.sign(payer, channel_id, 1_250))
    assert env.events(receipt, "VoucherRedeemed") == [
        {
            "channel_id": channel_id,
            "payee": payee.address,
            "cumulative_amount": 1_250,
            "paid": 1_250,
            "redeemed": 1_250,
        }
    ]
    assert env.events(receipt, "Transfer", token) == [
        {"sender": channels.address, "receiver": payee.address, "value": 1_250}
    ]
    assert env.balance(payee, token) == 1_250
    assert env.balance(channels, token) == env.owed(token) == 3_750

    env.send(channels.functions.close(channel_id), payer)
    env.chain.set_next_timestamp(env.channel(channel_id)[5])
    receipt = env.send(channels.functions.settle(channel_id), env.relayer)
    assert env.events(receipt, "ChannelSettled") == [
        {"channel_id": channel_id, "redeemed": 1_250, "refunded": 3_750}
    ]
    assert env.balance(payer, token) == 10_000 - 1_250
    assert env.balance(payee, token) == 1_250
    assert env.balance(channels, token) == env.owed(token) == 0


def test_channel_ids_count_up_from_one(env: Env) -> None:
    ids = [env.open_native(10 + i)[0] for i in range(3)]
    assert ids == [1, 2, 3]
    assert env.channels.functions.channel_count().call() == 3
    assert [env.channel(i)[3] for i in ids] == [10, 11, 12]
    assert env.balance(env.channels.address) == env.owed() == 33


def test_a_payee_redeeming_itself_pays_only_gas(env: Env) -> None:
    channel_id, _ = env.open_native(1_000)
    before = env.balance(env.payee)
    receipt = env.redeem(channel_id, 250, env.sign(env.payer, channel_id, 250), sender=env.payee)
    assert env.balance(env.payee) == before + 250 - env.gas_cost(receipt)


def test_a_relayer_gets_nothing_but_the_gas_bill(env: Env) -> None:
    channel_id, _ = env.open_native(1_000)
    relayer_before, payee_before = env.balance(env.relayer), env.balance(env.payee)
    receipt = env.redeem(channel_id, 400, env.sign(env.payer, channel_id, 400), sender=env.relayer)
    assert env.balance(env.relayer) == relayer_before - env.gas_cost(receipt)
    assert env.balance(env.payee) == payee_before + 400


# -- replay matrix (P3, P2, P6) ------------------------------------------------------------------------


def test_voucher_of_another_channel_is_rejected(env: Env) -> None:
    first, _ = env.open_native(1_000)
    second, _ = env.open_native(1_000)
    signature = env.sign(env.payer, first, 100)
    env.reverts(
        "channels: voucher not signed by payer",
        env.channels.functions.redeem(second, 100, signature),
        env.relayer,
    )
    assert env.channel(second)[4] == 0
    env.redeem(first, 100, signature)  # the voucher is good where it belongs
    assert env.channel(first)[4] == 100


def test_voucher_for_another_contract_is_rejected(env: Env) -> None:
    here, _ = env.open_native(1_000)
    receipt = env.send(
        env.other_channels.functions.open(env.payee.address, NATIVE, 0), env.payer, value=1_000
    )
    (opened,) = env.events(receipt, "ChannelOpened", env.other_channels)
    assert opened["channel_id"] == here == 1  # same id, same payer, same payee: only the contract differs

    voucher = env.signer(env.payer, contract=env.other_channels).sign(here, 100)
    env.reverts(
        "channels: voucher not signed by payer",
        env.channels.functions.redeem(here, 100, voucher.signature),
        env.relayer,
    )
    payee_before = env.balance(env.payee)
    env.send(env.other_channels.functions.redeem(here, 100, voucher.signature), env.relayer)
    assert env.balance(env.payee) == payee_before + 100
    assert env.channel(here)[4] == 0


def test_voucher_for_another_chain_is_rejected(env: Env) -> None:
    channel_id, _ = env.open_native(1_000)
    voucher = env.signer(env.payer, chain_id=env.chain.chain_id + 1).sign(channel_id, 100)
    assert recover_signer(voucher) == env.payer.address  # a valid signature, just for another chain
    env.reverts(
        "channels: voucher not signed by payer",
        env.channels.functions.redeem(channel_id, 100, voucher.signature),
        env.relayer,
    )
    assert env.channel(channel_id)[4] == 0


def test_voucher_after_settle_is_rejected(env: Env) -> None:
    channel_id, _ = env.open_native(1_000)
    env.redeem(channel_id, 100, env.sign(env.payer, channel_id, 100))
    late = env.sign(env.payer, channel_id, 600)
    env.send(env.channels.functions.close(channel_id), env.payer)
    env.chain.set_next_timestamp(env.channel(channel_id)[5])
    env.send(env.channels.functions.settle(channel_id), env.relayer)
    payee_before = env.balance(env.payee)
    env.reverts(
        "channels: channel is settled", env.channels.functions.redeem(channel_id, 600, late), env.relayer
    )
    assert env.balance(env.payee) == payee_before
    assert env.channel(channel_id)[4] == 100


def test_same_voucher_twice_and_a_lower_one_are_rejected(env: Env) -> None:
    channel_id, _ = env.open_native(1_000)
    signature = env.sign(env.payer, channel_id, 300)
    env.redeem(channel_id, 300, signature)
    payee_before = env.balance(env.payee)
    env.reverts(
        "channels: voucher not above redeemed",
        env.channels.functions.redeem(channel_id, 300, signature),
        env.relayer,
    )
    env.reverts(
        "channels: voucher not above redeemed",
        env.channels.functions.redeem(channel_id, 299, env.sign(env.payer, channel_id, 299)),
        env.relayer,
    )
    env.reverts(
        "channels: voucher not above redeemed",
        env.channels.functions.redeem(channel_id, 0, env.sign(env.payer, channel_id, 0)),
        env.relayer,
    )
    assert env.balance(env.payee) == payee_before
    assert env.channel(channel_id)[4] == 300


# -- signature hygiene (P4) ----------------------------------------------------------------------------


@pytest.fixture
def funded(env: Env) -> int:
    """A native channel payer -> payee with 1,000 wei."""
    return env.open_native(1_000)[0]


def test_wrong_signer_is_rejected(env: Env, funded: int) -> None:
    for wrong in (env.stranger, env.payee):
        env.reverts(
            "channels: voucher not signed by payer",
            env.channels.functions.redeem(funded, 100, env.sign(wrong, funded, 100)),
            env.relayer,
        )
    assert env.channel(funded)[4] == 0


def test_high_s_twin_is_rejected(env: Env, funded: int) -> None:
    good = env.sign(env.payer, funded, 100)
    r, s, v = signature_parts(good)
    assert s <= SECP256K1_N // 2
    twin = make_signature(r, SECP256K1_N - s, 55 - v)  # the malleable twin: same signer, high s
    env.reverts(
        "ecdsa: invalid signature `s` value", env.channels.functions.redeem(funded, 100, twin), env.relayer
    )
    assert env.channel(funded)[4] == 0
    env.redeem(funded, 100, good)
    assert env.channel(funded)[4] == 100


@pytest.mark.parametrize("v", [0, 1, 26, 29, 255])
def test_v_other_than_27_or_28_is_rejected(env: Env, funded: int, v: int) -> None:
    r, s, _ = signature_parts(env.sign(env.payer, funded, 100))
    env.reverts(
        "channels: signature v is not 27 or 28",
        env.channels.functions.redeem(funded, 100, make_signature(r, s, v)),
        env.relayer,
    )
    assert env.channel(funded)[4] == 0


@pytest.mark.parametrize("length", [0, 1, 64])
def test_short_signatures_are_rejected(env: Env, funded: int, length: int) -> None:
    # 64 bytes would be a valid EIP-2098 compact signature for snekmate; the contract insists on 65.
    signature = env.sign(env.payer, funded, 100)[:length]
    env.reverts(
        "channels: signature is not 65 bytes",
        env.channels.functions.redeem(funded, 100, signature),
        env.relayer,
    )
    assert env.channel(funded)[4] == 0


def _raw_redeem(env: Env, channel_id: int, cumulative: int, signature: bytes) -> int:
    """Send redeem with hand-built calldata (bypassing web3's ABI checks); return the receipt status."""
    selector = function_signature_to_4byte_selector("redeem(uint256,uint256,bytes)")
    data = selector + encode(["uint256", "uint256", "bytes"], [channel_id, cumulative, signature])
    w3, sender = env.chain.w3, env.relayer
    tx: dict[str, Any] = {
        "to": env.channels.address,
        "data": data,
        "value": 0,
        "gas": 300_000,
        "nonce": w3.eth.get_transaction_count(sender.address),
        "chainId": env.chain.chain_id,
        "maxFeePerGas": 2 * w3.eth.gas_price,
        "maxPriorityFeePerGas": 1,
    }
    tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    return int(w3.eth.wait_for_transaction_receipt(tx_hash)["status"])


def test_66_byte_signature_fails_abi_decoding(env: Env, funded: int) -> None:
    signature = env.sign(env.payer, funded, 100)
    payee_before = env.balance(env.payee)
    assert _raw_redeem(env, funded, 100, signature + b"\x00") == 0
    assert env.channel(funded)[4] == 0
    assert env.balance(env.payee) == payee_before
    # The same hand-built calldata with the 65 real bytes goes through: only the length made it fail.
    assert _raw_redeem(env, funded, 100, signature) == 1
    assert env.channel(funded)[4] == 100
    assert env.balance(env.payee) == payee_before + 100


def _x_not_on_curve() -> int:
    x = 1
    while pow((x**3 + 7) % SECP256K1_P, (SECP256K1_P - 1) // 2, SECP256K1_P) == 1:
        x += 1
    return x


@pytest.mark.parametrize(
    ("r", "s"),
    [(0, 1), ("off-curve", 1), ("valid", 0), (SECP256K1_N, 1)],
    ids=["r-zero", "r-off-curve", "s-zero", "r-is-n"],
)
def test_signature_that_recovers_nobody_is_rejected(env: Env, funded: int, r: Any, s: int) -> None:
    good_r, _, v = signature_parts(env.sign(env.payer, funded, 100))
    r_value = {"off-curve": _x_not_on_curve(), "valid": good_r}.get(r, r)
    env.reverts(
        "ecdsa: invalid signature",
        env.channels.functions.redeem(funded, 100, make_signature(r_value, s, v)),
        env.relayer,
    )
    assert env.channel(funded)[4] == 0


# -- challenge window (P5) -----------------------------------------------------------------------------


@pytest.fixture
def closing(env: Env) -> tuple[int, int]:
    """A native channel of 1,000 closed at a known timestamp; returns (channel id, deadline)."""
    channel_id, _ = env.open_native(1_000)
    closed_at = env.pending_timestamp() + 100
    env.chain.set_next_timestamp(closed_at)
    receipt = env.send(env.channels.functions.close(channel_id), env.payer)
    deadline = closed_at + CHALLENGE_PERIOD
    assert env.events(receipt, "ChannelClosing") == [{"channel_id": channel_id, "closes_at": deadline}]
    return channel_id, deadline


def test_redeem_one_second_before_the_deadline_pays(env: Env, closing: tuple[int, int]) -> None:
    channel_id, deadline = closing
    payee_before = env.balance(env.payee)
    env.chain.set_next_timestamp(deadline - 1)
    receipt = env.redeem(channel_id, 400, env.sign(env.payer, channel_id, 400))
    assert env.block_timestamp(receipt) == deadline - 1
    assert env.balance(env.payee) == payee_before + 400
    assert env.events(receipt, "VoucherRedeemed")[0]["paid"] == 400


@pytest.mark.parametrize("offset", [0, 1])
def test_redeem_at_or_after_the_deadline_reverts(env: Env, closing: tuple[int, int], offset: int) -> None:
    channel_id, deadline = closing
    env.chain.set_next_timestamp(deadline + offset)
    env.reverts(
        "channels: challenge period over",
        env.channels.functions.redeem(channel_id, 400, env.sign(env.payer, channel_id, 400)),
        env.relayer,
    )
    assert env.channel(channel_id)[4] == 0


def test_settle_one_second_before_the_deadline_reverts(env: Env, closing: tuple[int, int]) -> None:
    channel_id, deadline = closing
    env.chain.set_next_timestamp(deadline - 1)
    env.reverts("channels: challenge period not over", env.channels.functions.settle(channel_id), env.relayer)
    assert env.channel(channel_id)[6] is False


@pytest.mark.parametrize("offset", [0, 1])
def test_settle_at_or_after_the_deadline_refunds(env: Env, closing: tuple[int, int], offset: int) -> None:
    channel_id, deadline = closing
    env.chain.set_next_timestamp(deadline + offset)
    payer_before = env.balance(env.payer)
    receipt = env.send(env.channels.functions.settle(channel_id), env.relayer)
    assert env.block_timestamp(receipt) == deadline + offset
    assert env.events(receipt, "ChannelSettled") == [
        {"channel_id": channel_id, "redeemed": 0, "refunded": 1_000}
    ]
    assert env.balance(env.payer) == payer_before + 1_000
    assert env.balance(env.channels.address) == env.owed() == 0


def test_a_closing_channel_takes_no_topup_and_no_second_close(env: Env, closing: tuple[int, int]) -> None:
    channel_id, deadline = closing
    env.reverts(
        "channels: channel is closing", env.channels.functions.topup(channel_id, 0), env.payer, value=5
    )
    env.reverts("channels: channel is closing", env.channels.functions.close(channel_id), env.payer)
    assert env.channel(channel_id)[3] == 1_000
    assert env.channel(channel_id)[5] == deadline


def test_settle_before_close_reverts(env: Env, funded: int) -> None:
    env.reverts("channels: channel is not closing", env.channels.functions.settle(funded), env.payer)
    env.reverts("channels: channel is not closing", env.channels.functions.settle(funded), env.payee)


# -- deposit cap (P1) ----------------------------------------------------------------------------------


def test_voucher_above_deposit_pays_the_deposit_then_the_rest_after_topup(env: Env) -> None:
    channel_id, _ = env.open_native(1_000)
    high = env.sign(env.payer, channel_id, 5_000)
    payee_before = env.balance(env.payee)

    receipt = env.redeem(channel_id, 5_000, high)
    assert env.events(receipt, "VoucherRedeemed") == [
        {
            "channel_id": channel_id,
            "payee": env.payee.address,
            "cumulative_amount": 5_000,
            "paid": 1_000,
            "redeemed": 1_000,
        }
    ]
    assert env.balance(env.payee) == payee_before + 1_000
    assert env.balance(env.channels.address) == env.owed() == 0

    env.reverts(
        "channels: deposit exhausted",
        env.channels.functions.redeem(channel_id, 6_000, env.sign(env.payer, channel_id, 6_000)),
        env.relayer,
    )
    env.reverts(
        "channels: deposit exhausted", env.channels.functions.redeem(channel_id, 5_000, high), env.relayer
    )

    env.send(env.channels.functions.topup(channel_id, 0), env.payer, value=10_000)
    receipt = env.redeem(channel_id, 5_000, high)
    assert env.events(receipt, "VoucherRedeemed")[0]["paid"] == 4_000
    assert env.events(receipt, "VoucherRedeemed")[0]["redeemed"] == 5_000
    assert env.balance(env.payee) == payee_before + 5_000
    assert env.balance(env.channels.address) == env.owed() == 6_000
    env.reverts(
        "channels: voucher not above redeemed",
        env.channels.functions.redeem(channel_id, 5_000, high),
        env.relayer,
    )


# -- batches -------------------------------------------------------------------------------------------


def test_redeem_many_pays_each_payee_exactly(env: Env) -> None:
    a, _ = env.open_native(1_000)
    b, _ = env.open_native(2_000, payer=env.payer2, payee=env.payee2)
    c, _ = env.open_token(env.token, 3_000, payer=env.payer2, payee=env.payee)
    batch = [
        (a, 100, env.sign(env.payer, a, 100)),
        (b, 250, env.sign(env.payer2, b, 250)),
        (c, 5_000, env.sign(env.payer2, c, 5_000)),  # above the deposit: pays 3,000
        (a, 180, env.sign(env.payer, a, 180)),  # the same channel again, higher
    ]
    payee_native, payee2_native = env.balance(env.payee), env.balance(env.payee2)
    payee_token = env.balance(env.payee, env.token)

    call = env.channels.functions.redeem_many(batch)
    assert call.call({"from": env.relayer.address}) == 100 + 250 + 3_000 + 80
    receipt = env.send(call, env.relayer)
    assert [(e["channel_id"], e["paid"], e["redeemed"]) for e in env.events(receipt, "VoucherRedeemed")] == [
        (a, 100, 100),
        (b, 250, 250),
        (c, 3_000, 3_000),
        (a, 80, 180),
    ]
    assert env.balance(env.payee) == payee_native + 180
    assert env.balance(env.payee2) == payee2_native + 250
    assert env.balance(env.payee, env.token) == payee_token + 3_000
    assert [env.channel(i)[4] for i in (a, b, c)] == [180, 250, 3_000]
    assert_solvent(env)


def test_empty_batch_reverts(env: Env) -> None:
    env.reverts("channels: empty batch", env.channels.functions.redeem_many([]), env.relayer)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [("wrong-signer", 10), ("replayed", 4), ("unknown", 1), ("high-s", 8), ("v-flipped", 10)],
)
def test_one_bad_voucher_is_skipped_and_the_rest_of_the_batch_pays(env: Env, bad: str, reason: int) -> None:
    a, _ = env.open_native(1_000)
    b, _ = env.open_native(1_000, payer=env.payer2, payee=env.payee2)
    env.redeem(b, 50, env.sign(env.payer2, b, 50))
    good_b = env.sign(env.payer2, b, 200)
    r, s, v = good_b[:32], int.from_bytes(good_b[32:64], "big"), good_b[64]
    bad_voucher = {
        "wrong-signer": (b, 200, env.sign(env.payer, b, 200)),
        "replayed": (b, 50, env.sign(env.payer2, b, 50)),
        "unknown": (99, 200, env.sign(env.payer2, 99, 200)),
        "high-s": (b, 200, r + (SECP256K1_N - s).to_bytes(32, "big") + bytes((55 - v,))),
        "v-flipped": (b, 200, good_b[:64] + bytes((55 - v,))),
    }[bad]
    payee_before, payee2_before = env.balance(env.payee), env.balance(env.payee2)
    batch = [(a, 100, env.sign(env.payer, a, 100)), bad_voucher]
    receipt = env.send(env.channels.functions.redeem_many(batch), env.relayer)
    assert env.events(receipt, "VoucherRejected") == [
        {"channel_id": bad_voucher[0], "cumulative_amount": bad_voucher[1], "reason": reason}
    ]
    assert env.balance(env.payee) == payee_before + 100
    assert env.balance(env.payee2) == payee2_before
    assert [env.channel(a)[4], env.channel(b)[4]] == [100, 50]
    assert env.balance(env.channels.address) == env.owed() == 1_850


# -- hostile tokens (P7) -------------------------------------------------------------------------------


def _redeem_calldata(env: Env, channel_id: int, cumulative: int, signature: bytes) -> bytes:
    return bytes.fromhex(
        env.channels.encode_abi("redeem", args=[channel_id, cumulative, signature]).removeprefix("0x")
    )


@pytest.fixture
def reentrant_pair(env: Env) -> tuple[int, int, bytes]:
    """Two ReentrantToken channels of the payer (to payee and payee2) and a valid redeem of the second."""
    first, _ = env.open_token(env.reentrant, 1_000)
    second, _ = env.open_token(env.reentrant, 1_000, payee=env.payee2)
    return first, second, _redeem_calldata(env, second, 300, env.sign(env.payer, second, 300))


def _assert_reentry_blocked(env: Env, attempts: int) -> None:
    token = env.reentrant
    assert token.functions.attempts().call() == attempts
    assert token.functions.reentered().call() is False
    assert token.functions.armed().call() is False
    assert_solvent(env)


def test_reentry_from_a_redeem_payout_is_blocked(env: Env, reentrant_pair: tuple[int, int, bytes]) -> None:
    first, second, reentry = reentrant_pair
    env.send(env.reentrant.functions.arm(env.channels.address, reentry), env.deployer)
    env.redeem(first, 400, env.sign(env.payer, first, 400))
    _assert_reentry_blocked(env, attempts=1)
    assert env.channel(first)[4] == 400
    assert env.channel(second)[4] == 0
    assert env.balance(env.payee2, env.reentrant) == 0
    # Outside the lock, the very same call succeeds: the lock, not a bad payload, stopped it.
    env.chain.w3.eth.call({"to": env.channels.address, "data": reentry, "from": env.relayer.address})
    env.redeem(second, 300, env.sign(env.payer, second, 300))
    assert env.balance(env.payee2, env.reentrant) == 300
    assert env.balance(env.payee, env.reentrant) == 400
    assert_solvent(env)


def test_reentry_from_a_settle_refund_is_blocked(env: Env, reentrant_pair: tuple[int, int, bytes]) -> None:
    first, second, reentry = reentrant_pair
    env.send(env.channels.functions.close(first), env.payer)
    env.chain.set_next_timestamp(env.channel(first)[5])
    env.send(env.reentrant.functions.arm(env.channels.address, reentry), env.deployer)
    payer_before = env.balance(env.payer, env.reentrant)
    receipt = env.send(env.channels.functions.settle(first), env.relayer)
    assert env.events(receipt, "ChannelSettled") == [{"channel_id": first, "redeemed": 0, "refunded": 1_000}]
    _assert_reentry_blocked(env, attempts=1)
    assert env.balance(env.payer, env.reentrant) == payer_before + 1_000
    assert env.channel(second)[4] == 0


def test_reentry_from_an_open_deposit_is_blocked(env: Env, reentrant_pair: tuple[int, int, bytes]) -> None:
    _, second, reentry = reentrant_pair
    env.send(env.reentrant.functions.arm(env.channels.address, reentry), env.deployer)
    third, receipt = env.open_token(env.reentrant, 500, payee=env.stranger)
    assert env.events(receipt, "ChannelOpened")[0]["deposit"] == 500
    _assert_reentry_blocked(env, attempts=1)
    assert env.channel(second)[4] == 0
    assert env.channel(third)[3] == 500
    assert env.owed(env.reentrant) == 2_500


def test_reentrant_settle_of_the_same_channel_is_blocked(
    env: Env, reentrant_pair: tuple[int, int, bytes]
) -> None:
    first, _, _ = reentrant_pair
    env.send(env.channels.functions.close(first), env.payer)
    env.chain.set_next_timestamp(env.channel(first)[5])
    settle_again = bytes.fromhex(env.channels.encode_abi("settle", args=[first]).removeprefix("0x"))
    env.send(env.reentrant.functions.arm(env.channels.address, settle_again), env.deployer)
    payer_before = env.balance(env.payer, env.reentrant)
    env.send(env.channels.functions.settle(first), env.relayer)
    _assert_reentry_blocked(env, attempts=1)
    assert env.balance(env.payer, env.reentrant) == payer_before + 1_000  # refunded once, not twice


def test_no_return_value_token_works_end_to_end(env: Env) -> None:
    token = env.no_return
    channel_id, receipt = env.open_token(token, 2_000)
    assert env.events(receipt, "ChannelOpened")[0]["deposit"] == 2_000
    env.send(env.channels.functions.topup(channel_id, 500), env.payer)
    env.redeem(channel_id, 700, env.sign(env.payer, channel_id, 700))
    assert env.balance(env.payee, token) == 700
    assert env.balance(env.channels, token) == env.owed(token) == 1_800
    env.send(env.channels.functions.close(channel_id), env.payer)
    env.chain.set_next_timestamp(env.channel(channel_id)[5])
    env.send(env.channels.functions.settle(channel_id), env.relayer)
    assert env.balance(env.payer, token) == env.token_supply - 700
    assert env.balance(env.channels, token) == env.owed(token) == 0


def test_no_return_value_token_still_reverts_on_a_failed_transfer(env: Env) -> None:
    # The stranger holds none of it: the token's own revert comes through unchanged.
    env.send(env.no_return.functions.approve(env.channels.address, 10), env.stranger)
    env.reverts(
        "erc20: transfer amount exceeds balance",
        env.channels.functions.open(env.payee.address, env.no_return.address, 10),
        env.stranger,
    )
    assert env.owed(env.no_return) == 0


def test_false_returning_token_is_refused(env: Env) -> None:
    token, channels = env.false_return, env.channels
    env.send(token.functions.set_failing(True), env.stranger)
    env.reverts(
        "channels: token transfer failed",
        channels.functions.open(env.payee.address, token.address, 100),
        env.payer,
    )
    assert channels.functions.channel_count().call() == 0

    env.send(token.functions.set_failing(False), env.stranger)
    channel_id, _ = env.open_token(token, 1_000)
    env.send(token.functions.set_failing(True), env.stranger)
    env.reverts("channels: token transfer failed", channels.functions.topup(channel_id, 10), env.payer)
    # A payout the token refuses is credited to the payee's balance, never lost and never blocking.
    receipt = env.redeem(channel_id, 300, env.sign(env.payer, channel_id, 300))
    assert env.events(receipt, "PayoutCredited") == [
        {"receiver": env.payee.address, "token": token.address, "amount": 300, "balance": 300}
    ]
    assert env.balance(env.payee, token) == 0
    assert channels.functions.balances(env.payee.address, token.address).call() == 300
    env.send(channels.functions.close(channel_id), env.payer)
    env.chain.set_next_timestamp(env.channel(channel_id)[5])
    env.send(channels.functions.settle(channel_id), env.relayer)  # the refund is credited likewise
    assert channels.functions.balances(env.payer.address, token.address).call() == 700
    assert env.balance(channels, token) == env.owed(token) == 1_000
    # Withdrawing while the token still refuses reverts and changes nothing; once it transfers, it works.
    env.reverts("channels: token transfer failed", channels.functions.withdraw(token.address, 700), env.payer)
    env.send(token.functions.set_failing(False), env.stranger)
    env.send(channels.functions.withdraw(token.address, 700), env.payer)
    env.send(channels.functions.withdraw_to(token.address, 300, env.stranger.address), env.payee)
    assert env.balance(env.payer, token) == env.token_supply - 300
    assert env.balance(env.stranger, token) == 300
    assert env.balance(channels, token) == env.owed(token) == 0


def test_fee_on_transfer_token_is_booked_at_what_arrived(env: Env) -> None:
    token = env.fee
    channel_id, receipt = env.open_token(token, 10_000)  # 1% burned on the way in
    assert env.events(receipt, "ChannelOpened")[0]["deposit"] == 9_900
    assert env.channel(channel_id)[3] == 9_900
    assert env.balance(env.channels, token) == env.owed(token) == 9_900

    receipt = env.send(env.channels.functions.topup(channel_id, 1_000), env.payer)
    assert env.events(receipt, "ChannelToppedUp") == [
        {"channel_id": channel_id, "amount": 990, "deposit": 10_890}
    ]

    env.redeem(channel_id, 20_000, env.sign(env.payer, channel_id, 20_000))
    assert env.channel(channel_id)[4] == 10_890
    assert env.balance(env.payee, token) == 10_890 - 108
    assert env.balance(env.channels, token) == env.owed(token) == 0


# -- EIP-712 agreement between Python and the contract (D6) --------------------------------------------


def test_voucher_typehash_matches_the_contract(env: Env) -> None:
    assert VOUCHER_TYPE == "Voucher(uint256 channelId,uint256 cumulativeAmount)"
    assert (
        env.channels.functions.VOUCHER_TYPEHASH().call() == VOUCHER_TYPEHASH == keccak(VOUCHER_TYPE.encode())
    )


def test_domain_separator_matches_the_contract(env: Env) -> None:
    for contract in (env.channels, env.other_channels):
        domain = ChannelDomain(env.chain.chain_id, contract.address)
        assert contract.functions.domain_separator().call() == domain.separator
    assert env.domain().separator != env.domain(contract=env.other_channels).separator
    _, name, version, chain_id, verifying, _, _ = env.channels.functions.eip712Domain().call()
    assert (name, version, chain_id, verifying) == (
        DOMAIN_NAME,
        DOMAIN_VERSION,
        env.chain.chain_id,
        env.channels.address,
    )


@pytest.mark.parametrize(("channel_id", "amount"), [(0, 0), (1, 1), (7, 10**18), (2**256 - 1, 2**256 - 1)])
def test_voucher_digest_matches_the_contract_and_eth_account(env: Env, channel_id: int, amount: int) -> None:
    voucher = env.signer(env.payer).sign(channel_id, amount)
    on_chain = env.channels.functions.voucher_digest(channel_id, amount).call()
    reference = _hash_eip191_message(encode_typed_data(full_message=voucher.typed_data()))
    assert voucher.digest() == on_chain == reference


def test_a_voucher_signed_by_eth_account_redeems(env: Env, funded: int) -> None:
    typed = env.signer(env.payer).sign(funded, 123).typed_data()
    signed = Account.sign_typed_data(env.payer.key, full_message=typed)
    assert bytes(signed.signature) == env.sign(env.payer, funded, 123)  # RFC 6979: both sign identically
    receipt = env.redeem(funded, 123, bytes(signed.signature))
    assert env.events(receipt, "VoucherRedeemed")[0]["paid"] == 123


# -- access control and bad input ----------------------------------------------------------------------


def test_only_the_payer_can_topup_or_close(env: Env, funded: int) -> None:
    for intruder in (env.payee, env.stranger):
        env.reverts(
            "channels: caller is not the payer", env.channels.functions.topup(funded, 0), intruder, value=5
        )
        env.reverts("channels: caller is not the payer", env.channels.functions.close(funded), intruder)
    assert env.channel(funded)[3] == 1_000
    assert env.channel(funded)[5] == 0


@pytest.mark.parametrize("channel_id", [0, 2, 2**256 - 1])
def test_unknown_channel_is_rejected_everywhere(env: Env, funded: int, channel_id: int) -> None:
    functions = env.channels.functions
    signature = env.sign(env.payer, channel_id, 10)
    env.reverts("channels: unknown channel", functions.topup(channel_id, 0), env.payer, value=5)
    env.reverts("channels: unknown channel", functions.close(channel_id), env.payer)
    env.reverts("channels: unknown channel", functions.settle(channel_id), env.payer)
    env.reverts("channels: unknown channel", functions.redeem(channel_id, 10, signature), env.relayer)
    assert env.balance(env.channels.address) == env.owed() == 1_000


def test_open_rejects_bad_parties_and_empty_deposits(env: Env) -> None:
    open_ = env.channels.functions.open
    env.reverts("channels: payee is the zero address", open_(NATIVE, NATIVE, 0), env.payer, value=10)
    env.reverts(
        "channels: payer and payee are the same", open_(env.payer.address, NATIVE, 0), env.payer, value=10
    )
    env.reverts("channels: deposit is zero", open_(env.payee.address, NATIVE, 1_000), env.payer)
    env.reverts("channels: deposit is zero", open_(env.payee.address, env.token.address, 0), env.payer)
    env.reverts(
        "channels: native value sent with a token deposit",
        open_(env.payee.address, env.token.address, 100),
        env.payer,
        value=10,
    )
    assert env.channels.functions.channel_count().call() == 0
    assert env.balance(env.channels.address) == env.owed() == 0
    assert env.balance(env.channels, env.token) == env.owed(env.token) == 0


def test_topup_rejects_empty_deposits_and_stray_native_value(env: Env, funded: int) -> None:
    token_channel, _ = env.open_token(env.token, 100)
    env.reverts("channels: deposit is zero", env.channels.functions.topup(funded, 10**6), env.payer)
    env.reverts("channels: deposit is zero", env.channels.functions.topup(token_channel, 0), env.payer)
    env.reverts(
        "channels: native value sent with a token deposit",
        env.channels.functions.topup(token_channel, 100),
        env.payer,
        value=1,
    )
    assert (env.channel(funded)[3], env.channel(token_channel)[3]) == (1_000, 100)


@pytest.mark.parametrize(
    ("period", "reason"),
    [
        (0, "channels: challenge period is zero"),
        (2**32, "channels: challenge period too long"),
        (2**64, "channels: challenge period too long"),
        (2**256 - 1, "channels: challenge period too long"),
    ],
)
def test_challenge_period_must_be_positive_and_bounded(env: Env, period: int, reason: str) -> None:
    with pytest.raises(TransactionReverted) as info:
        env.chain.deploy("PaymentChannels", period, env.chain.contract("AgentRegistry").address)
    assert info.value.reason == reason


def test_longest_challenge_period_still_packs_into_the_channel(env: Env) -> None:
    # closes_at lives in 64 bits next to the payee and the settled flag: the longest period allowed
    # must neither spill into the flag nor wrap to an early deadline.
    period = 2**32 - 1
    contract = env.chain.deploy("PaymentChannels", period, env.chain.contract("AgentRegistry").address)
    env.send(contract.functions.open(env.payee.address, NATIVE, 0), env.payer, value=1_000)
    closed_at = env.pending_timestamp() + 10
    env.chain.set_next_timestamp(closed_at)
    receipt = env.send(contract.functions.close(1), env.payer)
    assert env.events(receipt, "ChannelClosing", contract) == [
        {"channel_id": 1, "closes_at": closed_at + period}
    ]
    assert tuple(contract.functions.channels(1).call()) == (
        env.payer.address,
        env.payee.address,
        NATIVE,
        1_000,
        0,
        closed_at + period,
        False,
    )
    env.reverts("channels: challenge period not over", contract.functions.settle(1), env.relayer)


def test_packed_fields_do_not_bleed_into_each_other(env: Env) -> None:
    payee = to_checksum_address("0x" + "ff" * 20)  # every payee bit set, right below closes_at and settled
    receipt = env.send(env.channels.functions.open(payee, NATIVE, 0), env.payer, value=1_000)
    (opened,) = env.events(receipt, "ChannelOpened")
    channel_id = opened["channel_id"]
    assert opened["payee"] == payee
    env.redeem(channel_id, 600, env.sign(env.payer, channel_id, 600))
    assert env.balance(payee) == 600
    env.send(env.channels.functions.close(channel_id), env.payer)
    deadline = env.channel(channel_id)[5]
    assert env.channel(channel_id) == (env.payer.address, payee, NATIVE, 1_000, 600, deadline, False)
    env.chain.set_next_timestamp(deadline)
    env.send(env.channels.functions.settle(channel_id), env.relayer)
    assert env.channel(channel_id) == (env.payer.address, payee, NATIVE, 1_000, 600, deadline, True)


def test_deposits_are_capped_at_128_bits(env: Env) -> None:
    token, whale = env.token, env.stranger
    cap = 2**128 - 1
    env.send(token.functions.mint(whale.address, cap + 1), env.deployer)
    env.send(token.functions.approve(env.channels.address, 2**256 - 1), whale)
    env.reverts(
        "channels: deposit too large",
        env.channels.functions.open(env.payee.address, token.address, cap + 1),
        whale,
    )
    channel_id, _ = env.open_token(token, cap, payer=whale)
    env.reverts("channels: deposit too large", env.channels.functions.topup(channel_id, 1), whale)
    assert env.channel(channel_id)[3:5] == (cap, 0)
    receipt = env.redeem(channel_id, 2**256 - 1, env.sign(whale, channel_id, 2**256 - 1))
    assert env.events(receipt, "VoucherRedeemed")[0]["paid"] == cap
    assert env.channel(channel_id)[3:5] == (cap, cap)
    assert env.balance(env.payee, token) == cap
    assert env.balance(env.channels, token) == env.owed(token) == 0


def test_contract_rejects_plain_native_transfers(env: Env) -> None:
    # Money only enters through open and topup, so the books cannot drift from the balance that way.
    with pytest.raises(Exception, match="revert"):
        env.chain.w3.eth.estimate_gas(
            {"from": env.stranger.address, "to": env.channels.address, "value": Wei(1)}
        )
    assert env.balance(env.channels.address) == env.owed() == 0


# -- one-shot (P6) -------------------------------------------------------------------------------------


def test_a_settled_channel_accepts_nothing(env: Env, closing: tuple[int, int]) -> None:
    channel_id, deadline = closing
    env.chain.set_next_timestamp(deadline)
    env.send(env.channels.functions.settle(channel_id), env.relayer)
    functions = env.channels.functions
    signature = env.sign(env.payer, channel_id, 10)
    env.reverts("channels: channel is settled", functions.redeem(channel_id, 10, signature), env.relayer)
    skipped = env.send(functions.redeem_many([(channel_id, 10, signature)]), env.relayer)
    assert env.events(skipped, "VoucherRejected") == [
        {"channel_id": channel_id, "cumulative_amount": 10, "reason": 2}
    ]
    env.reverts("channels: channel is settled", functions.topup(channel_id, 0), env.payer, value=5)
    env.reverts("channels: channel is settled", functions.close(channel_id), env.payer)
    env.reverts("channels: channel is settled", functions.settle(channel_id), env.relayer)
    env.reverts("channels: channel is settled", functions.settle(channel_id), env.payer)
    assert env.channel(channel_id) == (env.payer.address, env.payee.address, NATIVE, 1_000, 0, deadline, True)
    assert env.balance(env.channels.address) == env.owed() == 0
