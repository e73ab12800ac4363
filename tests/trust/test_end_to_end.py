"""The issue's first acceptance item, end to end on the embedded chain with real SmolLM2 agents over HTTP.

An honest agent and a cheating one (the bundled SmolLM2 requantized to Q4_0, served under the honest Q4_1
model's ref: its card, profile and receipts all name the honest model) serve the same verifiable
`summarize` workflow several times. The composer checks its paid calls (sample rate 1: every call is drawn,
so the test is deterministic; the draw itself is tested with the composer), catches the cheater, and opens a
dispute per cheat it finds. Three `Validator`s, each with its own account, stake and model runtime, decide
every dispute on their own (they cannot be separate processes here: the embedded chain lives in this one;
tests/trust/test_validator_cli.py runs them as processes on anvil). The cheater is slashed exactly as
published, the challenger refunded and rewarded to the wei, the validators paid their fee, the honest agent
never disputed; and the default selection, which chose the cheaper cheater before, drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from motet.agents import Agent, AgentServer
from motet.agents.builtins import Summary, Text
from motet.chain import Chain
from motet.composer import Payer, Workflow
from motet.demo import cheating_runtime
from motet.registry import Registry
from motet.runtimes import LlamaCppRuntime, Runtime
from motet.settings import Settings, TrustSettings
from motet.trust import Checker, Disputes, Validator, Verdict, trust_facts

pytestmark = pytest.mark.slow

INSTRUCTIONS = "Summarise the user's text in one short sentence. Answer in JSON."
DOCUMENTS = (
    "The city opened a new public library downtown on Monday. Visitors praised the bright reading rooms.",
    "Rain is expected all week; farmers welcome it after a long dry summer.",
    "The museum will stay open late on Fridays this spring, with free entry after six.",
)
"""Three requests, each served by both agents (six paid runs). Where the cheater's cheaper model gives the
declared model's answer, there is nothing to dispute; every other answer of the cheater is a cheat."""
STAKE = 10**17
HONEST_PRICE = 2 * 10**12
CHEAP_PRICE = 10**12
"""The cheater undercuts the honest agent, so the default selection picks it until it is slashed."""


def summarizer(name: str, runtime: Runtime, price: int) -> Agent:
    agent = Agent(name, description="Summarises a text in one sentence.", runtime=runtime, price=price)
    agent.prompt(
        "summarize",
        input=Text,
        output=Summary,
        instructions=INSTRUCTIONS,
        template="{text}",
        max_tokens=64,
        verifiable=True,
    )
    return agent


@contextlib.asynccontextmanager
async def running(validators: list[Validator]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(v.run(), name=f"validator {v.address}") for v in validators]
    try:
        yield
    finally:
        for validator in validators:
            validator.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)


