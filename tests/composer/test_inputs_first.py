"""Inputs are checked before money moves: a run whose inputs are missing, unknown or mistyped fails before any
agent is called or paid, and a node input that does not fit its capability's schema fails the run at once,
never a reason to try the next agent."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from pydantic import BaseModel

from motet.agents import Agent, AgentServer, CallContext
from motet.chain import Chain
from motet.composer import CallPaid, CompiledWorkflow, Event, Failover, NodeStarted, Payer, Workflow
from motet.errors import WorkflowInputError
from motet.registry import Registry

pytestmark = pytest.mark.asyncio(loop_scope="module")

PRICE = 10**12

FLOW = """
name = "translated-brief"
[inputs]
text = { type = "string", description = "The text to brief." }
target_language = { type = "string", description = "The language of the brief, e.g. fr." }
[[nodes]]
id = "clean"
capability = "clean_text"
[[nodes]]
id = "shorten"
capability = "shorten_text"
after = "clean"
[[nodes]]
id = "translate"
capability = "translate_text"
after = "shorten"
"""


class Text(BaseModel):
    text: str


class ToTranslate(BaseModel):
    text: str
    target_language: str


class Translation(BaseModel):
    translation: str


@dataclass
class Market:
    chain: Chain
    registry: Registry
    calls: list[str]
    """Each agent's name, once per call it served."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def market() -> AsyncIterator[Market]:
    """Four agents (accounts 1-4) on one chain for the module: a cleaner, a shortener and two translators."""
    chain = Chain.embedded()
    calls: list[str] = []
    cleaner, shortener = Agent("cleaner", price=PRICE), Agent("shortener", price=PRICE)
    translators = [Agent("translator-a", price=PRICE), Agent("translator-b", price=2 * PRICE)]

    @cleaner.capability("clean_text")
    async def clean(request: Text, ctx: CallContext) -> Text:
        calls.append("cleaner")
        return Text(text=request.text.strip())

    @shortener.capability("shorten_text")
    async def shorten(request: Text, ctx: CallContext) -> Text:
        calls.append("shortener")
        return Text(text=request.text[:20])

    for translator in translators:

        @translator.capability("translate_text")
        async def translate(
            request: ToTranslate, ctx: CallContext, name: str = translator.name
        ) -> Translation:
            calls.append(name)
            return Translation(translation=f"[{request.target_language}] {request.text}")

    registry = Registry(chain)
    async with contextlib.AsyncExitStack() as stack:
        for index, agent in enumerate([cleaner, shortener, *translators], start=1):
            server = AgentServer(agent, chain=chain, account=chain.accounts[index])
            await stack.enter_async_context(server.running())
            await server.register(registry, stake=10**17)
        yield Market(chain, registry, calls)


async def drain(runnable: CompiledWorkflow, inputs: dict[str, str], run_id: str, seen: list[Event]) -> None:
    async for event in runnable.stream(inputs, run_id=run_id):
        seen.append(event)


@pytest.mark.slow
async def test_a_missing_input_fails_the_run_before_any_agent_is_called_or_paid(
    market: Market, tmp_path: Path
) -> None:
    chain = market.chain
    (tmp_path / "flow.toml").write_text(FLOW)
    flow = Workflow.load(tmp_path / "flow.toml")
    payer_account = chain.accounts[8]
    before = chain.balance(payer_account.address)
    async with Payer(chain, payer_account) as payer:
        runnable = await flow.compile(market.registry, payer=payer, budget=10**15)
        seen: list[Event] = []
        with pytest.raises(WorkflowInputError) as missing:
            await drain(runnable, {"text": "  The bridge opened today.  "}, "missing", seen)
        assert str(missing.value) == (
            "inputs of workflow 'translated-brief': target_language: missing (expected string: The language of "
            "the brief, e.g. fr.)"
        )
        assert missing.value.fields.keys() == {"target_language"}
        # An unknown input is named with its close match; a mistyped one with what it expects.
        with pytest.raises(WorkflowInputError) as unknown:
            await runnable.run({"text": 5, "target_langauge": "fr"})
        assert unknown.value.fields == {
            "text": "expected string: The text to brief., got 5",
            "target_langauge": "not an input of this workflow (did you mean 'target_language'? it takes text, "
            "target_language)",
            "target_language": "missing (expected string: The language of the brief, e.g. fr.)",
        }
        assert seen == []  # not a node started, not a failover
        assert market.calls == []
        assert payer.spent("missing") == 0
    assert chain.balance(payer_account.address) == before  # no channel opened: nothing deposited, no gas


@pytest.mark.slow
async def test_a_node_input_that_does_not_fit_fails_the_run_without_failover(market: Market) -> None:
    chain = market.chain
    market.calls.clear()
    # The workflow declares target_language optional; the translator's card requires it.
    flow = (
        Workflow(
            "translated-brief",
            inputs={
                "type": "object",
                "properties": {"text": {"type": "string"}, "target_language": {"type": "string"}},
                "required": ["text"],
            },
        )
        .add("clean", "clean_text")
        .add("shorten", "shorten_text", after="clean")
        .add("translate", "translate_text", after="shorten")
    )
    async with Payer(chain, chain.accounts[9]) as payer:
        runnable = await flow.compile(market.registry, payer=payer, budget=10**15)
        assert len(runnable.candidates["translate"]) == 2  # a backup that must not be tried
        seen: list[Event] = []
        with pytest.raises(WorkflowInputError) as failed:
            await drain(runnable, {"text": "The bridge opened today."}, "node", seen)
        error = failed.value
        assert error.node == "translate"
        assert str(error).startswith("node 'translate' cannot call 'translate_text' (translator-a (#3)")
        assert error.fields == {
            "target_language": "missing (expected string); it is fed by input.target_language, which the run "
            "was not given"
        }
        assert not [e for e in seen if isinstance(e, Failover)]
        assert [e.node for e in seen if isinstance(e, CallPaid)] == ["clean", "shorten"]
        assert [e.node for e in seen if isinstance(e, NodeStarted)][-1] == "translate"
        assert market.calls == ["cleaner", "shortener"]  # neither translator called
        assert payer.spent("node") == 2 * PRICE  # the two calls delivered, nothing for the third
        # With the input given, the same compiled workflow runs to the end.
        report = await runnable.run({"text": "The bridge opened today.", "target_language": "fr"})
        assert report.outputs["translate"] == {"translation": "[fr] The bridge opened to"}
