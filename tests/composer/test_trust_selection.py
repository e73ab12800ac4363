"""Selection weighs trust: a slashed agent drops out of default selection, a well-rated agent beats a cheaper one
that its payers rated badly, and `compile()` explains why, with the numbers."""

from __future__ import annotations

import contextlib
import secrets

import pytest
from pydantic import BaseModel

from motet.agents import Agent, AgentServer, CallContext, CapabilitySpec
from motet.chain import Chain
from motet.composer import Offer, Payer, Policy, Workflow
from motet.composer._trust import AgentTrust, select
from motet.errors import GraphError, InvalidComposeArgument
from motet.payments import Receipt
from motet.registry import Registry
from motet.runtimes import LlamaCppRuntime
from motet.settings import TrustSettings
from motet.trust import Disputes, Reputation, TrustFacts, Verdict
from motet.trust.economics import Economics

STAKE = 10**17
PRICES = {"cheap": 10**15, "careful": 2 * 10**15, "cheater": 5 * 10**14}
MODEL = "ab" * 32
"""The model a validator declares and the dispute names (the contract only matches the two)."""


class Word(BaseModel):
    text: str


class Echo(BaseModel):
    echo: str


def echo_agent(name: str, price: int) -> Agent:
    agent = Agent(name, description="Repeats its input.", price=price)

    @agent.capability("echo")
    async def echo(request: Word, ctx: CallContext) -> Echo:
        return Echo(echo=request.text)

    return agent


def slash(chain: Chain, agent_id: int, receipt: Receipt) -> None:
    """A dispute against `agent_id` over `receipt`, decided "cheat" by three validators: the agent is slashed."""

    validators = chain.accounts[5:8]
    for validator in validators:
        Disputes(chain, validator).register_validator(
            [MODEL], stake=chain.settings.disputes.min_validator_stake
        )
    dispute = Disputes(chain, chain.accounts[9]).open(agent_id, receipt, MODEL, "data:,evidence")
    salts = {validator.address: secrets.token_bytes(32) for validator in validators}
    for validator in validators:
        Disputes(chain, validator).commit(dispute, Verdict.CHEAT, salts[validator.address])
    chain.advance_time(chain.settings.disputes.commit_window + 1)
    for validator in validators:
        Disputes(chain, validator).reveal(dispute, Verdict.CHEAT, salts[validator.address])
    chain.advance_time(chain.settings.disputes.reveal_window + 1)
    Disputes(chain, chain.accounts[9]).resolve(dispute)


@pytest.mark.slow
async def test_a_slashed_agent_drops_out_and_a_well_rated_agent_beats_a_cheaper_badly_rated_one(
    chain: Chain,
) -> None:
    registry = Registry(chain)
    ids: dict[str, int] = {}
    async with contextlib.AsyncExitStack() as stack:
        for index, (name, price) in enumerate(PRICES.items(), start=1):
            server = AgentServer(echo_agent(name, price), chain=chain, account=chain.accounts[index])
            await stack.enter_async_context(server.running())
            ids[name] = await server.register(registry, stake=STAKE)
        payer = Payer(chain, chain.accounts[4])
        await stack.enter_async_context(payer)

        # Pay each agent through nodes that name it, and rate what was paid: 0 for "cheap", 100 for "careful".
        paying = Workflow("pay", inputs=Word)
        for name, calls in (("cheap", 5), ("careful", 3), ("cheater", 1)):
            for call in range(calls):
                paying.add(f"{name}{call}", "echo", agent=ids[name])
        report = await (await paying.compile(registry, payer=payer, budget=10**17)).run({"text": "hi"})
        receipts = payer.receipts(report.run_id)
        assert len(receipts) == 9
        rating = Reputation(chain, payer.account)
        for node, (agent_id, receipt) in receipts.items():
            if not node.startswith("cheater"):
                rating.give(agent_id, receipt, 0 if node.startswith("cheap") else 100)
        slash(chain, ids["cheater"], receipts["cheater0"][1])

        # A payer that has not measured these agents yet (latencies on one busy test loop are noise).
        payer = Payer(chain, chain.accounts[4])
        await stack.enter_async_context(payer)
        flow = Workflow("one", inputs=Word).add("echo", "echo")
        chosen = await flow.compile(registry, payer=payer, budget=10**16)
        assert [offer.agent for offer in chosen.candidates["echo"]] == ["careful", "cheap"]
        careful, cheap, cheater = (f"{name} (#{ids[name]})" for name in ("careful", "cheap", "cheater"))
        assert chosen.explain() == (
            "echo (echo), policy trusted:\n"
            f"  1. {careful}: score 0.73 · price 0.002 ETH · stake 0.1 ETH · slashes 0 · reputation 100/100 from "
            "0.006 ETH paid · disputes won 0 lost 0 · latency not measured\n"
            f"  2. {cheap}: score 0.70 · price 0.001 ETH · stake 0.1 ETH · slashes 0 · reputation 0/100 from "
            "0.005 ETH paid · disputes won 0 lost 0 · latency not measured\n"
            f"     ranks below {careful}: score 0.70 < 0.73, lower on reputation (-0.21); better on price (+0.17)\n"
            f"  dropped {cheater}: slashed 1 time (0.05 ETH): a confirmed cheat"
        )

        # Price alone puts the badly rated agent first, but the slashed one stays out under every policy ...
        cheapest = await flow.compile(registry, payer=payer, budget=10**16, policy="cheapest")
        assert [offer.agent for offer in cheapest.candidates["echo"]] == ["cheap", "careful"]
        assert "dropped cheater" in cheapest.explain()
        # ... unless a node names it.
        named = Workflow("named", inputs=Word).add("echo", "echo", agent=ids["cheater"])
        pinned = await named.compile(registry, payer=payer, budget=10**16)
        assert [offer.agent for offer in pinned.candidates["echo"]] == ["cheater"]
        assert pinned.explain().splitlines()[0] == "echo (echo), the node names its agent:"
        assert "slashes 1" in pinned.explain()
        # When only slashed agents offer a capability, compile() says so.
        only = Workflow("only", inputs=Word).add("echo", "echo", max_price=PRICES["cheater"])
        with pytest.raises(GraphError, match=r"slashed 1 time \(0.05 ETH\): a confirmed cheat"):
            await only.compile(registry, payer=payer, budget=10**16)


