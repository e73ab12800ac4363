"""Sampled checks of paid calls: at p = 1 every paid call to a verifiable capability is checked and at p = 0
none; a cheat found opens a dispute on chain with the payer's account; a check that cannot run is reported and
the run goes on. Real SmolLM2 agents over HTTP on 127.0.0.1, the embedded chain."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
from pydantic import BaseModel, Field

from motet.agents import Agent, AgentServer, CallContext
from motet.chain import Chain
from motet.composer import CheckDone, DisputeOpened, NodeDone, Payer, RunDone, Workflow
from motet.registry import Registry
from motet.runtimes import (
    Completion,
    LlamaCppRuntime,
    Messages,
    ModelRef,
    Runtime,
    Sampling,
    Schema,
    StreamEvent,
    TextDelta,
    Usage,
)
from motet.settings import TrustSettings
from motet.trust import Checker, Disputes, verifier_agent

PRICE = 10**15
VERIFY_PRICE = 10**14
TEXT = "cats purr on the mat"
CANNED = '{"topic": "zebra stripes"}'
"""What the cheater answers whatever it is asked: valid, signed, naming the honest model, and not its answer."""


class Question(BaseModel):
    text: str


class Topic(BaseModel):
    topic: str = Field(max_length=16)


class Tally(BaseModel):
    count: int


def labeller(name: str, runtime: Runtime) -> Agent:
    agent = Agent(name, runtime=runtime, price=PRICE)
    agent.prompt(
        "label",
        input=Question,
        output=Topic,
        instructions="Give the topic of the text in one or two words.",
        template="Text: {text}",
        max_tokens=24,
        verifiable=True,
    )
    return agent


def counter() -> Agent:
    agent = Agent("counter", description="Counts words.", price=PRICE)

    @agent.capability("count")
    async def count(question: Question, ctx: CallContext) -> Tally:
        return Tally(count=len(question.text.split()))

    return agent


class CannedRuntime:
    """Answers `CANNED` to everything, in no time, and says the honest model did: a cached-answer cheat."""

    def __init__(self, claimed: ModelRef) -> None:
        self.model_ref = claimed

    async def load(self) -> ModelRef:
        return self.model_ref

    async def complete(
        self, messages: Messages, sampling: Sampling | None = None, *, schema: Schema | None = None
    ) -> Completion:
        return Completion(CANNED, json.loads(CANNED), Usage(20, 8), "stop", 0.001, self.model_ref)

    async def stream(
        self, messages: Messages, sampling: Sampling | None = None, *, schema: Schema | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        yield TextDelta(CANNED)
        yield await self.complete(messages, sampling, schema=schema)

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


@dataclass
class Market:
    chain: Chain
    registry: Registry
    ids: dict[str, int]


@contextlib.asynccontextmanager
async def market(chain: Chain, agents: dict[str, Agent]) -> AsyncIterator[Market]:
    """Serve and register `agents` (accounts 1, 2, ...), each with stake."""
    registry = Registry(chain)
    ids: dict[str, int] = {}
    async with contextlib.AsyncExitStack() as stack:
        for index, (name, agent) in enumerate(agents.items(), start=1):
            server = AgentServer(agent, chain=chain, account=chain.accounts[index])
            await stack.enter_async_context(server.running())
            ids[name] = await server.register(registry, stake=10**17)
        yield Market(chain, registry, ids)


def with_rate(chain: Chain, rate: float) -> None:
    chain.settings = dataclasses.replace(chain.settings, trust=TrustSettings(sample_rate=rate))


def checks(events: Sequence[object]) -> list[CheckDone]:
    return [event for event in events if isinstance(event, CheckDone)]


@pytest.mark.slow
async def test_at_p_1_every_paid_verifiable_call_is_checked_and_at_p_0_none(
    chain: Chain, smollm2: LlamaCppRuntime
) -> None:
    agents = {"labeller": labeller("labeller", smollm2), "counter": counter()}
    async with (
        market(chain, agents) as found,
        Payer(chain, chain.accounts[8], checker=Checker([smollm2])) as payer,
    ):
        flow = (
            Workflow("labels", inputs=Question)
            .add("first", "label")
            .add("second", "label", inputs={"text": "input.text"})
            .add("words", "count")
        )
        with_rate(chain, 1.0)
        every = await flow.compile(found.registry, payer=payer, budget=10**16)
        events = [event async for event in every.stream({"text": TEXT})]
        done = checks(events)
        assert sorted(check.node for check in done) == ["first", "second"]  # not the Python function
        for check in done:
            assert (check.verdict, check.by, check.agent_id) == ("consistent", "local", found.ids["labeller"])
            assert check.dispute_id is None and check.price == 0 and check.detail
        # The run waits for its checks: they come before RunDone, and each after its node was paid.
        order = [type(event).__name__ + ":" + getattr(event, "node", "") for event in events]
        assert order.index("CheckDone:first") > order.index("NodeDone:first")
        assert max(order.index("CheckDone:first"), order.index("CheckDone:second")) < order.index("RunDone:")

        with_rate(chain, 0.0)
        none = await flow.compile(found.registry, payer=payer, budget=10**16)
        report = await none.run({"text": TEXT})
        assert report.checks == [] and set(report.outputs) == {"first", "second", "words"}


@pytest.mark.slow
async def test_a_cheat_found_opens_a_dispute_with_the_payers_account(
    chain: Chain, smollm2: LlamaCppRuntime
) -> None:
    honest_model = await smollm2.load()
    sha256 = honest_model.sha256
    for validator in chain.accounts[5:8]:
        Disputes(chain, validator).register_validator(
            [sha256], stake=chain.settings.disputes.min_validator_stake
        )
    assert chain.settings.trust.sample_rate == 0.05  # the published p; the draw is forced below p
    agents = {"cheater": labeller("cheater", CannedRuntime(honest_model))}
    forced = Payer(chain, chain.accounts[4], checker=Checker([smollm2]), random=lambda: 0.0499)
    async with market(chain, agents) as found, forced as payer:
        flow = Workflow("label", inputs=Question).add("label", "label")
        runnable = await flow.compile(found.registry, payer=payer, budget=10**16)
        report = await runnable.run({"text": TEXT})

    assert report.outputs["label"] == {"topic": "zebra stripes"}  # paid, as every accepted answer is
    (check,) = report.checks
    assert (check.verdict, check.by, check.agent) == ("cheat", "local", f"cheater (#{found.ids['cheater']})")
    assert check.dispute_id is not None and check.problem == ""
    (opened,) = [event for event in report.events if isinstance(event, DisputeOpened)]
    assert (opened.dispute_id, opened.agent_id, opened.bond) == (
        check.dispute_id,
        found.ids["cheater"],
        chain.settings.disputes.bond,
    )
    state = Disputes(chain, chain.accounts[4]).state(check.dispute_id)
    assert state.agent_id == found.ids["cheater"]
    assert state.challenger == chain.accounts[4].address
    assert state.model == sha256 and state.status == "voting" and len(state.validators) == 3
    assert chain.contract("AgentRegistry").functions.holds(found.ids["cheater"]).call() == 1


@pytest.mark.slow
async def test_a_check_that_cannot_run_is_reported_and_a_verifier_is_paid_only_from_the_budgets_room(
    chain: Chain, smollm2: LlamaCppRuntime
) -> None:
    with_rate(chain, 1.0)
    flow = Workflow("label", inputs=Question).add("label", "label")
    async with market(chain, {"labeller": labeller("labeller", smollm2)}) as found, Payer(chain) as payer:
        # No local runtime and no verifier agent: the call is paid and the run goes on, unchecked.
        report = await (await flow.compile(found.registry, payer=payer, budget=10**16)).run({"text": TEXT})
        assert report.outputs["label"]["topic"]
        (check,) = report.checks
        assert (check.verdict, check.by, check.price) == ("unchecked", "", 0)
        assert check.detail == "no verifier agent offers 'verify'"
        assert report.spent == PRICE

        verifier = AgentServer(
            verifier_agent(Checker([smollm2]), price=VERIFY_PRICE), chain=chain, account=chain.accounts[6]
        )
        async with verifier.running():
            verifier_id = await verifier.register(found.registry, stake=10**17)
            # A budget with no room above the worst case: a check cannot take what a node needs.
            tight = await flow.compile(found.registry, payer=payer, budget=PRICE)
            report = await tight.run({"text": TEXT})
            (check,) = report.checks
            assert check.verdict == "unchecked" and "no room in the budget" in check.detail
            assert report.spent == PRICE

            roomy = await flow.compile(found.registry, payer=payer, budget=PRICE + VERIFY_PRICE)
            events = [event async for event in roomy.stream({"text": TEXT}, tokens=False)]
    (check,) = checks(events)
    assert (check.verdict, check.by, check.price) == (
        "consistent",
        f"verifier (#{verifier_id})",
        VERIFY_PRICE,
    )
    (done,) = [event for event in events if isinstance(event, RunDone)]
    assert done.spent == PRICE + VERIFY_PRICE  # the verifier was paid like any call, from the run's budget
    assert [event.node for event in events if isinstance(event, NodeDone)] == ["label"]
