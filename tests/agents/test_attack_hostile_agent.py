"""A hostile agent against `AgentClient`: a stream that stalls or never ends, more bytes than the client reads,
inflated usage, an overcharge, a receipt signed by someone else or for another chain. Each call ends in a
specific error, and the payer signs nothing for it. The hostile agent is a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from support.agents import PRICE, call_signer, echo_agent, signed_answer

from motet._http import serve
from motet.agents import AgentClient
from motet.agents._client import MAX_ANSWER_BYTES
from motet.chain import Chain
from motet.errors import AgentLimitExceeded, AgentTimeout, InvalidReceipt, MotetError
from motet.payments import (
    ChannelClient,
    ReceiptDomain,
    ReceiptSigner,
)

Answer = Callable[[dict[str, Any], "Hostile"], Awaitable[Response]]


@dataclass
class Hostile:
    """The hostile agent: its key signs receipts in `domain`; `answer` decides what /invoke sends."""

    url: str
    signer: ReceiptSigner
    answer: Answer

    def honest(self, body: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        """A well-formed answer to `body`, with `overrides` (price, usage, signer) signed into its receipt."""
        price = overrides.get("price", PRICE)
        return signed_answer(
            overrides.get("signer") or self.signer,
            body,
            {"echo": body["input"]["text"], "calls": 1},
            price=price,
            owed=price,
            usage=overrides.get("usage", (3, 5)),
        )


@pytest.fixture
async def hostile(chain: Chain) -> AsyncIterator[tuple[Hostile, ChannelClient]]:
    payer = ChannelClient(chain, chain.accounts[2])
    agent_key = chain.accounts[1]
    domain = ReceiptDomain.for_channels(payer.domain)
    agent, _ = echo_agent()

    async def ok(body: dict[str, Any], hostile: Hostile) -> Response:
        return JSONResponse(hostile.honest(body))

    state = Hostile("", ReceiptSigner(bytes(agent_key.key), domain), ok)

    async def card(request: Request) -> Response:
        return Response(
            agent.card(state.url, signer=agent_key.address).to_json(), media_type="application/json"
        )

    async def invoke(request: Request) -> Response:
        return await state.answer(json.loads(await request.body()), state)

    app = Starlette(
        routes=[
            Route("/.well-known/agent-registration.json", card, methods=["GET"]),
            Route("/invoke", invoke, methods=["POST"]),
        ]
    )
    async with serve(app, "127.0.0.1", 0, "hostile agent") as url:
        state.url = url
        yield state, payer


async def attempt(client: AgentClient, payer: ChannelClient, stream: bool = False, **bounds: Any) -> None:
    """What a payer does: call, and sign a voucher for what is owed only if the answer passed every check."""
    tokens: list[str] = []
    call = await client.invoke(
        "echo", {"text": "hi"}, channel=7, on_token=tokens.append if stream else None, **bounds
    )
    payer.sign(7, call.owed)


def sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def test_honest_answer_passes_and_is_signed_for(hostile: tuple[Hostile, ChannelClient]) -> None:
    agent, payer = hostile
    async with AgentClient(agent.url, signer=call_signer(payer)) as client:
        call = await client.invoke("echo", {"text": "hi"}, channel=7, max_price=PRICE, max_tokens=8)
    assert (call.price, call.seq) == (PRICE, 1)  # the checks refuse only what breaks a bound


async def test_stalled_stream_is_cut_with_nothing_signed(hostile: tuple[Hostile, ChannelClient]) -> None:
    agent, payer = hostile

    async def stall(body: dict[str, Any], hostile: Hostile) -> Response:
        async def events() -> AsyncIterator[bytes]:
            yield sse("token", {"text": "{"})
            await asyncio.sleep(3600)

        return StreamingResponse(events(), media_type="text/event-stream")

    agent.answer = stall
    async with AgentClient(agent.url, signer=call_signer(payer), idle_timeout=0.5) as client:
        with pytest.raises(AgentTimeout, match="silent"):
            await attempt(client, payer, stream=True)
    assert payer.ledger.count("signed") == 0


async def test_endless_stream_is_cut_with_nothing_signed(hostile: tuple[Hostile, ChannelClient]) -> None:
    agent, payer = hostile

    async def endless(body: dict[str, Any], hostile: Hostile) -> Response:
        async def events() -> AsyncIterator[bytes]:
            while True:
                yield sse("token", {"text": "x" * 1000})
                await asyncio.sleep(0)

        return StreamingResponse(events(), media_type="text/event-stream")

    agent.answer = endless
    assert MAX_ANSWER_BYTES == 50 * 1024 * 1024  # the default, as the endpoint runtime's
    async with AgentClient(agent.url, signer=call_signer(payer), max_answer_bytes=2_000_000) as client:
        with pytest.raises(AgentLimitExceeded, match="over 2,000,000 bytes"):
            await attempt(client, payer, stream=True)

    # A slow endless stream, each piece inside the idle timeout: the call's deadline ends it.
    async def trickle(body: dict[str, Any], hostile: Hostile) -> Response:
        async def events() -> AsyncIterator[bytes]:
            while True:
                yield sse("token", {"text": "x"})
                await asyncio.sleep(0.05)

        return StreamingResponse(events(), media_type="text/event-stream")

    agent.answer = trickle
    async with AgentClient(agent.url, signer=call_signer(payer), timeout=1.0, idle_timeout=0.5) as client:
        with pytest.raises(AgentTimeout, match="did not end within"):
            await attempt(client, payer, stream=True)

    # An endless line without a newline is bounded by bytes too, not buffered forever.
    async def one_line(body: dict[str, Any], hostile: Hostile) -> Response:
        async def events() -> AsyncIterator[bytes]:
            yield b"data: "
            while True:
                yield b"y" * 65536
                await asyncio.sleep(0)

        return StreamingResponse(events(), media_type="text/event-stream")

    agent.answer = one_line
    async with AgentClient(agent.url, signer=call_signer(payer), max_answer_bytes=2_000_000) as client:
        with pytest.raises(AgentLimitExceeded):
            await attempt(client, payer, stream=True)
    assert payer.ledger.count("signed") == 0


async def test_huge_answer_is_refused_with_nothing_signed(hostile: tuple[Hostile, ChannelClient]) -> None:
    agent, payer = hostile

    async def huge(body: dict[str, Any], hostile: Hostile) -> Response:
        answer = hostile.honest(body)
        answer["padding"] = "z" * 3_000_000
        return JSONResponse(answer)

    agent.answer = huge
    async with AgentClient(agent.url, signer=call_signer(payer), max_answer_bytes=2_000_000) as client:
        with pytest.raises(AgentLimitExceeded, match="bytes"):
            await attempt(client, payer)
    assert payer.ledger.count("signed") == 0


async def test_inflated_usage_and_overcharge_are_refused_with_nothing_signed(
    hostile: tuple[Hostile, ChannelClient],
) -> None:
    agent, payer = hostile

    async def inflated(body: dict[str, Any], hostile: Hostile) -> Response:
        return JSONResponse(hostile.honest(body, usage=(10**9, 10**9)))

    async def overcharge(body: dict[str, Any], hostile: Hostile) -> Response:
        return JSONResponse(hostile.honest(body, price=PRICE * 1000))  # signed into the receipt too

    async with AgentClient(agent.url, signer=call_signer(payer)) as client:
        agent.answer = inflated
        with pytest.raises(AgentLimitExceeded, match="tokens, above the bound"):
            await attempt(client, payer, max_tokens=4096)
        agent.answer = overcharge
        with pytest.raises(AgentLimitExceeded, match="card's pricing charges"):
            await attempt(client, payer)
        with pytest.raises(AgentLimitExceeded, match="above the bound"):
            await attempt(client, payer, max_price=PRICE)
    assert payer.ledger.count("signed") == 0


async def test_wrong_receipt_is_refused_with_nothing_signed(
    hostile: tuple[Hostile, ChannelClient], chain: Chain
) -> None:
    agent, payer = hostile
    domain = ReceiptDomain.for_channels(payer.domain)
    someone_else = ReceiptSigner(bytes(chain.accounts[5].key), domain)

    async def forged(body: dict[str, Any], hostile: Hostile) -> Response:
        return JSONResponse(hostile.honest(body, signer=someone_else))

    async def wrong_seq(body: dict[str, Any], hostile: Hostile) -> Response:
        return JSONResponse(hostile.honest({**body, "seq": int(body["seq"]) + 1}))

    async with AgentClient(agent.url, signer=call_signer(payer)) as client:
        for answer in (forged, wrong_seq):
            agent.answer = answer
            with pytest.raises(InvalidReceipt):
                await attempt(client, payer)
    assert payer.ledger.count("signed") == 0


async def test_receipt_for_another_chain_is_refused(
    hostile: tuple[Hostile, ChannelClient], chain: Chain
) -> None:
    agent, payer = hostile
    key = bytes(chain.accounts[1].key)  # the card's signer, but signing for another chain or contract
    for domain in (
        ReceiptDomain(chain.chain_id + 1, payer.contract.address),
        ReceiptDomain(chain.chain_id, "0x" + "11" * 20),
    ):
        agent.signer = ReceiptSigner(key, domain)
        async with AgentClient(agent.url, signer=call_signer(payer)) as client:
            with pytest.raises(InvalidReceipt, match="expected chain"):
                await attempt(client, payer)
    assert payer.ledger.count("signed") == 0


async def test_errors_are_motet_errors(hostile: tuple[Hostile, ChannelClient]) -> None:
    agent, payer = hostile

    async def garbage(body: dict[str, Any], hostile: Hostile) -> Response:
        return StreamingResponse(iter([b"event: result\ndata: [1, 2\n\n"]), media_type="text/event-stream")

    agent.answer = garbage
    async with AgentClient(agent.url, signer=call_signer(payer)) as client:
        with pytest.raises(MotetError):
            await attempt(client, payer, stream=True)
    assert payer.ledger.count("signed") == 0
