"""`trust_facts`: an agent's stake, slashes, validation record and reputation, read back from the contracts
after real disputes (decided by three validators' commit and reveal) and real paid feedback; and
`trust_facts_many`, which reads the same for many agents in a few batched calls."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest
from eth_account.signers.local import LocalAccount
from support.reputation import World, fields, send_fast

from motet.chain import NATIVE_ASSET
from motet.payments import Receipt
from motet.trust import Disputes, Reputation, TrustFacts, Verdict, _facts, trust_facts
from motet.trust._disputes import commitment
from motet.trust._facts import trust_facts_many

MODEL = "ab" * 32
"""The GGUF sha256 the disputes name and the validators declare (nothing is re-run here)."""
STAKE = 2 * 10**15
"""Agent A's stake (`build_world`)."""


def dispute(world: World, receipt: Receipt) -> int:
    """The payer disputes `receipt` and draws its validators (straight to the contract); returns its id."""
    chain = world.chain
    validation = chain.contract("Validation")
    call = validation.functions.open_dispute(
        world.agent, fields(receipt), receipt.signature, bytes.fromhex(MODEL), "data:,evidence"
    )
    send_fast(chain, call, world.payer, value=chain.settings.disputes.bond)
    dispute_id = int(validation.functions.dispute_count().call())
    send_fast(chain, validation.functions.draw(dispute_id), world.payer, gas=3_000_000)
    assert len(Disputes(chain, world.payer).state(dispute_id).validators) == 3
    return dispute_id


def decide(world: World, dispute_id: int, verdict: Verdict) -> None:
    """Every drawn validator commits and reveals `verdict` (straight to the contract, without gas estimates);
    then the dispute is resolved."""
    chain = world.chain
    validation = chain.contract("Validation")
    drawn = Disputes(chain, world.payer).state(dispute_id).validators
    validators: dict[str, LocalAccount] = {account.address: account for account in chain.accounts[7:10]}
    salts = {address: secrets.token_bytes(32) for address in drawn}
    for address in drawn:
        hidden = commitment(dispute_id, verdict, salts[address], address)
        send_fast(chain, validation.functions.commit(dispute_id, hidden), validators[address])
    for address in drawn:
        send_fast(
            chain, validation.functions.reveal(dispute_id, int(verdict), salts[address]), validators[address]
        )
    send_fast(chain, validation.functions.resolve(dispute_id), world.payer, gas=3_000_000)


def test_facts_of_an_unrated_undisputed_agent(world: World) -> None:
    world.registry.request_unstake(world.agent, 5 * 10**14)
    facts = trust_facts(world.chain, world.agent)
    assert facts == TrustFacts(agent_id=world.agent, stake=STAKE - 5 * 10**14)
    assert facts.summary() == "stake 0.0015 ETH · no disputes · not rated"
    assert trust_facts(world.chain, world.agent_b).summary() == "no stake · no disputes · not rated"
    assert trust_facts(world.chain, 99) == TrustFacts(agent_id=99)
    assert trust_facts_many(world.chain, [99, world.agent_b, world.agent, world.agent]) == {
        agent_id: trust_facts(world.chain, agent_id) for agent_id in (world.agent, world.agent_b, 99)
    }


@pytest.mark.slow
def test_facts_read_slashes_disputes_and_paid_feedback_from_the_chain(world: World) -> None:
    chain = world.chain
    for validator in chain.accounts[7:10]:
        Disputes(chain, validator).register_validator([MODEL], chain.settings.disputes.min_validator_stake)
    paid = world.open(world.payer, paid=3_000)
    receipts = [world.receipt(paid.channel_id, seq, 1_000) for seq in (1, 2, 3)]
    cheat, honest, pending = (dispute(world, r) for r in receipts)
    decide(world, cheat, Verdict.CHEAT)
    decide(world, honest, Verdict.CONSISTENT)
    # Feedback from the payer (its disputed calls can still be rated) and from a second payer.
    Reputation(chain, world.payer).give(world.agent, receipts[0], 10)
    other = world.open(world.payer2, paid=1_000)
    Reputation(chain, world.payer2).give(world.agent, world.receipt(other.channel_id, 1, 1_000), 90)

    slashed = STAKE * chain.settings.disputes.slash_bps // 10_000
    facts = trust_facts(chain, world.agent)
    assert facts == TrustFacts(
        agent_id=world.agent,
        stake=STAKE - slashed,
        slashes=1,
        slashed_total=slashed,
        disputes=3,
        disputes_won=1,
        disputes_lost=1,
        feedback_count=2,
        feedback_weight=2_000,
        feedback_score=(10 * 1_000 + 90 * 1_000) / 2_000,
        asset=NATIVE_ASSET,
    )
    assert facts.disputes_open == 1 and facts.rated
    assert (
        facts.summary()
        == "stake 0.001 ETH · 1 slash · 1 dispute won, 1 dispute lost, 1 open · ★ 50 from 2,000 wei paid"
    )
    assert pending  # still open: counted in `disputes`, neither won nor lost
    # The batched read gives the same facts, for this agent and the others, at the latest block or an earlier one.
    ids = [world.agent, world.agent_b, 99]
    assert trust_facts_many(chain, ids) == {agent_id: trust_facts(chain, agent_id) for agent_id in ids}
    before = chain.w3.eth.block_number - 1  # before the second feedback
    assert trust_facts_many(chain, ids, block=before)[world.agent] == replace(
        facts, feedback_count=1, feedback_weight=1_000, feedback_score=10.0
    )


def test_many_agents_are_read_in_batches_and_one_by_one_when_a_batch_fails(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    chain = world.chain
    world.registry.request_unstake(world.agent, 5 * 10**14)
    ids = [world.agent, world.agent_b, 99, 100, 0]
    expected = {agent_id: trust_facts(chain, agent_id) for agent_id in ids}
    monkeypatch.setattr(_facts, "BATCH", 2)  # three batches
    calls = 0
    build = _facts._batch_code

    def counted(targets: list[str], agent_ids: list[int]) -> bytes:
        nonlocal calls
        calls += 1
        return build(targets, agent_ids)

    monkeypatch.setattr(_facts, "_batch_code", counted)
    assert trust_facts_many(chain, ids) == expected
    assert calls == 3
    assert trust_facts_many(chain, []) == {}
    # Code that reverts (INVALID): each agent is then read alone, with the same result.
    monkeypatch.setattr(_facts, "_batch_code", lambda targets, agent_ids: b"\xfe")
    with caplog.at_level("INFO", logger="motet.trust._facts"):
        assert trust_facts_many(chain, ids) == expected
    assert "reading them one by one" in caplog.text


def test_summary_lines() -> None:
    facts = TrustFacts(
        agent_id=1,
        stake=2 * 10**15,
        slashes=1,
        slashed_total=10**15,
        disputes=3,
        disputes_won=3,
        feedback_count=4,
        feedback_weight=4 * 10**15,
        feedback_score=87.4,
    )
    assert facts.summary() == "stake 0.002 ETH · 1 slash · 3 disputes won · ★ 87 from 0.004 ETH paid"
    assert (
        replace(facts, slashes=2, disputes_won=1, disputes_lost=2)
        .summary()
        .startswith("stake 0.002 ETH · 2 slashes · 1 dispute won, 2 disputes lost ·")
    )
    token = "0x" + "12" * 20
    assert (
        replace(facts, asset=token, feedback_weight=5)
        .summary()
        .endswith("★ 87 from 5 units of 0x12121212… paid")
    )
