"""The Validation contract and the registry's slashing hooks, on the embedded chain, with receipts signed by
`ReceiptSigner` (the agent's payout key): disputes, the draw, commit and reveal, settlement to the wei.

One chain per module (`support.disputes.build`); every test starts from its snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_abi.abi import encode as abi_encode
from support.disputes import (
    AGENT_STAKE,
    COMMIT_WINDOW,
    EVIDENCE_URI,
    MODEL,
    OTHER_MODEL,
    REVEAL_WINDOW,
    DisputeEnv,
    build,
)

from motet.chain import Chain
from motet.errors import ChainError, InvalidRegistryArgument
from motet.payments import RECEIPT_TYPE, ReceiptDomain, ReceiptSigner
from motet.payments._eip712 import keccak
from motet.payments._vouchers import ChannelDomain, VoucherSigner
from motet.registry import Registry
from motet.settings import DisputeSettings, Settings
from motet.trust import Verdict

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
CHEAT, CONSISTENT, INCONCLUSIVE = Verdict.CHEAT, Verdict.CONSISTENT, Verdict.INCONCLUSIVE
BPS = 10_000


@pytest.fixture(scope="module")
def _deployed(tmp_path_factory: pytest.TempPathFactory) -> DisputeEnv:
    return build(tmp_path_factory.mktemp("disputes-home"))


@pytest.fixture
def env(_deployed: DisputeEnv) -> Iterator[DisputeEnv]:
    snapshot = _deployed.chain.snapshot()
    yield _deployed
    _deployed.chain.revert(snapshot)


def expected_draw(env: DisputeEnv, dispute_id: int, seed: bytes, excluded: set[str]) -> list[str]:
    """The contract's draw, redone here: stake-weighted, without replacement, from `seed`."""
    fns = env.validation.functions
    candidates = [
        (v, int(fns.validators(v).call()[0]))
        for v in fns.validator_list().call()
        if v not in excluded and bytes.fromhex(MODEL) in [bytes(m) for m in fns.models(v).call()]
    ]
    weights = [stake for _, stake in candidates]
    drawn = []
    for i in range(env.settings.validators_per_dispute):
        point = int.from_bytes(keccak(abi_encode(["bytes32", "uint256", "uint256"], [seed, dispute_id, i])))
        point %= sum(weights)
        cumulative = 0
        for j, weight in enumerate(weights):
            cumulative += weight
            if point < cumulative:
                drawn.append(candidates[j][0])
                weights[j] = 0
                break
    return drawn


# -- receipts ------------------------------------------------------------------------------------------------


def test_a_receipt_signed_by_the_payout_opens_a_dispute_under_the_same_eip712_digest(env: DisputeEnv) -> None:
    receipt = env.receipt()
    dispute_id, tx = env.open(receipt)
    (event,) = env.events(tx, "DisputeOpened")
    assert (event["agent_id"], event["challenger"], event["bond"]) == (
        env.agent_id,
        env.challenger.address,
        10**15,
    )
    assert event["evidence_uri"] == EVIDENCE_URI
    dispute = env.validation.functions.disputes(dispute_id).call()
    assert bytes(dispute[5]) == receipt.digest()  # receipts.vy hashes exactly as motet.payments signs
    assert env.validation.functions.disputed(receipt.digest()).call() == dispute_id
    assert env.registry.functions.holds(env.agent_id).call() == 1
    assert RECEIPT_TYPE.startswith("Receipt(bytes32 requestHash,")  # the type string receipts.vy hashes
    env.check_books()


def test_a_forged_receipt_not_signed_by_the_payout_is_refused(env: DisputeEnv) -> None:
    forger = ReceiptSigner(env.stranger.key, env.signer.domain)
    env.reverts(
        "validation: receipt not signed by the agent's payout",
        env.open_call(env.receipt(signer=forger)),
        env.challenger,
        value=env.settings.bond,
    )
    # The agent's owner is not its payout either.
    owner_signed = env.receipt(signer=ReceiptSigner(env.owner.key, env.signer.domain))
    env.reverts(
        "validation: receipt not signed by the agent's payout",
        env.open_call(owner_signed),
        env.challenger,
        value=env.settings.bond,
    )


