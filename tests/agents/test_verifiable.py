"""Verifiable capabilities: the card publishes the profile, the receipt commits to profile and raw text, and the
client refuses an answer that does not (a hostile agent on real HTTP). Real SmolLM2, real agent server on
127.0.0.1, the embedded chain."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import pytest
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from support.agents import PRICE, Running, call_signer, echo_agent, start

from motet._http import serve
from motet.agents import Agent, AgentCard, AgentClient, VerifiableProfile, profile_hash, response_hash
from motet.chain import Chain
from motet.errors import (
    AgentCallFailed,
    InvalidAgentCard,
    InvalidAgentDefinition,
    InvalidAgentInput,
    InvalidReceipt,
)
from motet.payments import (
    ChannelClient,
    ReceiptDomain,
    ReceiptSigner,
    content_hash,
    request_hash,
    verify_receipt,
)
from motet.runtimes import LlamaCppRuntime, Message, ModelRef

REF = ModelRef("llama.cpp", "0.3.36", "SmolLM2-135M-Instruct", "ab" * 32, "Q4_1")


class Question(BaseModel):
    text: str
    tone: str = "plain"


class Label(BaseModel):
    topic: str = Field(max_length=16)


def labeller(runtime: LlamaCppRuntime | None = None) -> Agent:
    agent = Agent("labeller", runtime=runtime, price=PRICE)
    agent.prompt(
        "label",
        input=Question,
        output=Label,
        instructions="Give the topic of the text in one or two words.",
        template="Text ({tone}): {text}",
        max_tokens=24,
        verifiable=True,
    )
    agent.prompt("free", input=Question, output=Label, instructions="Topic?", max_tokens=24)
    return agent


@pytest.fixture
async def served(chain: Chain, smollm2: LlamaCppRuntime) -> AsyncIterator[Running]:
    async for running in start(chain, labeller(smollm2)):
        yield running


@pytest.mark.slow
async def test_card_publishes_the_profile_and_the_receipt_commits_to_profile_and_text(
    served: Running, smollm2: LlamaCppRuntime
) -> None:
    card = await served.client.card()
    spec = card.capability("label")
    profile = spec.verifiable
    assert profile is not None
    assert profile.model_ref() == smollm2.model_ref == card.model_ref()
    assert profile.output_schema == spec.output_schema == Label.model_json_schema()
    assert (profile.template, profile.max_tokens, profile.temperature) == ("Text ({tone}): {text}", 24, 0.0)
    assert card.capability("free").verifiable is None
    # The card on chain says the same.
    assert AgentCard.from_uri(served.registry.get(served.agent_id).agent_uri).capability("label") == spec
    assert profile.messages({"text": "cats purr", "tone": "plain"}) == [
        Message("system", "Give the topic of the text in one or two words."),
        Message("user", "Text (plain): cats purr"),
    ]

    channel = served.payer.open(served.server.account.address, 10 * PRICE).channel_id
    call = await served.client.invoke("label", {"text": "cats purr", "tone": "plain"}, channel=channel)
    assert call.text is not None and json.loads(call.text) == call.output
    assert call.receipt.model_ref == profile_hash(profile)
    assert call.receipt.response_hash == response_hash(call.output, call.text)
    verify_receipt(call.receipt, card.signer)
    # The agent sent exactly the profile's messages under its sampling: the same model run on them agrees.
    again = await smollm2.complete(
        profile.messages({"text": "cats purr", "tone": "plain"}),
        profile.sampling(),
        schema=profile.output_schema,
    )
    assert again.text == call.text

    # Streamed, the same call gives the same text, token by token, and the result carries it.
    tokens: list[str] = []
    streamed = await served.client.invoke(
        "label",
        {"text": "cats purr", "tone": "plain"},
        channel=channel,
        payment=served.payer.sign(channel, call.owed),
        on_token=tokens.append,
    )
    assert "".join(tokens) == streamed.text == call.text
    assert streamed.receipt.response_hash == response_hash(streamed.output, streamed.text)

    # A capability that is not verifiable keeps today's receipt and carries no text.
    free = await served.client.invoke(
        "free", {"text": "cats purr"}, channel=channel, payment=served.payer.sign(channel, streamed.owed)
    )
    assert free.text is None
    assert free.receipt.response_hash == content_hash(free.output) == response_hash(free.output, None)
    assert free.receipt.model_ref != profile_hash(profile)


async def test_a_verifiable_input_must_render_the_prompt_as_sent(served: Running) -> None:
    """The checker rebuilds the prompt from the input the receipt commits to: a default the template uses
    must be sent, refused (422) before any channel or model work."""
    with pytest.raises(InvalidAgentInput, match="tone is missing"):
        await served.client.invoke("label", {"text": "cats purr"}, channel=7)
    with pytest.raises(InvalidAgentInput, match="send the input as a JSON object"):
        await served.client.invoke("label", '{"text": "cats purr", "tone": "plain"}', channel=7)  # type: ignore[call-overload]


def test_a_verifiable_prompt_is_greedy_with_a_plain_template() -> None:
    agent = Agent("a")
    with pytest.raises(InvalidAgentDefinition, match=r"temperature 0\.7: a verifiable capability is greedy"):
        agent.prompt("x", input=Question, output=Label, instructions="i", temperature=0.7, verifiable=True)
    with pytest.raises(InvalidAgentDefinition, match="conversion or format spec"):
        agent.prompt(
            "y", input=Question, output=Label, instructions="i", template="{text!r}", verifiable=True
        )
    with pytest.raises(InvalidAgentDefinition, match="conversion or format spec"):
        agent.prompt(
            "z", input=Question, output=Label, instructions="i", template="{text:>999999}", verifiable=True
        )
    agent.prompt("w", input=Question, output=Label, instructions="i", temperature=0.7)  # not verifiable: fine
    assert agent.capabilities["w"].verifiable is None


def test_a_verifiable_capability_needs_known_weights() -> None:
    agent = labeller()
    assert (
        agent.card("http://a.example", signer="0x" + "11" * 20, model_ref=REF).capability("label").verifiable
    )
    for ref in (None, ModelRef("openai-endpoint", "1", "m", "unknown", "unknown", "http://e.example")):
        with pytest.raises(InvalidAgentDefinition, match="verifiable but runs on"):
            agent.card("http://a.example", signer="0x" + "11" * 20, model_ref=ref)


def test_python_capabilities_are_never_verifiable() -> None:
    agent, _ = echo_agent()
    card = agent.card("http://a.example", signer="0x" + "11" * 20, model_ref=REF)
    assert agent.capabilities["echo"].verifiable is None
    assert card.capability("echo").verifiable is None
    assert "verifiable" not in json.loads(card.to_json())["capabilities"][0]


def test_the_card_refuses_a_profile_that_does_not_match_it() -> None:
    data = json.loads(labeller().card("http://a.example", signer="0x" + "11" * 20, model_ref=REF).to_json())
    entry = data["capabilities"][0]
    assert entry["verifiable"]["model"]["sha256"] == "ab" * 32
    AgentCard.from_dict(data)

    def broken(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        copy: dict[str, Any] = json.loads(json.dumps(data))
        change(copy)
        return copy

    cases: list[tuple[Callable[[dict[str, Any]], None], str]] = [
        (lambda d: d["capabilities"][0]["verifiable"].update(temperature=0.5), "greedy"),
        (
            lambda d: d["capabilities"][0]["verifiable"].update(outputSchema={"type": "object"}),
            "outputSchema",
        ),
        (lambda d: d["model"].update(sha256="cd" * 32), "another model than the card's"),
        (lambda d: d.pop("model"), "another model than the card's"),
        (lambda d: d["capabilities"][0]["verifiable"]["model"].update(sha256="unknown"), "sha256"),
        (lambda d: d["capabilities"][0]["verifiable"].update(template="{text.__class__}"), "plain field"),
        (lambda d: d["capabilities"][0]["verifiable"].update(seed="0"), "seed"),
        (lambda d: d["capabilities"][0]["verifiable"].update(extra=1), "extra"),
    ]
    for change, message in cases:
        with pytest.raises(InvalidAgentCard, match=message):
            AgentCard.from_dict(broken(change))


# -- a hostile verifiable agent against AgentClient ---------------------------------------------------------


@dataclass
class Hostile:
    url: str
    signer: ReceiptSigner
    profile: VerifiableProfile
    answer: Callable[[dict[str, Any], Hostile], Awaitable[dict[str, Any]]]
    channel: int = 0
    raw: Callable[[Request], Awaitable[Response]] | None = None

    def signed(
        self,
        body: dict[str, Any],
        output: dict[str, Any],
        text: str | None,
        *,
        response: bytes | None = None,
        profile: VerifiableProfile | None = None,
        model: ModelRef = REF,
    ) -> dict[str, Any]:
        channel, seq = int(body["channel"], 16), int(body["seq"])
        receipt = self.signer.sign(
            request_hash(body["capability"], body["input"], channel, seq),
            response if response is not None else response_hash(output, text),
            PRICE,
            channel,
            seq,
            profile_hash(profile or self.profile),
        )
        return {
            "capability": body["capability"],
            "output": output,
            "price": str(PRICE),
            "owed": str(PRICE),
            "seq": seq,
            "usage": {"promptTokens": 20, "completionTokens": 5},
            "model": asdict(model),
            "latencyS": 0.01,
            "receipt": receipt.to_dict(),
            **({"text": text} if text is not None else {}),
        }


@pytest.fixture
async def hostile(chain: Chain) -> AsyncIterator[tuple[Hostile, ChannelClient]]:
    payer = ChannelClient(chain, chain.accounts[2])
    key = chain.accounts[1]
    agent = labeller()
    card = agent.card("http://placeholder.example", signer=key.address, model_ref=REF)
    profile = card.capability("label").verifiable
    assert profile is not None

    async def honest(body: dict[str, Any], state: Hostile) -> dict[str, Any]:
        return state.signed(body, {"topic": "cats"}, '{"topic": "cats"}')

    state = Hostile(
        "", ReceiptSigner(bytes(key.key), ReceiptDomain.for_channels(payer.domain)), profile, honest
    )

    async def serve_card(request: Request) -> Response:
        return Response(
            agent.card(state.url, signer=key.address, model_ref=REF).to_json(), media_type="application/json"
        )

    async def invoke(request: Request) -> Response:
        if state.raw is not None:
            return await state.raw(request)
        return JSONResponse(await state.answer(json.loads(await request.body()), state))

    app = Starlette(
        routes=[
            Route("/.well-known/agent-registration.json", serve_card, methods=["GET"]),
            Route("/invoke", invoke, methods=["POST"]),
        ]
    )
    async with serve(app, "127.0.0.1", 0, "hostile verifiable agent") as url:
        state.url = url
        state.channel = payer.open(key.address, 10 * PRICE).channel_id
        yield state, payer


async def attempt(agent: Hostile, payer: ChannelClient) -> str | None:
    """What a payer does: call, and sign a voucher only for an answer that passed every check."""
    async with AgentClient(agent.url, signer=call_signer(payer)) as client:
        call = await client.invoke("label", {"text": "cats purr", "tone": "plain"}, channel=agent.channel)
    payer.sign(agent.channel, call.owed)
    return call.text


async def test_an_honest_verifiable_answer_passes(hostile: tuple[Hostile, ChannelClient]) -> None:
    agent, payer = hostile
    assert await attempt(agent, payer) == '{"topic": "cats"}'
    assert payer.ledger.count("signed") == 1


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (lambda body, h: h.signed(body, {"topic": "cats"}, None), AgentCallFailed, "no text"),
        (
            lambda body, h: h.signed(body, {"topic": "cats"}, '{"topic": "dogs"}'),
            AgentCallFailed,
            "text is not",
        ),
        (lambda body, h: h.signed(body, {"topic": "cats"}, "not json"), AgentCallFailed, "text is not"),
        (lambda body, h: h.signed(body, {"topic": "cats"}, "[" * 200_000), AgentCallFailed, "text is not"),
        (
            lambda body, h: h.signed(
                body, {"topic": "cats"}, '{"topic": "cats"}', response=content_hash({"topic": "cats"})
            ),
            InvalidReceipt,
            "response hash",
        ),
        (
            lambda body, h: h.signed(
                body,
                {"topic": "cats"},
                '{"topic": "cats"}',
                profile=h.profile.model_copy(update={"max_tokens": 64}),
            ),
            InvalidReceipt,
            "model reference",
        ),
        (
            lambda body, h: h.signed(
                body,
                {"topic": "cats"},
                '{"topic": "cats"}',
                model=ModelRef("llama.cpp", "0.3.36", "Other", "cd" * 32, "Q8_0"),
            ),
            InvalidReceipt,
            "verifiable on",
        ),
    ],
    ids=[
        "no-text",
        "other-text",
        "text-not-json",
        "deep-text",
        "output-only-hash",
        "other-profile",
        "other-model",
    ],
)
async def test_the_client_refuses_an_answer_that_breaks_the_profile(
    hostile: tuple[Hostile, ChannelClient],
    answer: Callable[[dict[str, Any], Hostile], dict[str, Any]],
    error: type[Exception],
    message: str,
) -> None:
    agent, payer = hostile

    async def reply(body: dict[str, Any], state: Hostile) -> dict[str, Any]:
        return answer(body, state)

    agent.answer = reply
    with pytest.raises(error, match=message):
        await attempt(agent, payer)
    assert payer.ledger.count("signed") == 0


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
async def test_a_deeply_nested_answer_is_refused_without_crashing_the_payer(
    hostile: tuple[Hostile, ChannelClient], stream: bool
) -> None:
    """Under the recursion limit py_ecc sets (100,000), the standard library's JSON parser would recurse in C
    until the payer's process died; the client bounds nesting first."""
    agent, payer = hostile
    deep = b"[" * 200_000 + b"]" * 200_000

    async def reply(request: Request) -> Response:
        if stream:
            return Response(b"event: result\ndata: " + deep + b"\n\n", media_type="text/event-stream")
        return Response(deep, media_type="application/json")

    agent.raw = reply
    tokens: list[str] = []
    async with AgentClient(agent.url, signer=call_signer(payer)) as client:
        with pytest.raises(AgentCallFailed, match="not JSON"):
            await client.invoke(
                "label",
                {"text": "cats purr", "tone": "plain"},
                channel=agent.channel,
                on_token=tokens.append if stream else None,
            )
    assert payer.ledger.count("signed") == 0