def offer(agent_id: int, name: str, price: int, stake: int) -> Offer:
    spec = CapabilitySpec(name="echo", input_schema={}, output_schema={})
    return Offer(agent_id, name, spec, price, stake=stake)


OFFERS = [
    offer(1, "cheap", 10**15, 10**17),
    offer(2, "careful", 2 * 10**15, 10**17),
    offer(3, "new", 10**15, 5 * 10**16),
]
RECORDS = {
    1: AgentTrust(
        TrustFacts(1, stake=10**17, feedback_count=5, feedback_weight=5 * 10**15, feedback_score=0.0), 0.4
    ),
    2: AgentTrust(
        TrustFacts(
            2,
            stake=10**17,
            disputes=1,
            disputes_won=1,
            feedback_count=3,
            feedback_weight=6 * 10**15,
            feedback_score=100.0,
        ),
        0.9,
    ),
    3: AgentTrust(TrustFacts(3, stake=5 * 10**16), None),
}
EXPLAINED = """\
n (echo), policy trusted:
  1. new (#3): score 0.72 · price 0.001 ETH · stake 0.05 ETH · slashes 0 · reputation none yet · disputes won 0 \
lost 0 · latency not measured
  2. careful (#2): score 0.71 · price 0.002 ETH · stake 0.1 ETH · slashes 0 · reputation 100/100 from 0.006 ETH \
paid · disputes won 1 lost 0 · latency 0.90 s
     ranks below new (#3): score 0.71 < 0.72, lower on price (-0.17), latency (-0.05); better on reputation \
(+0.11), stake (+0.07), record (+0.02)
  3. cheap (#1): score 0.70 · price 0.001 ETH · stake 0.1 ETH · slashes 0 · reputation 0/100 from 0.005 ETH \
paid · disputes won 0 lost 0 · latency 0.40 s
     ranks below new (#3): score 0.70 < 0.72, lower on reputation (-0.10); better on stake (+0.07)"""


def test_the_score_and_its_explanation_follow_the_documented_formula() -> None:
    selection = select(
        "n", "echo", OFFERS, lambda o: RECORDS[o.agent_id], policy="trusted", settings=TrustSettings()
    )
    scores = {r.offer.agent: r for r in selection.ranked}
    # careful: price 1/2, reputation (100·6 + 50·1)/7 / 100, stake 1, record 2/3, latency (0.4+0.1)/(0.9+0.1)
    careful = scores["careful"].parts
    assert careful == pytest.approx(
        {"price": 0.5, "reputation": 650 / 700, "stake": 1.0, "record": 2 / 3, "latency": 0.5}, rel=1e-9
    )
    assert scores["careful"].score == pytest.approx(
        0.35 * 0.5 + 0.25 * 650 / 700 + 0.15 * 1 + 0.15 * 2 / 3 + 0.10 * 0.5
    )
    # cheap: rated 0 by payers of 0.005 ETH, pulled toward 50 by the 0.001 ETH prior: 50/6.
    assert scores["cheap"].parts["reputation"] == pytest.approx(50 / 600)
    # new: never rated, never measured, half the stake: neutral where nothing is known.
    assert scores["new"].parts == pytest.approx(
        {"price": 1.0, "reputation": 0.5, "stake": 0.5, "record": 0.5, "latency": 1.0}
    )
    assert [r.offer.agent for r in selection.ranked] == ["new", "careful", "cheap"]
    assert selection.explain() == EXPLAINED