def test_the_same_receipt_cannot_be_disputed_twice(env: DisputeEnv) -> None:
    receipt = env.receipt()
    env.open(receipt)
    env.reverts(
        "validation: receipt already disputed", env.open_call(receipt), env.stranger, value=env.settings.bond
    )


def test_a_receipt_of_another_domain_or_a_voucher_signature_is_refused(env: DisputeEnv) -> None:
    other = ReceiptSigner(env.payout.key, ReceiptDomain(env.chain.chain_id, "0x" + "11" * 20))
    env.reverts(
        "validation: receipt not signed by the agent's payout",
        env.open_call(env.receipt(signer=other)),
        env.challenger,
        value=env.settings.bond,
    )
    # The payout's voucher signature over the same numbers is not a receipt signature.
    receipt = env.receipt()
    voucher = VoucherSigner(env.payout.key, ChannelDomain(env.chain.chain_id, env.channels.address)).sign(
        receipt.channel_id, receipt.price
    )
    env.reverts(
        "validation: receipt not signed by the agent's payout",
        env.open_call(receipt, signature=voucher.signature),
        env.challenger,
        value=env.settings.bond,
    )


def test_a_high_s_or_malformed_signature_is_refused(env: DisputeEnv) -> None:
    receipt = env.receipt()
    r, s, v = receipt.signature[:32], int.from_bytes(receipt.signature[32:64]), receipt.signature[64]
    twin = r + (SECP256K1_N - s).to_bytes(32) + bytes([55 - v])  # the same signer's malleable twin
    for bad in (twin, receipt.signature[:64], receipt.signature[:64] + b"\x01", bytes(65)):
        env.reverts(
            "validation: malformed receipt signature",
            env.open_call(receipt, signature=bad),
            env.challenger,
            value=env.settings.bond,
        )
    env.open(receipt)  # the low-s original is fine


def test_opening_needs_exactly_the_bond_a_known_agent_a_model_and_evidence(env: DisputeEnv) -> None:
    receipt = env.receipt()
    bond = env.settings.bond
    for value in (0, bond - 1, bond + 1):
        env.reverts(
            "validation: the bond is not exactly BOND", env.open_call(receipt), env.challenger, value=value
        )
    env.reverts("validation: unknown agent", env.open_call(receipt, agent_id=99), env.challenger, value=bond)
    env.reverts(
        "validation: empty model", env.open_call(receipt, model="00" * 32), env.challenger, value=bond
    )
    call = env.validation.functions.open_dispute(
        env.agent_id, env.fields(receipt), receipt.signature, b"\x01" * 32, ""
    )
    env.reverts("validation: evidence URI is empty", call, env.challenger, value=bond)


# -- the registry's hooks ------------------------------------------------------------------------------------


def test_only_the_validation_contract_can_slash_hold_or_release_not_even_the_registry_owner(
    env: DisputeEnv,
) -> None:
    env.open()  # a hold exists, so only the caller check can refuse
    fns = env.registry.functions
    for caller in (env.deployer, env.owner, env.payout, env.challenger, env.stranger):
        for call in (fns.slash(env.agent_id, 1), fns.hold(env.agent_id), fns.release(env.agent_id)):
            env.reverts("registry: caller is not the validation contract", call, caller)
    assert env.stake() == AGENT_STAKE
    assert fns.slash_count(env.agent_id).call() == 0


def test_the_slasher_is_named_once_by_the_registry_owner_only(env: DisputeEnv) -> None:
    # motet's registry is owned by the Deployer that created it with its validation contract: no account, not even
    # the one that sent the deployment, can name another (tests/test_deterministic_deploy.py for the attacks).
    fns = env.registry.functions
    assert fns.validation().call() == env.validation.address
    for caller in (env.stranger, env.deployer):
        env.reverts("ownable: caller is not the owner", fns.set_validation(env.channels.address), caller)
    own = env.chain.deploy("AgentRegistry", env.chain.settings.unbonding_delay, sender=env.stranger)
    env.chain.send(own.functions.set_validation(env.validation.address), sender=env.stranger)
    env.reverts(
        "registry: validation contract already set",
        own.functions.set_validation(env.channels.address),
        env.stranger,
    )


