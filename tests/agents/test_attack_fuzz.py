"""`/invoke` and `/pay` fed hypothesis-generated bodies and headers (a real agent server on 127.0.0.1, the
embedded chain, a funded channel whose id the bodies use): every answer is a JSON refusal, never a 5xx;
nothing fails unhandled; no work is done, no voucher is recorded and nothing is owed or paid. A failure the
server did not expect is answered with an incident id only, never the exception's text."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.agents import PRICE, Running, call_signer
from support.agents import Text as TextInput

from motet.agents import Agent, AgentServer, CallContext
from motet.chain import Chain
from motet.payments import ChannelClient, request_hash

Echo = tuple[Running, list[str]]
REFUSALS = {400, 402, 403, 404, 409, 413, 422}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**300), max_value=2**300)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
hex_text = st.text("0123456789abcdefABCDEFx", max_size=140).map(lambda t: "0x" + t)
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80).map(str.strip)


def bodies(running: Running, channel: int) -> st.SearchStrategy[Any]:
    payer, chain = running.payer, running.chain
    stranger = ChannelClient(chain, chain.accounts[4])
    # Real signatures, but never for a request the bodies send: the payer's for another input, a stranger's.
    signed_elsewhere = call_signer(payer).sign(channel, 1, request_hash("echo", {"text": "\x00"}, channel, 1))
    strangers = call_signer(stranger).sign(channel, 1, request_hash("echo", {"text": "hi"}, channel, 1))
    real = st.sampled_from(["0x" + signed_elsewhere.hex(), "0x" + strangers.hex()])
    signatures = real | hex_text | json_values
    voucher = stranger.sign  # a stranger's vouchers: well formed, never the payer's
    stranger_channel = stranger.open(running.server.account.address, PRICE * 10).channel_id
    vouchers = st.sampled_from(
        [voucher(stranger_channel, PRICE).to_dict(), voucher(stranger_channel, 2 * PRICE).to_dict()]
    ).flatmap(
        lambda v: (
            st.sampled_from(sorted(v)).flatmap(
                lambda field: (json_values | hex_text).map(lambda value: {**v, field: value})
            )
            | st.just({**v, "channelId": str(channel)})
        )
    )
    channels = st.sampled_from([hex(channel), str(channel), channel, hex(stranger_channel)]) | json_values
    return st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "capability": st.just("echo") | json_values,
                "input": st.fixed_dictionaries({"text": st.text(max_size=30).filter(lambda t: t != "\x00")})
                | json_values,
                "channel": channels,
            },
            optional={
                "seq": st.integers(min_value=-2, max_value=2**65) | json_values,
                "signature": signatures,
                "payment": vouchers | json_values,
                "stream": st.booleans() | json_values,
                "idempotencyKey": st.text(max_size=140) | json_values,
            },
        ),
        st.fixed_dictionaries(  # well formed but for the caller: a stranger, or the payer for another call
            {
                "capability": st.just("echo"),
                "input": st.fixed_dictionaries({"text": st.sampled_from(["hi", "\x01"])}),
                "channel": st.sampled_from([hex(channel), hex(stranger_channel)]),
                "seq": st.integers(min_value=0, max_value=3),
                "signature": real,
            },
            optional={
                "payment": vouchers,
                "stream": st.booleans(),
                "idempotencyKey": st.sampled_from(["k", "run/1"]),
            },
        ),
        st.fixed_dictionaries({"channel": channels, "payment": vouchers | json_values}),
    )


async def test_fuzzed_invoke_and_pay_never_fail_and_never_pay(
    echo: Echo, chain: Chain, caplog: pytest.LogCaptureFixture
) -> None:
    running, served = echo
    channel = running.payer.open(running.server.account.address, 10 * PRICE).channel_id
    strategy = bodies(running, channel)
    blocks = chain.w3.eth.block_number
    answered: list[int] = []
    deadline = time.monotonic() + 90  # a safety bound for a very slow machine; 150 examples take ~15 s

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        body=strategy,
        path=st.sampled_from(["/invoke", "/pay"]),
        payment_header=st.one_of(st.none(), st.none(), st.none(), header_values, vouchers_header()),
        raw=st.none() | st.binary(max_size=64),
    )
    def check(body: Any, path: str, payment_header: str | None, raw: bytes | None) -> None:
        if time.monotonic() > deadline:
            return
        headers = {"content-type": "application/json"}
        if payment_header is not None:
            headers["x-payment"] = payment_header
        with httpx.Client(base_url=running.url, timeout=30) as http:
            content = raw if raw is not None else json.dumps(body).encode()
            as_json = {"content-type": "application/json"}
            for response in (
                http.post(path, content=content, headers=headers),
                http.post(path, content=json.dumps(body).encode(), headers=as_json),
            ):
                assert response.status_code in REFUSALS, (path, body, response.status_code, response.text)
                answer = response.json()
                assert isinstance(answer.get("error"), str) and answer["error"]
                answered.append(response.status_code)

    with caplog.at_level(logging.WARNING):
        await asyncio.to_thread(check)
    assert len(answered) > 100  # the examples ran (two requests each), not cut short by the deadline
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    # No work, no voucher, nothing owed or paid: no block was mined.
    assert served == []
    assert running.server.channels.ledger.count("received") == 0
    assert running.server.tab.last(channel) == (0, 0)
    assert chain.w3.eth.block_number == blocks


def vouchers_header() -> st.SearchStrategy[str]:
    return json_values.map(json.dumps)


async def test_an_unexpected_failure_answers_an_incident_id_not_its_text(
    chain: Chain, caplog: pytest.LogCaptureFixture
) -> None:
    agent = Agent("leaky", price=PRICE)

    @agent.capability("leak")
    async def leak(request: TextInput, ctx: CallContext) -> TextInput:
        raise RuntimeError("password=hunter2 at /srv/secrets.db")

    server = AgentServer(agent, chain=chain, account=chain.accounts[1])
    payer = ChannelClient(chain, chain.accounts[2])
    channel = payer.open(server.account.address, 10 * PRICE).channel_id
    signer = call_signer(payer)
    body = {
        "capability": "leak",
        "input": {"text": "x"},
        "channel": hex(channel),
        "seq": 1,
        "signature": "0x" + signer.sign(channel, 1, request_hash("leak", {"text": "x"}, channel, 1)).hex(),
    }
    async with server.running() as url, httpx.AsyncClient() as http:
        with caplog.at_level(logging.ERROR, logger="motet.agents.server"):
            answer = await http.post(f"{url}/invoke", json=body)
            streamed = await http.post(f"{url}/invoke", json={**body, "stream": True})
    assert answer.status_code == 500
    incident = answer.json()["incident"]
    assert "hunter2" not in answer.text and "RuntimeError" not in answer.text
    assert "hunter2" not in streamed.text and "incident" in streamed.text
    assert incident in caplog.text and "hunter2" in caplog.text  # the operator's log has it all
    assert server.tab.last(channel) == (0, 0)  # and nothing is owed for it


async def test_channel_ids_that_are_not_integers_are_400(echo: tuple[Running, list[str]]) -> None:
    running, served = echo
    async with httpx.AsyncClient(base_url=running.url) as http:
        for channel in ("Infinity", "-Infinity", "1.5", "1e400", "true", '"0x"', '"' + "9" * 100 + '"'):
            for path, content in (
                ("/invoke", f'{{"capability": "echo", "input": {{"text": "x"}}, "channel": {channel}}}'),
                ("/pay", f'{{"channel": {channel}, "payment": {{}}}}'),
            ):
                response = await http.post(
                    path, content=content, headers={"content-type": "application/json"}
                )
                assert response.status_code == 400, (path, channel, response.text)
                assert response.json()["field"] == "channel", (path, channel, response.text)
    assert served == []


async def test_deeply_nested_json_is_400_and_the_server_lives(echo: tuple[Running, list[str]]) -> None:
    # py_ecc raises the recursion limit to 100,000; the standard library's JSON parser recurses in C and, that
    # deep, overflows the C stack: without a bound, one unauthenticated body killed the agent's process.
    running, served = echo
    deep = b"[" * 200_000 + b"]" * 200_000
    async with httpx.AsyncClient(base_url=running.url) as http:
        for path in ("/invoke", "/pay"):
            response = await http.post(path, content=deep, headers={"content-type": "application/json"})
            assert response.status_code == 400 and "not JSON" in response.json()["error"], response.text
        x_payment = await http.post(
            "/pay", json={"channel": 1}, headers={"x-payment": "[" * 8_000 + "]" * 8_000}
        )
        assert x_payment.status_code == 400, x_payment.text
        assert (await http.get("/.well-known/agent-card.json")).status_code == 200  # still serving
    assert served == []