def test_cheapest_and_most_staked_order_by_price_and_by_stake_and_say_so() -> None:
    def explained(policy: Policy) -> list[str]:
        selection = select(
            "n", "echo", OFFERS, lambda o: RECORDS[o.agent_id], policy=policy, settings=TrustSettings()
        )
        return [
            line for line in selection.explain().splitlines() if "ranks below" in line or ". " in line[:6]
        ]

    assert explained("cheapest") == [
        explained("cheapest")[0],
        explained("cheapest")[1],
        "     ranks below cheap (#1): same price, less stake",
        explained("cheapest")[3],
        "     ranks below cheap (#1): costs more (0.002 ETH)",
    ]
    assert explained("cheapest")[0].startswith("  1. cheap (#1)")
    assert explained("most_staked")[2:] == [
        "     ranks below cheap (#1): same stake, costs more",
        explained("most_staked")[3],
        "     ranks below cheap (#1): less stake (0.05 ETH)",
    ]
    assert explained("most_staked")[3].startswith("  3. new (#3)")


def test_a_slashed_agent_is_dropped_unless_named() -> None:
    slashed = {
        **RECORDS,
        1: AgentTrust(TrustFacts(1, stake=5 * 10**16, slashes=1, slashed_total=5 * 10**16), 0.4),
    }
    selection = select(
        "n", "echo", OFFERS, lambda o: slashed[o.agent_id], policy="cheapest", settings=TrustSettings()
    )
    assert [r.offer.agent for r in selection.ranked] == ["new", "careful"]
    assert selection.dropped == (("cheap (#1)", "slashed 1 time (0.05 ETH): a confirmed cheat"),)
    named = select(
        "n",
        "echo",
        OFFERS[:1],
        lambda o: slashed[o.agent_id],
        policy="trusted",
        settings=TrustSettings(),
        named=True,
    )
    assert [r.offer.agent for r in named.ranked] == ["cheap"] and named.dropped == ()


def test_trust_settings_are_checked() -> None:
    with pytest.raises(InvalidComposeArgument, match="between 0 and 1"):
        TrustSettings(sample_rate=-0.1)
    with pytest.raises(InvalidComposeArgument, match="at least one is above 0"):
        TrustSettings(price_weight=0, reputation_weight=0, stake_weight=0, record_weight=0, latency_weight=0)


class Text(BaseModel):
    text: str


class Topic(BaseModel):
    topic: str


async def test_a_verifiable_agent_staking_less_than_cheating_at_its_price_would_earn_is_dropped(
    chain: Chain, smollm2: LlamaCppRuntime
) -> None:
    # S5: at price P the stake must be at least Economics.least_stake(P) (40 × P at the published numbers), or
    # an agent would expect to earn more by cheating until a sample catches it than a slash would take.
    price = 10**14
    least = Economics.published(chain.settings).least_stake(price)
    assert chain.settings.min_stake < least  # the registry's floor alone would let it in
    registry = Registry(chain)
    ids: dict[str, int] = {}
    async with contextlib.AsyncExitStack() as stack:
        for index, (name, stake) in enumerate(
            (("thin", chain.settings.min_stake), ("bonded", least)), start=1
        ):
            agent = Agent(name, description="Names a topic.", price=price, runtime=smollm2)
            agent.prompt(
                "topic", input=Text, output=Topic, instructions="Topic?", max_tokens=8, verifiable=True
            )
            server = AgentServer(agent, chain=chain, account=chain.accounts[index])
            await stack.enter_async_context(server.running())
            ids[name] = await server.register(registry, stake=stake)
        payer = Payer(chain, chain.accounts[4])
        await stack.enter_async_context(payer)
        flow = Workflow("topics", inputs=Text)
        flow.add("topic", "topic")
        compiled = await flow.compile(registry, payer=payer, budget=10**16)
    assert [offer.agent_id for offer in compiled.candidates["topic"]] == [ids["bonded"]]
    explained = compiled.explain()
    assert f"agent {ids['thin']}" in explained and "the least at which cheating at its price" in explained