def test_a_fresh_registry_refuses_an_account_as_its_validation_contract(env: DisputeEnv) -> None:
    registry = env.chain.deploy("AgentRegistry", env.chain.settings.unbonding_delay)
    env.reverts(
        "registry: validation is not a contract",
        registry.functions.set_validation(env.stranger.address),
        env.deployer,
    )


def test_the_agent_cannot_withdraw_stake_during_an_open_dispute(env: DisputeEnv) -> None:
    fns = env.registry.functions
    env.chain.send(fns.request_unstake(env.agent_id, AGENT_STAKE), sender=env.owner)
    env.chain.advance_time(env.chain.settings.unbonding_delay + 1)
    dispute_id, drawn = env.open_and_draw()
    env.reverts("registry: stake is held by an open dispute", fns.withdraw_stake(env.agent_id), env.owner)
    env.vote(dispute_id, drawn, [CONSISTENT, CONSISTENT, CONSISTENT])
    env.resolve(dispute_id)
    assert fns.holds(env.agent_id).call() == 0
    tx = env.chain.send(fns.withdraw_stake(env.agent_id), sender=env.owner)
    (changed,) = env.events(tx, "StakeChanged", env.registry)
    assert changed["stake"] == 0


def test_the_stake_is_held_from_opening_even_before_the_draw(env: DisputeEnv) -> None:
    fns = env.registry.functions
    env.chain.send(fns.request_unstake(env.agent_id, 1), sender=env.owner)
    env.chain.advance_time(env.chain.settings.unbonding_delay + 1)
    env.open()
    env.reverts("registry: stake is held by an open dispute", fns.withdraw_stake(env.agent_id), env.owner)


# -- the draw ------------------------------------------------------------------------------------------------


def test_the_draw_is_seeded_by_the_hash_of_the_block_the_dispute_was_opened_in(env: DisputeEnv) -> None:
    dispute_id, opened = env.open()
    tx = env.draw(dispute_id)
    (drawn,) = env.events(tx, "ValidatorsDrawn")
    block_hash = bytes(env.chain.w3.eth.get_block(opened["blockNumber"])["hash"])
    assert bytes(drawn["seed"]) == block_hash
    assert tx["blockNumber"] > opened["blockNumber"]
    excluded: set[str] = {env.owner.address, env.payout.address, env.challenger.address}
    assert list(drawn["validators"]) == expected_draw(env, dispute_id, block_hash, excluded)
    assert len(set(drawn["validators"])) == env.settings.validators_per_dispute
    assert drawn["commit_deadline"] == env.chain.timestamp() + COMMIT_WINDOW
    assert drawn["reveal_deadline"] == drawn["commit_deadline"] + REVEAL_WINDOW


def test_the_draw_changes_with_the_block_hash_alone(env: DisputeEnv) -> None:
    """The same dispute, opened in blocks that differ only by their timestamp, draws different validators."""
    receipt = env.receipt()
    draws = set()
    start = int(env.chain.w3.eth.get_block("pending")["timestamp"]) + 100
    for offset in range(8):
        snapshot = env.chain.snapshot()
        env.chain.set_next_timestamp(start + offset)
        _, drawn = env.open_and_draw(receipt)
        draws.add(tuple(v.address for v in drawn))
        env.chain.revert(snapshot)
    assert len(draws) > 1


def test_the_agent_cannot_pick_its_validators(env: DisputeEnv) -> None:
    """The agent's owner and payout, and the challenger, stake as validators of the model, far more than
    anyone: they are never drawn. A validator that is not drawn cannot commit."""
    big = 100 * 10**18
    for insider in (env.owner, env.payout, env.challenger):
        env.chain.send(
            env.validation.functions.register_validator([bytes.fromhex(MODEL)]), sender=insider, value=big
        )
    insiders = {env.owner.address, env.payout.address, env.challenger.address}
    for _ in range(4):
        dispute_id, drawn = env.open_and_draw()
        assert not insiders & {v.address for v in drawn}
        for outsider in [*(env.account(a) for a in insiders), env.stranger]:
            env.reverts(
                "validation: caller was not drawn for this dispute",
                env.validation.functions.commit(dispute_id, b"\x01" * 32),
                outsider,
            )