async def test_a_cheater_is_sampled_disputed_decided_by_three_validators_slashed_and_dropped(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path, trust=TrustSettings(sample_rate=1.0))
    published = settings.disputes
    chain = Chain.embedded(settings=settings)
    registry = Registry(chain)
    honest_runtime = LlamaCppRuntime(n_threads=1)
    honest_ref = await honest_runtime.load()
    cheat_runtime = await cheating_runtime(honest_ref, settings.cache_dir / "demo", n_threads=1)
    validator_runtimes = [LlamaCppRuntime(n_threads=1) for _ in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(cheat_runtime.aclose)
        for runtime in (honest_runtime, *validator_runtimes):
            stack.push_async_callback(runtime.aclose)
        honest = AgentServer(
            summarizer("honest", honest_runtime, HONEST_PRICE), chain=chain, account=chain.accounts[1]
        )
        cheater = AgentServer(
            summarizer("cheater", cheat_runtime, CHEAP_PRICE), chain=chain, account=chain.accounts[2]
        )
        await stack.enter_async_context(honest.running())
        await stack.enter_async_context(cheater.running())
        honest_id = await honest.register(registry, stake=STAKE)
        cheater_id = await cheater.register(registry, stake=STAKE)
        assert (
            cheat_runtime.actual.quantization == "Q4_0" and cheat_runtime.actual.sha256 != honest_ref.sha256
        )

        validators = [
            Validator(
                chain, chain.accounts[i], Checker([runtime]), state_dir=tmp_path / f"v{i}", poll_interval=0.5
            )
            for i, runtime in zip((3, 4, 5), validator_runtimes, strict=True)
        ]
        for validator in validators:
            validator.register([honest_ref.sha256], published.min_validator_stake)

        payer = await stack.enter_async_context(
            Payer(chain, chain.accounts[0], checker=Checker([honest_runtime]))
        )
        chosen = (
            await Workflow("any", inputs=Text)
            .add("summary", "summarize")
            .compile(registry, payer=payer, budget=10**15)
        )
        assert chosen.selections["summary"].offers[0].agent_id == cheater_id  # cheaper, not slashed yet

        flows = {
            agent_id: await Workflow(f"summary by #{agent_id}", inputs=Text)
            .add("summary", "summarize", agent=agent_id)
            .compile(registry, payer=payer, budget=10**15)
            for agent_id in (honest_id, cheater_id)
        }
        checks: dict[int, list[str]] = {honest_id: [], cheater_id: []}
        opened: list[int] = []
        async with running(validators):
            for document in DOCUMENTS:
                for agent_id, flow in flows.items():
                    report = await flow.run({"text": document})
                    (check,) = report.checks
                    assert check.agent_id == agent_id and check.by == "local", check
                    checks[agent_id].append(check.verdict)
                    if check.dispute_id is not None:
                        opened.append(check.dispute_id)
            async with asyncio.timeout(90):
                while not all(Disputes(chain, payer.account).state(d).resolved for d in opened):
                    await asyncio.sleep(0.25)

    # Sampling caught the cheater, and only the cheater.
    assert checks[honest_id] == ["consistent"] * len(DOCUMENTS)
    assert "cheat" in checks[cheater_id]
    assert set(checks[cheater_id]) <= {
        "cheat",
        "consistent",
    }  # a cheaper model sometimes gives the same answer
    assert len(opened) == checks[cheater_id].count("cheat")

    # Each dispute: three validators drawn, all three re-ran it and revealed "cheat"; the cheat is confirmed.
    disputes = Disputes(chain, chain.accounts[0])
    states = [disputes.state(d) for d in opened]
    addresses = {v.address for v in validators}
    for state in states:
        assert state.agent_id == cheater_id and state.challenger == chain.accounts[0].address
        assert set(state.validators) == addresses
        assert state.revealed == dict.fromkeys(addresses, Verdict.CHEAT)
        assert state.outcome == Verdict.CHEAT
    for validator in validators:
        assert not [e for e in validator.events if e.step == "failed"], validator.events
        assert [e.dispute for e in validator.events if e.step == "committed"] == opened

    # Slashed exactly as published: each confirmed cheat takes slash_bps of the stake left.
    left, expected = STAKE, []
    for _ in states:
        expected.append(left * published.slash_bps // 10_000)
        left -= expected[-1]
    assert sorted((s.slashed for s in states), reverse=True) == expected
    cheater_record = registry.get(cheater_id)
    assert cheater_record.stake == left == STAKE - sum(expected)
    facts = trust_facts(chain, cheater_id)
    assert (facts.slashes, facts.slashed_total, facts.disputes_lost) == (
        len(states),
        sum(expected),
        len(states),
    )

    # The challenger gets each bond back plus reward_bps of each slash; each validator its fee per dispute.
    challenger_due = sum(published.bond + slashed * published.reward_bps // 10_000 for slashed in expected)
    assert disputes.balance(chain.accounts[0].address) == challenger_due
    assert disputes.withdraw() == challenger_due
    for validator in validators:
        assert disputes.balance(validator.address) == published.validator_fee * len(states)
        assert disputes.validator_stake(validator.address) == published.min_validator_stake

    # The honest agent was never disputed, and kept its stake.
    assert registry.get(honest_id).stake == STAKE
    honest_facts = trust_facts(chain, honest_id)
    assert (honest_facts.disputes, honest_facts.slashes) == (0, 0)

    # The cheater drops out of the default selection; the honest agent is chosen.
    async with Payer(chain, chain.accounts[6]) as fresh:
        again = (
            await Workflow("any", inputs=Text)
            .add("summary", "summarize")
            .compile(registry, payer=fresh, budget=10**15)
        )
    selection = again.selections["summary"]
    assert [offer.agent_id for offer in selection.offers] == [honest_id]
    assert "cheater" in again.explain() and "a confirmed cheat" in again.explain()
