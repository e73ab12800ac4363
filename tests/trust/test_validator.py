"""`Validator`: staked accounts that re-run the disputes they are drawn for and commit, reveal and resolve on
their own, on the embedded chain with the real SmolLM2 model.

The disputes here are opened over receipts the agent's own key signs (the validation contract checks exactly
that), with evidence built by hand: a made-up answer the model would never give (a cheat), evidence that
cannot be read, and evidence of another receipt than the disputed one (both inconclusive). The full path
from a served agent through sampling to the slash is tests/trust/test_end_to_end.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from motet.agents import VerifiableProfile, profile_hash, response_hash
from motet.agents.builtins import Summary
from motet.chain import Chain
from motet.errors import CheckUnavailable
from motet.payments import ReceiptDomain, ReceiptSigner, request_hash
from motet.registry import Registry
from motet.runtimes import LlamaCppRuntime
from motet.settings import DisputeSettings, Settings
from motet.trust import Checker, Disputes, DisputeState, Evidence, Validator, ValidatorEvent, Verdict

AGENT_STAKE = 10**17
PRICE = 10**12
INSTRUCTIONS = "Summarise the user's text in one short sentence. Answer in JSON."
DOCUMENT = (
    "The city opened a new public library downtown on Monday. Visitors praised the bright reading rooms."
)
MADE_UP = '{"summary": "Bananas are purple and the moon is made of cheese."}'


@dataclass
class World:
    chain: Chain
    agent_id: int
    agent: LocalAccount
    challenger: LocalAccount
    validators: list[Validator]
    profile: VerifiableProfile
    domain: ReceiptDomain
    tmp: Path

    def evidence(self, text: str, *, seq: int = 1, channel: int = 7) -> Evidence:
        """The evidence of one call answered with `text`, under a receipt the agent's key signed."""
        input: dict[str, Any] = {"text": DOCUMENT}
        output = json.loads(text)
        receipt = ReceiptSigner(bytes(self.agent.key), self.domain).sign(
            request_hash("summarize", input, channel, seq),
            response_hash(output, text),
            PRICE,
            channel,
            seq,
            profile_hash(self.profile),
        )
        return Evidence(self.agent_id, "summarize", input, output, text, self.profile, receipt)

    def open(self, evidence: Evidence, uri: str | None = None) -> int:
        disputes = Disputes(self.chain, self.challenger)
        return disputes.open(self.agent_id, evidence.receipt, evidence.model_sha256, uri or evidence.to_uri())

    def state(self, dispute: int) -> DisputeState:
        return Disputes(self.chain, self.challenger).state(dispute)

    def stake(self) -> int:
        return int(Registry(self.chain).contract.functions.agents(self.agent_id).call()[3])


@dataclass
class Registered:
    """One chain with the agent and three validators registered, shared by the module's tests."""

    chain: Chain
    agent_id: int
    snapshot: Any


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory, smollm2: LlamaCppRuntime) -> Registered:
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, disputes=DisputeSettings(commit_window=300, reveal_window=300))
    chain = Chain.embedded(settings=settings)
    agent_id = Registry(chain).register(
        "data:application/json,{}", ["summarize"], PRICE, stake=AGENT_STAKE, owner=chain.accounts[1]
    )
    for index in (3, 4, 5):
        Disputes(chain, chain.accounts[index]).register_validator(
            [smollm2.model_sha256()], settings.disputes.min_validator_stake
        )
    return Registered(chain, agent_id, chain.snapshot())


@pytest.fixture
async def world(tmp_path: Path, registered: Registered, smollm2: LlamaCppRuntime) -> World:
    chain = registered.chain
    chain.revert(registered.snapshot)  # each test starts from the same chain, and leaves it to the next
    registered.snapshot = chain.snapshot()
    agent, challenger = chain.accounts[1], chain.accounts[2]
    ref = await smollm2.load()
    checker = Checker([smollm2])
    validators = [
        Validator(chain, chain.accounts[index], checker, state_dir=tmp_path / f"validator-{index}")
        for index in (3, 4, 5)
    ]
    agent_id = registered.agent_id
    profile = VerifiableProfile.bind(
        ref,
        instructions=INSTRUCTIONS,
        template="{text}",
        output_schema=Summary.model_json_schema(),
        max_tokens=64,
    )
    domain = ReceiptDomain(chain.chain_id, chain.contract("PaymentChannels").address)
    return World(chain, agent_id, agent, challenger, validators, profile, domain, tmp_path)