def test_drawing_in_the_block_of_the_dispute_or_twice_is_refused(env: DisputeEnv) -> None:
    dispute_id, _ = env.open()
    env.draw(dispute_id)
    env.reverts(
        "validation: dispute is not waiting for its draw",
        env.validation.functions.draw(dispute_id),
        env.stranger,
    )
    env.reverts(
        "validation: dispute is not waiting for its draw", env.validation.functions.draw(99), env.stranger
    )


def test_the_evidence_uri_is_logged_not_stored_and_the_draw_checks_it_against_its_hash(
    env: DisputeEnv,
) -> None:
    dispute_id, _ = env.open()
    dispute = env.validation.functions.disputes(dispute_id).call()
    assert bytes(dispute[16]) == keccak(EVIDENCE_URI.encode())
    env.reverts(
        "validation: not the dispute's evidence URI",
        env.validation.functions.draw(dispute_id, "data:,other"),
        env.stranger,
    )
    # Without the URI, anyone (the agent too) can still draw; the requests then carry no URI.
    tx = env.send(env.validation.functions.draw(dispute_id), env.payout)
    assert [r["requestUri"] for r in env.events(tx, "ValidationRequest")] == ["", "", ""]


def test_fewer_than_k_eligible_validators_cancels_and_refunds_the_bond(env: DisputeEnv) -> None:
    receipt = env.receipt()
    dispute_id, _ = env.open(receipt, model=OTHER_MODEL)  # two validators declare it; three are drawn
    tx = env.draw(dispute_id)
    (cancelled,) = env.events(tx, "DisputeCancelled")
    assert cancelled["reason"] == 1
    assert env.events(tx, "ValidatorsDrawn") == []
    assert env.validation.functions.disputes(dispute_id).call()[8] == 4  # cancelled
    assert env.credited(env.challenger) == env.settings.bond
    assert env.registry.functions.holds(env.agent_id).call() == 0
    assert env.validation.functions.record(env.agent_id).call() == [0, 0, 0]
    assert (
        env.validation.functions.disputed(receipt.digest()).call() == 0
    )  # the receipt can be disputed again
    before = env.chain.balance(env.challenger.address)
    tx = env.chain.send(env.validation.functions.withdraw(), sender=env.challenger)
    paid = int(tx["gasUsed"]) * int(tx["effectiveGasPrice"])
    assert env.chain.balance(env.challenger.address) == before + env.settings.bond - paid
    env.check_books()


def test_a_draw_more_than_256_blocks_late_cancels_and_refunds(env: DisputeEnv) -> None:
    dispute_id, _ = env.open()
    env.chain.w3.provider.ethereum_tester.mine_blocks(257)  # type: ignore[attr-defined]
    tx = env.draw(dispute_id)
    (cancelled,) = env.events(tx, "DisputeCancelled")
    assert cancelled["reason"] == 2
    assert env.credited(env.challenger) == env.settings.bond
    env.check_books()


# -- commit and reveal ---------------------------------------------------------------------------------------


def test_a_validator_cannot_commit_twice(env: DisputeEnv) -> None:
    dispute_id, drawn = env.open_and_draw()
    env.commit(dispute_id, drawn[0], CHEAT)
    env.reverts(
        "validation: already committed", env.validation.functions.commit(dispute_id, b"\x02" * 32), drawn[0]
    )


def test_a_validator_cannot_reveal_without_a_matching_commit(env: DisputeEnv) -> None:
    dispute_id, drawn = env.open_and_draw()
    salts = [env.commit(dispute_id, v, CHEAT) for v in drawn[:2]]
    reveal = env.validation.functions.reveal
    env.chain.advance_time(COMMIT_WINDOW)
    # Never committed.
    env.reverts("validation: no commitment to reveal", reveal(dispute_id, int(CHEAT), salts[0]), drawn[2])
    env.reverts("validation: no commitment to reveal", reveal(dispute_id, int(CHEAT), salts[0]), env.stranger)
    # Another verdict, another salt, or another validator's salt.
    mismatch = "validation: reveal does not match the commitment"
    env.reverts(mismatch, reveal(dispute_id, int(CONSISTENT), salts[0]), drawn[0])
    env.reverts(mismatch, reveal(dispute_id, int(CHEAT), b"\x00" * 32), drawn[0])
    env.reverts(mismatch, reveal(dispute_id, int(CHEAT), salts[1]), drawn[0])
    env.reverts("validation: verdict is not 1, 2 or 3", reveal(dispute_id, 4, salts[0]), drawn[0])
    env.reveal(dispute_id, drawn[0], int(CHEAT), salts[0])
    env.reverts("validation: already revealed", reveal(dispute_id, int(CHEAT), salts[0]), drawn[0])


