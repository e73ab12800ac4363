"""`Disputes`, the Python client of the Validation contract, on the embedded chain with receipts signed by
`ReceiptSigner`: a whole dispute through the client, what each role sees, and the errors it raises.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
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

from motet.errors import DisputeError
from motet.payments import ReceiptDomain, ReceiptSigner
from motet.trust import Disputes, DisputeState, ValidationRecord, Verdict

CHEAT, CONSISTENT = Verdict.CHEAT, Verdict.CONSISTENT


@pytest.fixture(scope="module")
def _deployed(tmp_path_factory: pytest.TempPathFactory) -> DisputeEnv:
    return build(tmp_path_factory.mktemp("disputes-client-home"))


@pytest.fixture
def env(_deployed: DisputeEnv) -> Iterator[DisputeEnv]:
    snapshot = _deployed.chain.snapshot()
    yield _deployed
    _deployed.chain.revert(snapshot)


@pytest.mark.slow
def test_a_cheat_goes_from_open_to_slash_through_the_client(env: DisputeEnv) -> None:
    challenger = Disputes(env.chain, env.challenger)
    receipt = env.receipt()
    dispute_id = challenger.open(env.agent_id, receipt, MODEL, EVIDENCE_URI)

    state = challenger.state(dispute_id)
    assert (state.status, state.agent_id, state.challenger, state.model) == (
        "voting",
        env.agent_id,
        env.challenger.address,
        MODEL,
    )
    assert (state.request_hash, state.response_hash, state.receipt_digest) == (
        receipt.request_hash,
        receipt.response_hash,
        receipt.digest(),
    )
    assert state.evidence_uri == EVIDENCE_URI and state.bond == env.settings.bond
    assert len(state.validators) == 3 and state.committed == () and dict(state.revealed) == {}
    now = env.chain.timestamp()
    assert (
        state.commit_deadline == now + COMMIT_WINDOW
        and state.reveal_deadline == now + COMMIT_WINDOW + REVEAL_WINDOW
    )
    assert state.commit_open(now) and not state.reveal_open(now) and not state.resolvable(now)
    assert challenger.record(env.agent_id) == ValidationRecord(env.agent_id, 1, 0, 0)

    clients = [Disputes(env.chain, env.account(v)) for v in state.validators]
    salts = [secrets.token_bytes(32) for _ in clients]
    for client, salt in zip(clients, salts, strict=True):
        assert client.assigned(client.account.address) == [dispute_id]
        client.commit(dispute_id, CHEAT, salt)
    state = challenger.state(dispute_id)
    assert state.committed == state.validators
    assert state.reveal_open(env.chain.timestamp())  # every drawn validator committed
    for client, salt in zip(clients, salts, strict=True):
        client.reveal(dispute_id, CHEAT, salt)
    assert challenger.state(dispute_id).resolvable(env.chain.timestamp())  # every drawn validator revealed

    final = challenger.resolve(dispute_id)
    slashed = AGENT_STAKE * env.settings.slash_bps // 10_000
    assert final.resolved and final.cheat and final.outcome is CHEAT
    assert (final.slashed, final.cheat_votes) == (slashed, 3)
    assert final.revealed == dict.fromkeys(final.validators, CHEAT)
    assert (
        final.summary()
        == f"dispute #{dispute_id} against agent #{env.agent_id}: a cheat, 3 of 3 validators said so; 0.5000 ETH slashed"
    )
    assert challenger.record(env.agent_id) == ValidationRecord(env.agent_id, 1, 1, 0)
    reward = slashed * env.settings.reward_bps // 10_000
    assert challenger.balance(env.challenger.address) == env.settings.bond + reward
    assert challenger.withdraw() == env.settings.bond + reward
    assert challenger.balance(env.challenger.address) == 0 and challenger.withdraw() == 0
    for client in clients:
        assert client.assigned(client.account.address) == []
        assert client.withdraw() == env.settings.validator_fee


def test_an_honest_answer_disputed_is_rejected_and_the_bond_lost(env: DisputeEnv) -> None:
    challenger = Disputes(env.chain, env.challenger)
    dispute_id, drawn = env.open_and_draw()
    env.vote(dispute_id, drawn, [CONSISTENT, CONSISTENT, CONSISTENT])
    final = Disputes(env.chain, env.stranger).resolve(dispute_id)
    assert final.outcome is CONSISTENT and not final.cheat and final.slashed == 0
    assert final.summary().endswith("not a cheat (0 of 3 validators said cheat); the bond is forfeited")
    assert challenger.balance(env.challenger.address) == 0
    assert challenger.record(env.agent_id) == ValidationRecord(env.agent_id, 1, 0, 1)
    assert challenger.record(env.agent_id).open == 0


def test_assigned_lists_only_the_unresolved_disputes_a_validator_was_drawn_for(env: DisputeEnv) -> None:
    watcher = Disputes(env.chain, env.stranger)
    drawn = {d: [v.address for v in validators] for d, validators in (env.open_and_draw() for _ in range(3))}
    opened = sorted(drawn)
    for validator in env.validators:
        expected = [d for d in opened if validator.address in drawn[d]]
        assert watcher.assigned(validator.address) == expected
    assert watcher.assigned(env.stranger.address) == []
    env.chain.advance_time(COMMIT_WINDOW + REVEAL_WINDOW)
    watcher.resolve(opened[0])
    for validator in env.validators:
        assert opened[0] not in watcher.assigned(validator.address)


def test_too_few_validators_for_the_model_cancels_and_refunds_the_bond_at_once(env: DisputeEnv) -> None:
    challenger = Disputes(env.chain, env.challenger)
    before = env.chain.balance(env.challenger.address)
    first = env.chain.w3.eth.block_number + 1
    with pytest.raises(
        DisputeError, match=r"dispute #1 was cancelled at the draw: fewer than 3 eligible validators"
    ):
        challenger.open(env.agent_id, env.receipt(), OTHER_MODEL, EVIDENCE_URI)
    state = challenger.state(1)
    assert state.status == "cancelled" and state.validators == ()
    assert "cancelled at the draw" in state.summary()
    assert challenger.balance(env.challenger.address) == 0
    gas = 0
    for number in range(first, env.chain.w3.eth.block_number + 1):  # open, draw and withdraw
        for tx_hash in env.chain.w3.eth.get_block(number)["transactions"]:
            tx = env.chain.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            assert tx["from"] == env.challenger.address
            gas += int(tx["gasUsed"]) * int(tx["effectiveGasPrice"])
    assert env.chain.balance(env.challenger.address) == before - gas  # the bond came back
    assert challenger.record(env.agent_id) == ValidationRecord(env.agent_id, 0, 0, 0)


def test_refusals_raise_dispute_error_with_the_contracts_reason(env: DisputeEnv) -> None:
    challenger = Disputes(env.chain, env.challenger)
    forged = env.receipt(signer=ReceiptSigner(env.stranger.key, env.signer.domain))
    with pytest.raises(
        DisputeError, match=r"refused \(validation: receipt not signed by the agent's payout\)"
    ):
        challenger.open(env.agent_id, forged, MODEL, EVIDENCE_URI)
    receipt = env.receipt()
    dispute_id = challenger.open(env.agent_id, receipt, MODEL, EVIDENCE_URI)
    with pytest.raises(DisputeError, match="receipt already disputed"):
        challenger.open(env.agent_id, receipt, MODEL, EVIDENCE_URI)
    with pytest.raises(DisputeError, match="the bond is not exactly BOND"):
        challenger.open(env.agent_id, env.receipt(), MODEL, EVIDENCE_URI, bond=1)
    with pytest.raises(DisputeError, match="caller was not drawn for this dispute"):
        challenger.commit(dispute_id, CHEAT, bytes(32))
    validator = Disputes(env.chain, env.account(challenger.state(dispute_id).validators[0]))
    validator.commit(dispute_id, CHEAT, bytes(32))
    with pytest.raises(DisputeError, match="already committed"):
        validator.commit(dispute_id, CHEAT, bytes(32))
    env.chain.advance_time(COMMIT_WINDOW)
    with pytest.raises(DisputeError, match="reveal does not match the commitment"):
        validator.reveal(dispute_id, CONSISTENT, bytes(32))
    with pytest.raises(DisputeError, match="no dispute #9 on the validation contract"):
        challenger.state(9)


def test_a_receipt_of_another_chain_or_channels_contract_is_refused_before_sending(env: DisputeEnv) -> None:
    challenger = Disputes(env.chain, env.challenger)
    elsewhere = ReceiptSigner(env.payout.key, ReceiptDomain(env.chain.chain_id, "0x" + "11" * 20))
    nonce = env.chain.w3.eth.get_transaction_count(env.challenger.address)
    with pytest.raises(DisputeError, match="dispute it on its own chain"):
        challenger.open(env.agent_id, env.receipt(signer=elsewhere), MODEL, EVIDENCE_URI)
    assert env.chain.w3.eth.get_transaction_count(env.challenger.address) == nonce


def test_malformed_models_and_salts_are_value_errors(env: DisputeEnv) -> None:
    client = Disputes(env.chain, env.stranger)
    for models in (["xyz"], ["ab" * 31], []):
        with pytest.raises(ValueError, match="GGUF sha256"):
            client.register_validator(models, 10**15)
    with pytest.raises(ValueError, match="list of GGUF sha256"):
        client.register_validator(MODEL, 10**15)
    with pytest.raises(ValueError, match="32 secret random bytes"):
        client.commit(1, CHEAT, b"short")


def test_a_validator_registers_leaves_and_withdraws_its_stake(env: DisputeEnv) -> None:
    client = Disputes(env.chain, env.stranger)
    client.register_validator(["0x" + MODEL.upper()], stake=2 * 10**15)
    assert client.validator_stake(env.stranger.address) == 2 * 10**15
    with pytest.raises(DisputeError, match="stake below the minimum"):
        Disputes(env.chain, env.challenger).register_validator([MODEL], stake=1)
    leaving_at = client.request_leave()
    assert leaving_at == env.chain.timestamp() + COMMIT_WINDOW + REVEAL_WINDOW
    with pytest.raises(DisputeError, match="validator cannot leave yet"):
        client.leave()
    env.chain.advance_time(COMMIT_WINDOW + REVEAL_WINDOW)
    assert client.leave() == 2 * 10**15
    assert client.validator_stake(env.stranger.address) == 0
    assert client.withdraw() == 2 * 10**15


def test_dispute_state_phases_follow_the_deadlines() -> None:
    drawn = ("0xa", "0xb", "0xc")
    state = DisputeState(
        1, 2, "0xd", MODEL, bytes(32), bytes(32), bytes(32), 1, 5, "voting", 100, 200, drawn, drawn[:2]
    )
    assert state.commit_open(99) and not state.commit_open(100)
    assert not state.reveal_open(99) and state.reveal_open(100) and not state.reveal_open(200)
    assert not state.resolvable(199) and state.resolvable(200)
    everyone = DisputeState(
        1, 2, "0xd", MODEL, bytes(32), bytes(32), bytes(32), 1, 5, "voting", 100, 200, drawn, drawn,
        revealed=dict.fromkeys(drawn, CONSISTENT),
    )  # fmt: skip
    assert everyone.reveal_open(50) and everyone.resolvable(50)
    assert everyone.summary() == "dispute #1 against agent #2: 3 of 3 committed, 3 revealed"
    waiting = DisputeState(1, 2, "0xd", MODEL, bytes(32), bytes(32), bytes(32), 1, 5, "drawing", 0, 0, (), ())
    assert not waiting.commit_open(0) and not waiting.resolvable(10**9) and not waiting.resolved