async def poll_all(world: World) -> None:
    for validator in world.validators:
        await validator.poll()


def steps(validator: Validator, dispute: int) -> list[str]:
    return [e.step for e in validator.events if e.dispute == dispute]


@pytest.mark.slow
async def test_a_made_up_answer_is_found_a_cheat_by_all_three_and_slashed_as_published(world: World) -> None:
    chain, d = world.chain, world.chain.settings.disputes
    dispute = world.open(world.evidence(MADE_UP))
    assert set(world.state(dispute).validators) == {v.address for v in world.validators}

    await poll_all(world)  # each checks and commits; the last to commit finds the reveal open and reveals
    await poll_all(world)  # the rest reveal; the last to reveal resolves
    state = world.state(dispute)
    assert state.resolved and state.outcome == Verdict.CHEAT
    assert state.revealed == {v.address: Verdict.CHEAT for v in world.validators}
    slashed = AGENT_STAKE * d.slash_bps // 10_000
    assert state.slashed == slashed
    assert world.stake() == AGENT_STAKE - slashed
    disputes = Disputes(chain, world.challenger)
    assert disputes.balance(world.challenger.address) == d.bond + slashed * d.reward_bps // 10_000
    for validator in world.validators:
        assert disputes.balance(validator.address) == d.validator_fee
        assert disputes.validator_stake(validator.address) == d.min_validator_stake
        checked = next(e for e in validator.events if e.step == "checked")
        assert checked.verdict == Verdict.CHEAT and "margin" in checked.detail
    assert sum(steps(v, dispute).count("resolved") for v in world.validators) == 1
    assert not any(e.step == "failed" for v in world.validators for e in v.events)


@pytest.mark.slow
async def test_unreadable_evidence_is_inconclusive_and_the_challenger_loses_its_bond(world: World) -> None:
    d = world.chain.settings.disputes
    dispute = world.open(world.evidence(MADE_UP), uri="data:application/json;base64,bm90IGpzb24=")
    tasks = [asyncio.create_task(v.run()) for v in world.validators]
    for v in world.validators:
        v.poll_interval = 0.05
    try:
        async with asyncio.timeout(30):
            while not world.state(dispute).resolved:
                await asyncio.sleep(0.05)
    finally:
        for v in world.validators:
            v.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)  # run() ends promptly after stop()
    state = world.state(dispute)
    assert state.outcome == Verdict.CONSISTENT
    assert state.revealed == {v.address: Verdict.INCONCLUSIVE for v in world.validators}
    assert world.stake() == AGENT_STAKE  # nothing slashed
    disputes = Disputes(world.chain, world.challenger)
    assert disputes.balance(world.challenger.address) == 0  # the bond is forfeited
    for validator in world.validators:
        assert disputes.balance(validator.address) == 0  # inconclusive: never paid...
        assert disputes.validator_stake(validator.address) == d.min_validator_stake  # ...nor penalized
        checked = next(e for e in validator.events if e.step == "checked")
        assert "cannot be used" in checked.detail and "not base64 of a JSON document" in checked.detail


@pytest.mark.slow
async def test_evidence_of_another_receipt_is_inconclusive(world: World) -> None:
    disputed = world.evidence(MADE_UP, seq=1)
    other = world.evidence(MADE_UP, seq=2)  # signed by the agent too, but not the receipt on chain
    dispute = world.open(disputed, uri=other.to_uri())
    await poll_all(world)
    await poll_all(world)
    state = world.state(dispute)
    assert state.resolved and state.outcome == Verdict.CONSISTENT
    assert set(state.revealed.values()) == {Verdict.INCONCLUSIVE}
    for validator in world.validators:
        checked = next(e for e in validator.events if e.step == "checked")
        assert "not of the disputed call" in checked.detail and "digest" in checked.detail