def test_reveals_wait_for_every_commit_or_the_commit_deadline(env: DisputeEnv) -> None:
    dispute_id, drawn = env.open_and_draw()
    salts = [env.commit(dispute_id, v, CHEAT) for v in drawn[:2]]
    env.reverts(
        "validation: commit window still open",
        env.validation.functions.reveal(dispute_id, int(CHEAT), salts[0]),
        drawn[0],
    )
    salts.append(env.commit(dispute_id, drawn[2], CHEAT))
    env.reveal(dispute_id, drawn[0], int(CHEAT), salts[0])  # all committed: reveals open at once


def test_no_commit_after_the_commit_window_and_no_reveal_after_the_reveal_window(env: DisputeEnv) -> None:
    dispute_id, drawn = env.open_and_draw()
    salt = env.commit(dispute_id, drawn[0], CHEAT)
    env.chain.advance_time(COMMIT_WINDOW)
    env.reverts(
        "validation: commit window is over",
        env.validation.functions.commit(dispute_id, b"\x03" * 32),
        drawn[1],
    )
    env.chain.advance_time(REVEAL_WINDOW)
    env.reverts(
        "validation: reveal window is over",
        env.validation.functions.reveal(dispute_id, int(CHEAT), salt),
        drawn[0],
    )


def test_resolve_waits_for_the_reveal_deadline_or_every_reveal(env: DisputeEnv) -> None:
    dispute_id, drawn = env.open_and_draw()
    resolve = env.validation.functions.resolve(dispute_id)
    env.reverts("validation: reveal window still open", resolve, env.stranger)
    env.vote(dispute_id, drawn, [CHEAT, CHEAT, None])
    env.reverts("validation: reveal window still open", resolve, env.stranger)
    env.chain.advance_time(COMMIT_WINDOW + REVEAL_WINDOW)
    env.resolve(dispute_id)
    env.reverts("validation: dispute is not in its voting phase", resolve, env.stranger)


# -- settlement ----------------------------------------------------------------------------------------------


def test_a_confirmed_cheat_slashes_exactly_as_published_to_the_wei(env: DisputeEnv) -> None:
    settings = env.settings
    dispute_id, drawn = env.open_and_draw()
    minority = drawn[2]
    minority_stake = env.validator_stake(minority)
    sunk_before = env.validation.functions.sunk().call()
    env.vote(dispute_id, drawn, [CHEAT, CHEAT, CONSISTENT])
    tx = env.resolve(dispute_id)

    slashed = AGENT_STAKE * settings.slash_bps // BPS
    reward = slashed * settings.reward_bps // BPS
    penalty = minority_stake * settings.minority_bps // BPS
    assert slashed == 5 * 10**17 and reward == 10**17  # 50 % of 1 ETH, and 20 % of that
    assert env.stake() == AGENT_STAKE - slashed
    (slash,) = env.events(tx, "Slashed", env.registry)
    assert (slash["amount"], slash["stake_left"]) == (slashed, AGENT_STAKE - slashed)
    assert env.registry.functions.slash_count(env.agent_id).call() == 1
    assert env.registry.functions.slashed_total(env.agent_id).call() == slashed
    assert env.credited(env.challenger) == settings.bond + reward
    assert [env.credited(v) for v in drawn] == [settings.validator_fee, settings.validator_fee, 0]
    assert env.validator_stake(minority) == minority_stake - penalty
    sunk = slashed - reward - 2 * settings.validator_fee + penalty
    assert env.validation.functions.sunk().call() - sunk_before == sunk
    (resolved,) = env.events(tx, "DisputeResolved")
    assert (resolved["outcome"], resolved["cheat_votes"], resolved["slashed"]) == (2, 2, slashed)
    assert (resolved["challenger_paid"], resolved["fees"], resolved["sunk"]) == (
        settings.bond + reward,
        2 * settings.validator_fee,
        sunk,
    )
    assert env.validation.functions.record(env.agent_id).call() == [1, 1, 0]
    assert env.registry.functions.holds(env.agent_id).call() == 0
    env.check_books()

    # Pull payments: the challenger withdraws exactly its credit; the sink is never paid out.
    before = env.chain.balance(env.challenger.address)
    tx = env.chain.send(env.validation.functions.withdraw(), sender=env.challenger)
    gas = int(tx["gasUsed"]) * int(tx["effectiveGasPrice"])
    assert env.chain.balance(env.challenger.address) == before + settings.bond + reward - gas
    env.reverts("validation: nothing to withdraw", env.validation.functions.withdraw(), env.challenger)
    env.check_books()


