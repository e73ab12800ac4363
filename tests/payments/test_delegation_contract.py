"""Delegations in PaymentChannels.vy: a wallet's signed, capped, time-boxed, revocable grant to a session key.

Roles: the delegator is `env.payer`, the session key `env.payer2` (it sends transactions, so it holds gas),
`env.stranger` is a key that was never delegated to; `env.payee` and `env.payee2` are agents registered with
"summarize" and "translate". The cap bounds the money placed in the delegation's channels (D1), the session key
pays only registered agents with a delegated capability (D4), and money once placed stays redeemable whatever
becomes of the delegation (D5). Every refusal is checked by its exact revert string, and the delegation's
`spent` is read back after it to show that nothing was consumed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.abi import function_signature_to_4byte_selector

from motet.errors import InvalidDelegation
from motet.payments import (
    DELEGATION_TYPE,
    ChannelDomain,
    Delegation,
    DelegationClient,
    VoucherSigner,
    sign_typed,
)
from motet.payments._eip712 import keccak

if TYPE_CHECKING:
    from support.channels import Env

from support.channels import CONTRACTS_DIR

NATIVE = "0x" + "00" * 20
HOUR = 3600


def make(env: Env, **changes: Any) -> Delegation:
    now = env.pending_timestamp()
    values: dict[str, Any] = {
        "delegator": env.payer.address,
        "session_key": env.payer2.address,
        "cap": 1_000,
        "valid_after": now - 1,
        "expiry": now + HOUR,
        "capabilities": ("summarize",),
        "nonce": 1,
    }
    values.update(changes)
    return Delegation(**values)


def signed(env: Env, delegation: Delegation, key: Any = None, domain: ChannelDomain | None = None) -> bytes:
    return sign_typed(bytes((key or env.payer).key), delegation.digest(domain or env.domain()))


def register(env: Env, delegation: Delegation, signature: bytes | None = None) -> bytes:
    receipt = env.send(
        env.channels.functions.delegate(delegation.as_struct(), signature or signed(env, delegation)),
        env.relayer,
    )
    (event,) = env.events(receipt, "DelegationRegistered")
    return bytes(event["delegation_id"])


def deposit(env: Env, amount: int, who: Any = None) -> None:
    env.send(env.channels.functions.deposit(NATIVE, 0), who or env.payer, value=amount)


def opening(
    env: Env, delegation_id: bytes, deposit: int, payee: Any = None, capability: str = "summarize"
) -> Any:
    """The `open_delegated` call to a registered agent (`env.payee` by default) for `capability`."""
    address = (payee or env.payee).address
    return env.channels.functions.open_delegated(
        delegation_id, address, env.agents.get(address, 0), keccak(capability.encode()), deposit
    )


def open_delegated(env: Env, delegation_id: bytes, deposit: int, payee: Any = None) -> int:
    receipt = env.send(opening(env, delegation_id, deposit, payee), env.payer2)
    (event,) = env.events(receipt, "ChannelDelegated")
    return int(event["channel_id"])


def voucher(env: Env, channel_id: int, cumulative: int, key: Any = None) -> bytes:
    return VoucherSigner(bytes((key or env.payer2).key), env.domain()).sign(channel_id, cumulative).signature


def spent(env: Env, delegation_id: bytes) -> int:
    return int(env.channels.functions.delegations(delegation_id).call()[6])


@pytest.fixture
def active(env: Env) -> tuple[bytes, int, int]:
    """A registered delegation (cap 1,000) with two channels, to payee and payee2, of 400 each."""
    deposit(env, 2_000)
    delegation_id = register(env, make(env))
    return (
        delegation_id,
        open_delegated(env, delegation_id, 400),
        open_delegated(env, delegation_id, 400, env.payee2),
    )


# -- D6: one type, hashed the same everywhere -----------------------------------------------------------


def test_type_string_and_digest_match_the_contract_and_eth_account(env: Env) -> None:
    assert env.channels.functions.DELEGATION_TYPEHASH().call() == keccak(DELEGATION_TYPE.encode())
    delegation = make(env, capabilities=("summarize", "translate"), asset=env.token.address, nonce=7)
    digest = delegation.digest(env.domain())
    assert env.channels.functions.delegation_digest(delegation.as_struct()).call() == digest
    independent = encode_typed_data(full_message=delegation.typed_data(env.domain()))
    assert keccak(b"\x19" + independent.version + independent.header + independent.body) == digest


def test_registration_records_the_delegation_and_logs_it(env: Env) -> None:
    delegation = make(env)
    receipt = env.send(
        env.channels.functions.delegate(delegation.as_struct(), signed(env, delegation)), env.stranger
    )
    (event,) = env.events(receipt, "DelegationRegistered")
    assert event == {
        "delegation_id": delegation.digest(env.domain()),
        "delegator": env.payer.address,
        "session_key": env.payer2.address,
        "asset": NATIVE,
        "cap": 1_000,
        "valid_after": delegation.valid_after,
        "expiry": delegation.expiry,
    }
    state = DelegationClient(env.chain).state(event["delegation_id"])
    assert state is not None and (state.cap, state.spent, state.revoked) == (1_000, 0, False)
    env.reverts(
        "channels: delegation already registered",
        env.channels.functions.delegate(delegation.as_struct(), signed(env, delegation)),
        env.relayer,
    )


# -- D1: the cap, summed over the money placed in every channel of the delegation --------------------


def test_placing_just_below_at_and_above_the_cap(env: Env, active: tuple[bytes, int, int]) -> None:
    delegation_id, first, second = active
    assert spent(env, delegation_id) == 800  # two deposits of 400
    third = open_delegated(env, delegation_id, 199)
    assert spent(env, delegation_id) == 999  # just below
    receipt = env.send(env.channels.functions.topup(second, 1), env.payer2)
    assert env.events(receipt, "DelegationSpent") == [
        {"delegation_id": delegation_id, "channel_id": second, "paid": 1, "spent": 1_000}
    ]
    assert spent(env, delegation_id) == 1_000  # at the cap
    # Above: one more wei in any channel, new or old, is refused and places nothing.
    env.reverts("channels: delegation cap exceeded", opening(env, delegation_id, 1), env.payer2)
    for channel_id in (first, second, third):
        env.reverts(
            "channels: delegation cap exceeded", env.channels.functions.topup(channel_id, 1), env.payer2
        )
    assert spent(env, delegation_id) == 1_000
    assert DelegationClient(env.chain).balance(env.payer.address) == 1_000


def test_redemption_consumes_nothing_more_and_pays_all_that_was_placed(
    env: Env, active: tuple[bytes, int, int]
) -> None:
    delegation_id, first, second = active
    redeem = env.channels.functions.redeem
    payee_before, payee2_before = env.balance(env.payee), env.balance(env.payee2)
    env.send(redeem(first, 400, voucher(env, first, 400)), env.relayer)
    env.send(redeem(second, 250, voucher(env, second, 250)), env.relayer)
    assert env.balance(env.payee) == payee_before + 400 and env.balance(env.payee2) == payee2_before + 250
    assert spent(env, delegation_id) == 800
    # The unredeemed part goes back to the delegator's balance at settlement (where it was drawn from).
    env.send(env.channels.functions.close(second), env.payer2)
    env.chain.advance_time(env.challenge_period + 1)
    env.send(env.channels.functions.settle(second), env.relayer)
    assert DelegationClient(env.chain).balance(env.payer.address) == 1_200 + 150
    assert env.balance(env.channels.address) == env.owed()


# -- D2: the window -----------------------------------------------------------------------------------


def test_expired_delegations_neither_register_nor_open_nor_top_up_but_placed_money_pays(
    env: Env, active: tuple[bytes, int, int]
) -> None:
    delegation_id, first, _ = active
    env.send(env.channels.functions.redeem(first, 100, voucher(env, first, 100)), env.relayer)
    env.chain.advance_time(HOUR + 1)
    env.reverts("channels: delegation expired", opening(env, delegation_id, 10), env.payer2)
    env.reverts("channels: delegation expired", env.channels.functions.topup(first, 10), env.payer2)
    # D5: the money placed before expiry stays the agent's.
    before = env.balance(env.payee)
    env.send(env.channels.functions.redeem(first, 400, voucher(env, first, 400)), env.relayer)
    assert env.balance(env.payee) == before + 300
    assert spent(env, delegation_id) == 800
    stale = make(env, nonce=2, valid_after=0, expiry=env.pending_timestamp() - 1)
    env.reverts(
        "channels: delegation expired",
        env.channels.functions.delegate(stale.as_struct(), signed(env, stale)),
        env.relayer,
    )


def test_not_yet_valid_delegations_wait_for_their_start(env: Env) -> None:
    start = env.pending_timestamp() + 600
    delegation = make(env, valid_after=start, expiry=start + HOUR)
    deposit(env, 1_000)
    delegation_id = register(env, delegation)
    env.reverts("channels: delegation not yet valid", opening(env, delegation_id, 100), env.payer2)
    env.chain.set_next_timestamp(start)
    channel_id = open_delegated(env, delegation_id, 100)
    env.send(env.channels.functions.redeem(channel_id, 50, voucher(env, channel_id, 50)), env.relayer)
    assert spent(env, delegation_id) == 100


def test_an_expiry_of_zero_is_refused_not_read_as_forever(env: Env) -> None:
    with pytest.raises(InvalidDelegation, match="expiry is 0"):
        make(env, valid_after=0, expiry=0)
    struct = (env.payer.address, env.payer2.address, NATIVE, 1_000, 0, 0, [keccak(b"*")], 1)
    digest = env.channels.functions.delegation_digest(struct).call()
    env.reverts(
        "channels: delegation expiry is 0 (there is no 'forever')",
        env.channels.functions.delegate(struct, sign_typed(bytes(env.payer.key), digest)),
        env.relayer,
    )
    backwards = (*struct[:4], 500, 400, *struct[6:])
    digest = env.channels.functions.delegation_digest(backwards).call()
    env.reverts(
        "channels: delegation ends before it starts",
        env.channels.functions.delegate(backwards, sign_typed(bytes(env.payer.key), digest)),
        env.relayer,
    )


def test_a_delegation_lists_at_most_32_capabilities(env: Env) -> None:
    with pytest.raises(InvalidDelegation, match="a delegation lists at most 32"):
        make(env, capabilities=tuple(f"capability-{i}" for i in range(33)))
    many = make(env, capabilities=("summarize", *(f"capability-{i}" for i in range(31))))
    delegation_id = register(env, many)
    stored = env.channels.functions.delegation_capabilities(delegation_id).call()
    assert [bytes(h) for h in stored] == [keccak(c.encode()) for c in many.capabilities]
    deposit(env, 100)
    open_delegated(env, delegation_id, 100)


# -- D3: revocation stops new money, never placed money (D5) -----------------------------------------


def test_revoked_mid_run_stops_new_channels_and_top_ups_but_not_redemption(
    env: Env, active: tuple[bytes, int, int]
) -> None:
    delegation_id, first, second = active
    env.send(env.channels.functions.redeem(first, 100, voucher(env, first, 100)), env.relayer)
    # A stranger cannot revoke someone else's delegation: it only marks the id under the stranger.
    env.send(env.channels.functions.revoke(delegation_id), env.stranger)
    env.send(env.channels.functions.topup(second, 100), env.payer2)
    receipt = env.send(env.channels.functions.revoke(delegation_id), env.payer)
    assert env.events(receipt, "DelegationRevoked") == [
        {"delegation_id": delegation_id, "delegator": env.payer.address}
    ]
    env.reverts("channels: delegation revoked", env.channels.functions.topup(first, 100), env.payer2)
    env.reverts("channels: delegation revoked", opening(env, delegation_id, 100), env.payer2)
    assert spent(env, delegation_id) == 900
    before = env.balance(env.payee2)
    env.send(env.channels.functions.redeem(second, 500, voucher(env, second, 500)), env.relayer)
    assert env.balance(env.payee2) == before + 500
    state = DelegationClient(env.chain).state(delegation_id)
    assert state is not None and state.revoked and state.remaining == 100


def test_a_delegation_revoked_before_registration_never_registers(env: Env) -> None:
    delegation = make(env)
    env.send(env.channels.functions.revoke(delegation.digest(env.domain())), env.payer)
    env.reverts(
        "channels: delegation revoked",
        env.channels.functions.delegate(delegation.as_struct(), signed(env, delegation)),
        env.relayer,
    )


# -- signatures: other chains, other contracts, other keys --------------------------------------------


def test_replay_on_another_chain_id_or_contract_is_refused(env: Env) -> None:
    delegation = make(env)
    other_chain = signed(env, delegation, domain=env.domain(chain_id=env.chain.chain_id + 1))
    env.reverts(
        "channels: delegation not signed by the delegator",
        env.channels.functions.delegate(delegation.as_struct(), other_chain),
        env.relayer,
    )
    here = signed(env, delegation)
    env.reverts(
        "channels: delegation not signed by the delegator",
        env.other_channels.functions.delegate(delegation.as_struct(), here),
        env.relayer,
    )
    # An edited field is a different digest: the signature no longer matches.
    edited = make(env, cap=1_001)
    env.reverts(
        "channels: delegation not signed by the delegator",
        env.channels.functions.delegate(edited.as_struct(), here),
        env.relayer,
    )
    register(env, delegation, here)


def test_wrong_session_key_can_neither_open_nor_sign(env: Env, active: tuple[bytes, int, int]) -> None:
    delegation_id, first, _ = active
    env.reverts(
        "channels: caller is not the delegation's session key", opening(env, delegation_id, 10), env.stranger
    )
    for key in (env.stranger, env.payer):  # the delegator's own key is not the session key either
        env.reverts(
            "channels: voucher not signed by the delegation's session key",
            env.channels.functions.redeem(first, 100, voucher(env, first, 100, key)),
            env.relayer,
        )
    env.reverts(
        "channels: caller is not the payer or its session key",
        env.channels.functions.close(first),
        env.stranger,
    )
    env.reverts(
        "channels: caller is not the delegation's session key",
        env.channels.functions.topup(first, 10),
        env.stranger,
    )
    assert spent(env, delegation_id) == 800


# -- D4: payees are registered agents with a delegated capability ---------------------------------------


def test_payees_must_be_active_agents_with_a_delegated_capability(env: Env) -> None:
    deposit(env, 2_000)
    delegation_id = register(env, make(env))  # "summarize" only
    refusals = [
        (opening(env, delegation_id, 10, env.payer2), "channels: payee is the session key"),
        (opening(env, delegation_id, 10, env.payer), "channels: payer and payee are the same"),
        (
            opening(env, delegation_id, 10, env.stranger),
            "channels: payee is not an active agent registered with that capability",
        ),
        (opening(env, delegation_id, 10, capability="translate"), "channels: capability not delegated"),
    ]
    # An agent id that pays someone else cannot be borrowed: the payee must be that agent's payout.
    wrong_id = env.channels.functions.open_delegated(
        delegation_id, env.stranger.address, env.agents[env.payee.address], keccak(b"summarize"), 10
    )
    refusals.append((wrong_id, "channels: payee is not an active agent registered with that capability"))
    for call, reason in refusals:
        env.reverts(reason, call, env.payer2)
    # A registered agent without the capability, and one deactivated by its owner, are refused too.
    other = env.register_agent(env.stranger.address, ("translate",))
    call = env.channels.functions.open_delegated(
        delegation_id, env.stranger.address, other, keccak(b"summarize"), 10
    )
    env.reverts("channels: payee is not an active agent registered with that capability", call, env.payer2)
    env.send(env.registry.functions.set_active(env.agents[env.payee.address], False), env.deployer)
    env.reverts(
        "channels: payee is not an active agent registered with that capability",
        opening(env, delegation_id, 10),
        env.payer2,
    )
    assert spent(env, delegation_id) == 0
    # "*" delegates every capability, still only to registered agents.
    anything = register(env, make(env, capabilities=("*",), nonce=2))
    open_delegated(env, anything, 10, env.payee2)
    env.send(opening(env, anything, 10, env.payee2, capability="translate"), env.payer2)
    env.reverts(
        "channels: payee is not an active agent registered with that capability",
        opening(env, anything, 10, env.stranger),
        env.payer2,
    )
    assert spent(env, anything) == 20


# -- balances -------------------------------------------------------------------------------------------


def test_channels_draw_from_the_balance_and_the_rest_can_be_withdrawn(env: Env) -> None:
    deposit(env, 1_000)
    delegation_id = register(env, make(env, cap=10_000))
    env.reverts("channels: balance too low", opening(env, delegation_id, 1_001), env.payer2)
    channel_id = open_delegated(env, delegation_id, 600)
    assert env.channel(channel_id)[:4] == (env.payer.address, env.payee.address, NATIVE, 600)
    env.send(env.channels.functions.topup(channel_id, 300), env.payer2)
    assert env.channel(channel_id)[3] == 900
    client = DelegationClient(env.chain, env.payer)
    assert client.balance(env.payer.address) == 100
    env.reverts("channels: balance too low", env.channels.functions.withdraw(NATIVE, 101), env.payer)
    before = env.balance(env.payer)
    receipt = env.send(env.channels.functions.withdraw(NATIVE, 100), env.payer)
    assert env.balance(env.payer) == before + 100 - env.gas_cost(receipt)
    assert env.balance(env.channels.address) == env.owed() == 900


# -- ERC-1271 -----------------------------------------------------------------------------------------


def test_a_contract_wallet_delegates_with_erc1271(env: Env) -> None:
    owner = env.payee2  # the wallet's owner key; the wallet is the delegator
    wallet = env.chain.deploy(CONTRACTS_DIR / "MinimalWallet.vy", owner.address, sender=env.deployer)
    selector = function_signature_to_4byte_selector("deposit(address,uint256)")
    data = selector + bytes(12) + bytes(20) + bytes(32)
    env.send(wallet.functions.execute(env.channels.address, 1_000, data), owner, value=1_000)
    assert DelegationClient(env.chain).balance(wallet.address) == 1_000

    delegation = make(env, delegator=wallet.address)
    env.reverts(
        "channels: delegation not signed by the delegator",
        env.channels.functions.delegate(delegation.as_struct(), signed(env, delegation, key=env.stranger)),
        env.relayer,
    )
    delegation_id = register(env, delegation, signed(env, delegation, key=owner))
    client = DelegationClient(env.chain)
    assert client.signed_by(wallet.address, delegation_id, signed(env, delegation, key=owner))
    assert not client.signed_by(wallet.address, delegation_id, signed(env, delegation, key=env.stranger))
    channel_id = open_delegated(env, delegation_id, 700)
    env.send(env.channels.functions.redeem(channel_id, 250, voucher(env, channel_id, 250)), env.relayer)
    env.send(env.channels.functions.close(channel_id), env.payer2)
    env.chain.advance_time(env.challenge_period + 1)
    env.send(env.channels.functions.settle(channel_id), env.relayer)
    # The refund goes back to the wallet's balance here, where the deposit was drawn from.
    assert DelegationClient(env.chain).balance(wallet.address) == 300 + 450
    assert spent(env, delegation_id) == 700


def test_an_independent_signature_is_accepted_and_an_edited_field_is_not(env: Env) -> None:
    delegation = make(env, capabilities=("summarize", "extract_keywords"))
    typed = delegation.typed_data(env.domain())
    independent = Account.sign_typed_data(env.payer.key, full_message=typed).signature
    for field, value in (("cap", "1001"), ("expiry", str(delegation.expiry + 1)), ("capabilities", ["*"])):
        edited = Delegation.from_message({**typed["message"], field: value})
        env.reverts(
            "channels: delegation not signed by the delegator",
            env.channels.functions.delegate(edited.as_struct(), bytes(independent)),
            env.relayer,
        )
    parsed = Delegation.from_typed_data(typed, env.domain())
    assert register(env, parsed, bytes(independent)) == delegation.digest(env.domain())


def test_anyone_can_fund_a_balance_that_only_its_owner_can_withdraw(env: Env) -> None:
    receipt = env.send(
        env.channels.functions.deposit_for(env.payer.address, NATIVE, 0), env.stranger, value=500
    )
    assert env.events(receipt, "Deposited") == [
        {"owner": env.payer.address, "token": NATIVE, "amount": 500, "balance": 500}
    ]
    env.reverts("channels: balance too low", env.channels.functions.withdraw(NATIVE, 500), env.stranger)
    env.send(env.channels.functions.withdraw(NATIVE, 500), env.payer)
    assert env.balance(env.channels.address) == env.owed() == 0