@pytest.mark.slow
async def test_a_restarted_validator_reveals_the_verdict_it_committed(world: World) -> None:
    first, *others = world.validators
    dispute = world.open(world.evidence(MADE_UP), uri="data:,unreadable")
    await first.poll()
    assert steps(first, dispute) == ["drawn", "checked", "committed"]
    assert first.address in world.state(dispute).committed
    (kept,) = (world.tmp / "validator-3").iterdir()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # the salt is secret until revealed
    salt = json.loads(kept.read_text())[str(dispute)]["salt"]
    assert len(bytes.fromhex(salt.removeprefix("0x"))) == 32

    restarted = Validator(world.chain, first.account, first.checker, state_dir=world.tmp / "validator-3")
    for validator in others:
        await validator.poll()
    await restarted.poll()
    assert steps(restarted, dispute) == ["drawn", "revealed"]  # no second check, no second commit
    for validator in others:
        await validator.poll()
    state = world.state(dispute)
    assert state.resolved and state.revealed[first.address] == Verdict.INCONCLUSIVE
    await restarted.poll()
    assert steps(restarted, dispute)[-1] == "decided"  # resolved by another: it says how it ended...
    assert json.loads(kept.read_text()) == {}  # ...and forgets its vote


@pytest.mark.slow
async def test_a_dispute_resolved_between_the_look_and_the_step_still_ends_in_decided(world: World) -> None:
    """A poll lists the disputes assigned, then steps each: one resolved by another validator in between is
    said decided by the step (the next poll no longer lists it, so it would have ended silently)."""
    first, *others = world.validators
    dispute = world.open(world.evidence(MADE_UP), uri="data:,unreadable")
    await poll_all(world)  # every validator checks and commits
    await first.poll()
    assert steps(first, dispute)[-1] == "revealed"
    for validator in others:
        await validator.poll()
    assert world.state(dispute).resolved
    await first.advance(dispute)  # the step of a poll that listed it before it was resolved
    assert steps(first, dispute)[-1] == "decided"
    await first.poll()
    assert steps(first, dispute).count("decided") == 1


async def test_a_failing_step_is_reported_and_tried_again_at_the_next_poll(world: World) -> None:
    blocked = world.tmp / "blocked"
    blocked.write_text("a file where the validator's state folder should be")
    validator = Validator(
        world.chain, world.validators[0].account, world.validators[0].checker, state_dir=blocked
    )
    dispute = world.open(world.evidence(MADE_UP), uri="data:,unreadable")
    await validator.poll()
    failed = [e for e in validator.events if e.step == "failed"]
    assert len(failed) == 1 and failed[0].dispute == dispute and "trying again" in str(failed[0])
    assert validator.address not in world.state(dispute).committed  # no commitment without a kept salt

    blocked.unlink()
    await validator.poll()
    assert "committed" in steps(validator, dispute)
    assert validator.address in world.state(dispute).committed


async def test_a_model_that_fails_to_re_run_the_call_is_inconclusive(world: World) -> None:
    broken = LlamaCppRuntime(n_threads=1)
    broken.close()  # closed before it ever loads: every call fails
    validator = Validator(
        world.chain, world.validators[0].account, Checker([broken]), state_dir=world.tmp / "broken"
    )
    dispute = world.open(world.evidence(MADE_UP))
    await validator.poll()
    checked = next(e for e in validator.events if e.step == "checked")
    assert checked.verdict == Verdict.INCONCLUSIVE and "failed to re-run the call" in checked.detail
    assert "committed" in steps(validator, dispute)


async def test_register_refuses_a_model_its_checker_cannot_run(world: World) -> None:
    loner = Validator(world.chain, world.chain.accounts[6], Checker([]), state_dir=world.tmp / "loner")
    with pytest.raises(CheckUnavailable, match="runs no model with sha256"):
        loner.register(["ab" * 32], 10**15)
    assert Disputes(world.chain, loner.account).validator_stake(loner.address) == 0


def test_an_event_reads_as_a_sentence() -> None:
    event = ValidatorEvent("committed", 4, "a hidden cheat", Verdict.CHEAT)
    assert str(event) == "dispute #4: committed: a hidden cheat"
    assert (
        str(ValidatorEvent("failed", None, "the node did not answer"))
        == "validator: failed: the node did not answer"
    )


def test_the_vote_file_is_never_readable_by_others(tmp_path: Path) -> None:
    from motet.trust._validator import _Vote, _VoteStore

    store = _VoteStore(tmp_path / "votes" / "v.json")
    store.put(1, _Vote(Verdict.CHEAT, os.urandom(32), "because"))
    assert stat.S_IMODE((tmp_path / "votes" / "v.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "votes").stat().st_mode) == 0o700
    again = _VoteStore(tmp_path / "votes" / "v.json")
    vote = again.get(1)
    assert vote is not None and vote.verdict == Verdict.CHEAT and vote.detail == "because"