def test_a_griefing_challenger_disputing_an_honest_answer_loses_its_bond(env: DisputeEnv) -> None:
    settings = env.settings
    dispute_id, drawn = env.open_and_draw()
    before = env.chain.balance(env.challenger.address)
    env.vote(dispute_id, drawn, [CONSISTENT, CONSISTENT, INCONCLUSIVE])
    tx = env.resolve(dispute_id)
    (resolved,) = env.events(tx, "DisputeResolved")
    assert (resolved["outcome"], resolved["slashed"], resolved["challenger_paid"]) == (1, 0, 0)
    assert env.credited(env.challenger) == 0
    assert env.chain.balance(env.challenger.address) == before  # nothing comes back, ever
    assert env.stake() == AGENT_STAKE
    assert env.registry.functions.slash_count(env.agent_id).call() == 0
    # The bond pays the two matching validators; INCONCLUSIVE is neither paid nor penalized; the rest is sunk.
    assert [env.credited(v) for v in drawn] == [settings.validator_fee, settings.validator_fee, 0]
    assert resolved["sunk"] == settings.bond - 2 * settings.validator_fee
    assert env.validation.functions.record(env.agent_id).call() == [1, 0, 1]
    env.check_books()


def test_a_lone_cheat_vote_is_a_minority_and_pays_for_it(env: DisputeEnv) -> None:
    dispute_id, drawn = env.open_and_draw()
    stake = env.validator_stake(drawn[0])
    env.vote(dispute_id, drawn, [CHEAT, CONSISTENT, INCONCLUSIVE])
    (resolved,) = env.events(env.resolve(dispute_id), "DisputeResolved")
    assert resolved["outcome"] == int(CONSISTENT)
    assert env.validator_stake(drawn[0]) == stake - stake * env.settings.minority_bps // BPS
    assert env.stake() == AGENT_STAKE


def test_validators_that_do_not_reveal_lose_their_published_share(env: DisputeEnv) -> None:
    settings = env.settings
    dispute_id, drawn = env.open_and_draw()
    stakes = [env.validator_stake(v) for v in drawn]
    salts = [env.commit(dispute_id, v, CHEAT) for v in drawn[:2]]  # the third never commits
    env.chain.advance_time(COMMIT_WINDOW)  # not all committed: reveals open at the commit deadline
    for validator, salt in zip(drawn[:2], salts, strict=True):
        env.reveal(dispute_id, validator, int(CHEAT), salt)
    env.chain.advance_time(REVEAL_WINDOW)
    tx = env.resolve(dispute_id)
    (penalized,) = env.events(tx, "ValidatorPenalized")
    lost = stakes[2] * settings.no_reveal_bps // BPS
    assert (penalized["validator"], penalized["amount"]) == (drawn[2].address, lost)
    assert env.validator_stake(drawn[2]) == stakes[2] - lost
    assert [env.validator_stake(v) for v in drawn[:2]] == stakes[:2]
    assert env.stake() == AGENT_STAKE // 2  # two of three is a majority
    env.check_books()


