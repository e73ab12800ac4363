"""The paid verifier agent (capability `verify`) on real HTTP: an honest call's evidence is consistent, an answer
the model did not give (signed by the agent) is a cheat, and evidence that is malformed, does not hold together
or names a model the verifier does not run is refused before any work, owing nothing. Real SmolLM2 through
LlamaCppRuntime, real agent servers on 127.0.0.1, the embedded chain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from pydantic import BaseModel, Field
from support.agents import PRICE, Running, call_signer, start

from motet.agents import Agent, AgentClient, AgentServer, profile_hash, response_hash
from motet.chain import Chain
from motet.errors import InvalidAgentInput
from motet.payments import ChannelClient, ReceiptSigner, request_hash
from motet.runtimes import LlamaCppRuntime
from motet.trust import Checker, Evidence, verifier_agent

VERIFY_PRICE = 10**14


class Question(BaseModel):
    text: str


class Topic(BaseModel):
    topic: str = Field(max_length=16)


def labeller(runtime: LlamaCppRuntime) -> Agent:
    agent = Agent("labeller", runtime=runtime, price=PRICE)
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


@dataclass
class Setup:
    agent: Running
    verifier: AgentClient
    payer: ChannelClient
    channel: int
    honest: Evidence


@pytest.fixture
async def setup(chain: Chain, smollm2: LlamaCppRuntime) -> AsyncIterator[Setup]:
    async for running in start(chain, labeller(smollm2)):
        card = await running.client.card()
        channel = running.payer.open(running.server.account.address, 10 * PRICE).channel_id
        call = await running.client.invoke("label", {"text": "cats purr on the mat"}, channel=channel)
        honest = Evidence.from_call(
            running.agent_id, card.capability("label"), {"text": "cats purr on the mat"}, call
        )
        server = AgentServer(
            verifier_agent(Checker([smollm2]), price=VERIFY_PRICE), chain=chain, account=chain.accounts[3]
        )
        async with server.running() as url:
            payer = ChannelClient(chain, chain.accounts[4])
            verify_channel = payer.open(chain.accounts[3].address, 10 * VERIFY_PRICE).channel_id
            async with AgentClient(url, signer=call_signer(payer)) as client:
                yield Setup(running, client, payer, verify_channel, honest)


def forged(setup: Setup, output: dict[str, str], text: str) -> Evidence:
    """Evidence of an answer the model did not give, signed by the agent itself (a cheat it cannot deny)."""
    honest = setup.honest
    receipt = honest.receipt
    signer = ReceiptSigner(bytes(setup.agent.server.account.key), receipt.domain)
    signed = signer.sign(
        request_hash(honest.capability, honest.input, receipt.channel_id, receipt.seq),
        response_hash(output, text),
        receipt.price,
        receipt.channel_id,
        receipt.seq,
        profile_hash(honest.profile),
    )
    return Evidence(honest.agent_id, honest.capability, honest.input, output, text, honest.profile, signed)


@pytest.mark.slow
async def test_the_verifier_sells_verdicts_on_evidence(setup: Setup) -> None:
    assert setup.honest.problem() is None
    card = await setup.verifier.card()
    assert card.capability("verify").verifiable is None  # a Python function: never verifiable itself

    consistent = await setup.verifier.invoke(
        "verify", {"evidence": setup.honest.to_uri()}, channel=setup.channel
    )
    assert consistent.output["verdict"] == "consistent", consistent.output
    assert consistent.output["model"] == setup.honest.model_sha256
    assert isinstance(consistent.output["tokens"], int) and consistent.output["tokens"] > 0
    assert consistent.price == VERIFY_PRICE

    cheat = forged(setup, {"topic": "zebra stripes"}, '{"topic": "zebra stripes"}')
    assert cheat.problem() is None  # it holds together: only re-running shows the model did not say it
    verdict = await setup.verifier.invoke(
        "verify",
        {"evidence": cheat.to_uri()},
        channel=setup.channel,
        payment=setup.payer.sign(setup.channel, consistent.owed),
    )
    assert verdict.output["verdict"] == "cheat", verdict.output
    assert verdict.output["position"] is not None and verdict.output["detail"]
    assert verdict.owed == 2 * VERIFY_PRICE


@pytest.mark.slow
async def test_the_verifier_refuses_evidence_it_cannot_judge_before_any_work(setup: Setup) -> None:
    honest = setup.honest
    other_model = Evidence(
        honest.agent_id,
        honest.capability,
        honest.input,
        honest.output,
        honest.text,
        honest.profile.model_copy(update={"model": {**honest.profile.model, "sha256": "cd" * 32}}),
        honest.receipt,
    )
    cases = {
        "data:application/json;base64,!!": "not base64",
        "https://evil.example/e.json": "not a data:application/json;base64",
        forged(setup, {"topic": "cats"}, '{"topic": "dogs"}').to_uri(): "does not hold together",
        other_model.to_uri(): "does not hold together",
    }
    for uri, message in cases.items():
        with pytest.raises(InvalidAgentInput, match=message):
            await setup.verifier.invoke("verify", {"evidence": uri}, channel=setup.channel)
    # The profile names a model this verifier does not run, and the receipt commits to that profile.
    unknown = forged(setup, honest.output, honest.text)
    unknown_profile = other_model.profile
    signer = ReceiptSigner(bytes(setup.agent.server.account.key), honest.receipt.domain)
    receipt = signer.sign(
        unknown.receipt.request_hash,
        unknown.receipt.response_hash,
        unknown.receipt.price,
        unknown.receipt.channel_id,
        unknown.receipt.seq,
        profile_hash(unknown_profile),
    )
    elsewhere = Evidence(
        honest.agent_id, honest.capability, honest.input, honest.output, honest.text, unknown_profile, receipt
    )
    assert elsewhere.problem() is None
    with pytest.raises(InvalidAgentInput, match="does not run the model cdcdcdcd"):
        await setup.verifier.invoke("verify", {"evidence": elsewhere.to_uri()}, channel=setup.channel)
    # Nothing was owed for any of them: the next call needs no voucher.
    assert setup.payer.ledger.count("signed") == 0
    call = await setup.verifier.invoke("verify", {"evidence": honest.to_uri()}, channel=setup.channel)
    assert (call.seq, call.owed) == (1, VERIFY_PRICE)