def test_a_committed_but_unrevealed_verdict_counts_as_no_reveal(env: DisputeEnv) -> None:
    dispute_id, drawn = env.open_and_draw()
    stakes = [env.validator_stake(v) for v in drawn]
    env.vote(dispute_id, drawn, [CHEAT, None, None])  # two commit and stay silent
    env.chain.advance_time(COMMIT_WINDOW + REVEAL_WINDOW)
    (resolved,) = env.events(env.resolve(dispute_id), "DisputeResolved")
    assert resolved["outcome"] == int(CONSISTENT)  # one cheat vote of three is no majority
    bps = env.settings.no_reveal_bps
    assert [env.validator_stake(v) for v in drawn] == [
        stakes[0] - stakes[0] * env.settings.minority_bps // BPS,
        stakes[1] - stakes[1] * bps // BPS,
        stakes[2] - stakes[2] * bps // BPS,
    ]


# -- validators ----------------------------------------------------------------------------------------------


def test_validator_registration_rules(env: DisputeEnv) -> None:
    register = env.validation.functions.register_validator
    model = [bytes.fromhex(MODEL)]
    env.reverts("validation: stake below the minimum", register(model), env.stranger, value=10**15 - 1)
    env.reverts("validation: no models", register([]), env.stranger, value=10**15)
    env.reverts("validation: empty model", register([bytes(32)]), env.stranger, value=10**15)
    env.chain.send(register(model), sender=env.stranger, value=10**15)
    env.chain.send(register([bytes.fromhex(OTHER_MODEL)]), sender=env.stranger, value=1)  # top up, new models
    assert env.validator_stake(env.stranger) == 10**15 + 1
    assert [bytes(m) for m in env.validation.functions.models(env.stranger.address).call()] == [
        bytes.fromhex(OTHER_MODEL)
    ]
    env.check_books()


def test_a_drawn_validator_cannot_leave_before_its_dispute_is_resolved(env: DisputeEnv) -> None:
    fns = env.validation.functions
    dispute_id, drawn = env.open_and_draw()
    leaver = drawn[0]
    env.chain.send(fns.request_leave(), sender=leaver)
    assert leaver.address not in fns.validator_list().call()
    env.reverts("validation: validator is leaving", fns.request_leave(), leaver)
    env.reverts("validation: validator cannot leave yet", fns.leave(), leaver)
    env.chain.advance_time(COMMIT_WINDOW + REVEAL_WINDOW + 1)
    env.reverts("validation: validator is drawn for an unresolved dispute", fns.leave(), leaver)
    env.resolve(dispute_id)  # nobody revealed: the leaver loses its no-reveal share too
    stake = env.validator_stake(leaver)
    tx = env.chain.send(fns.leave(), sender=leaver)
    assert env.events(tx, "ValidatorLeft")[0]["stake"] == stake
    assert env.credited(leaver) == stake
    assert env.validator_stake(leaver) == 0
    env.check_books()
    # A leaving validator is never drawn again.
    for _ in range(3):
        _, again = env.open_and_draw()
        assert leaver not in again


# -- ERC-8004 records ----------------------------------------------------------------------------------------


def test_requests_and_responses_are_recorded_in_the_erc8004_shape(env: DisputeEnv) -> None:
    fns = env.validation.functions
    dispute_id, _ = env.open()
    tx = env.draw(dispute_id)
    requests = env.events(tx, "ValidationRequest")
    drawn = [env.account(v) for v in fns.drawn(dispute_id).call()]
    assert [r["validatorAddress"] for r in requests] == [v.address for v in drawn]
    for request, validator in zip(requests, drawn, strict=True):
        assert request["agentId"] == env.agent_id and request["requestUri"] == EVIDENCE_URI
        expected = keccak(
            abi_encode(
                ["address", "uint256", "address"], [env.validation.address, dispute_id, validator.address]
            )
        )
        assert (
            bytes(request["requestHash"])
            == expected
            == bytes(fns.validation_request_hash(dispute_id, validator.address).call())
        )
    salts = [
        env.commit(dispute_id, v, verdict)
        for v, verdict in zip(drawn, [CHEAT, CHEAT, INCONCLUSIVE], strict=True)
    ]
    responses = [
        env.events(env.reveal(dispute_id, v, int(verdict), salt), "ValidationResponse")[0]
        for v, verdict, salt in zip(drawn, [CHEAT, CHEAT, INCONCLUSIVE], salts, strict=True)
    ]
    assert [r["response"] for r in responses] == [0, 0, 50]
    assert bytes(responses[0]["tag"]).rstrip(b"\0") == b"cheat"
    assert bytes(responses[0]["responseHash"]) == env.commitment(dispute_id, 2, salts[0], drawn[0].address)
    validator, agent, response, _, tag, updated = fns.getValidationStatus(requests[2]["requestHash"]).call()
    assert (validator, agent, response) == (drawn[2].address, env.agent_id, 50)
    assert bytes(tag).rstrip(b"\0") == b"inconclusive" and updated == env.chain.timestamp()
    assert fns.getSummary(env.agent_id, [], bytes(32)).call() == [3, 16]  # (0 + 0 + 50) // 3
    assert fns.getSummary(env.agent_id, [drawn[2].address], bytes(32)).call() == [1, 50]
    assert fns.getSummary(env.agent_id, [], b"cheat".ljust(32, b"\0")).call() == [2, 0]
    assert fns.getSummary(env.agent_id + 1, [], bytes(32)).call() == [0, 0]


# -- deployment ----------------------------------------------------------------------------------------------


def test_the_deployed_immutables_are_the_published_settings(env: DisputeEnv) -> None:
    fns = env.validation.functions
    settings = env.settings
    assert fns.REGISTRY().call() == env.registry.address
    assert fns.CHANNELS().call() == env.channels.address
    for name in (
        "bond",
        "slash_bps",
        "reward_bps",
        "validator_fee",
        "validators_per_dispute",
        "no_reveal_bps",
        "minority_bps",
        "min_validator_stake",
        "commit_window",
        "reveal_window",
    ):
        assert fns[name.upper()]().call() == getattr(settings, name), name
    assert (DisputeSettings().bond, DisputeSettings().validator_fee) == (10**15, 10**14)


def test_chain_use_refuses_a_validation_contract_with_other_settings(env: DisputeEnv) -> None:
    other = env.chain.deploy(
        "Validation",
        env.registry.address,
        env.channels.address,
        1,
        5000,
        2000,
        10**14,
        3,
        1000,
        500,
        10**15,
        COMMIT_WINDOW,
        REVEAL_WINDOW,
    )
    with pytest.raises(ChainError, match="BOND is 1, but motet's is 1000000000000000"):
        env.chain.use("Validation", other.address)
    fresh = Chain.embedded(settings=env.chain.settings)
    assert fresh.contract("Validation").functions.BOND().call() == 10**15
    fresh._contracts.pop("Validation")  # a second client finds the slasher the registry names
    assert (
        fresh.contract("Validation").address == fresh.contract("AgentRegistry").functions.validation().call()
    )


def test_a_registry_whose_unbonding_does_not_outlast_the_windows_is_refused(env: DisputeEnv) -> None:
    short = env.chain.deploy("AgentRegistry", COMMIT_WINDOW + REVEAL_WINDOW)
    with pytest.raises(ChainError, match="unbonding delay does not outlast the windows"):
        env.chain.deploy(
            "Validation",
            short.address,
            env.channels.address,
            *(10**15, 5000, 2000, 10**14, 3, 1000, 500, 10**15, COMMIT_WINDOW, REVEAL_WINDOW),
        )
    with pytest.raises(ValueError, match="must outlast a dispute's commit and reveal windows"):
        Settings(unbonding_delay=1200)
    Settings(unbonding_delay=1201)


def test_the_registry_index_and_search_see_slashes(env: DisputeEnv, tmp_path: Path) -> None:
    registry = Registry(env.chain, index_path=tmp_path / "index.sqlite")
    (before,) = registry.search("text.summarize", max_slashes=0)
    assert (before.slashes, before.slashed) == (0, 0)
    dispute_id, drawn = env.open_and_draw()
    env.vote(dispute_id, drawn, [CHEAT, CHEAT, CHEAT])
    env.resolve(dispute_id)

    slashed = AGENT_STAKE * env.settings.slash_bps // BPS
    assert registry.search("text.summarize", max_slashes=0) == []  # a cheater drops out of a clean search
    (after,) = registry.search("text.summarize")
    assert (after.slashes, after.slashed, after.stake) == (1, slashed, AGENT_STAKE - slashed)
    assert registry.get(env.agent_id) == after  # the index agrees with the contract
    with pytest.raises(InvalidRegistryArgument):
        registry.search("text.summarize", max_slashes=-1)
