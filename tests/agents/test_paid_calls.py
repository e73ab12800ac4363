"""The whole paid call over real HTTP: register → discover → call → receipt → voucher → redeem."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from support.agents import PRICE, Running, call_signer

from motet.agents import AgentCard, AgentClient
from motet.agents.builtins import Keywords, Summary
from motet.errors import (
    AgentCallFailed,
    InvalidAgentInput,
    PaymentRequired,
    UnknownCapability,
)
from motet.payments import ChannelDomain, ReceiptDomain, VoucherSigner, verify_receipt
from motet.registry import capability_hash

TEXT = "The city council voted to build a new bridge over the river, which will open in 2027."


async def test_register_discover_call_pay_and_redeem_moves_exactly_the_price(summarizer: Running) -> None:
    chain, payer = summarizer.chain, summarizer.payer
    # Discover by capability, read the card from the registry's URI.
    (record,) = summarizer.registry.search("summarize")
    assert record.agent_id == summarizer.agent_id
    assert record.declares(capability_hash("extract_keywords"))
    card = AgentCard.from_uri(record.agent_uri)
    assert card.signer == record.payout
    assert card.model_ref() is not None and card.model_ref().quantization == "Q4_1"  # type: ignore[union-attr]
    channel = payer.open(record.payout, 10 * PRICE)

    async with AgentClient(card.endpoint("motet"), card=card, signer=call_signer(payer)) as client:
        first = await client.invoke(
            "summarize", {"text": TEXT}, channel=channel.channel_id, output_type=Summary
        )
        assert Summary.model_validate(first.output).summary
        assert (first.price, first.owed, first.seq) == (PRICE, PRICE, 1)
        verify_receipt(first.receipt, record.payout)
        assert first.receipt.domain == ReceiptDomain(chain.chain_id, payer.contract.address)
        assert first.usage.completion_tokens > 0
        # The next call carries the voucher for the first.
        second = await client.invoke(
            "extract_keywords",
            {"text": TEXT},
            channel=channel.channel_id,
            payment=payer.sign(channel.channel_id, first.owed),
        )
        Keywords.model_validate(second.output)
        assert (second.owed, second.seq) == (2 * PRICE, 2)
        assert await client.pay(channel.channel_id, payer.sign(channel.channel_id, second.owed)) == 2 * PRICE

    before = chain.balance(record.payout)
    (redemption,) = summarizer.server.channels.redeem()
    assert redemption.paid == 2 * PRICE
    state = payer.channel(channel.channel_id)
    assert state.redeemed == 2 * PRICE
    receipt = chain.last_receipt  # the redeem's
    assert receipt is not None
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert chain.balance(record.payout) - before == 2 * PRICE - gas
    assert summarizer.server.channels.redeem() == []  # nothing is paid twice


async def test_streamed_call_yields_tokens_then_a_verified_result(summarizer: Running) -> None:
    channel = summarizer.payer.open(summarizer.server.account.address, 10 * PRICE)
    tokens: list[str] = []
    call = await summarizer.client.invoke(
        "summarize", {"text": TEXT}, channel=channel.channel_id, on_token=tokens.append
    )
    assert len(tokens) > 2
    assert json.loads("".join(tokens)) == call.output
    assert call.owed == PRICE


async def test_cards_are_served_at_the_well_known_paths(summarizer: Running) -> None:
    async with httpx.AsyncClient() as http:
        card = AgentCard.from_json(
            (await http.get(f"{summarizer.url}/.well-known/agent-registration.json")).content
        )
        a2a = (await http.get(f"{summarizer.url}/.well-known/agent-card.json")).json()
    assert card.registrations[0].agent_id == summarizer.agent_id
    assert {skill["id"] for skill in a2a["skills"]} == {"summarize", "extract_keywords"}
    assert a2a["url"] == summarizer.url


# -- 402: no work without a funded channel and a paid previous call -----------------------------------


async def test_no_channel_is_402_with_requirements_and_no_work(echo: tuple[Running, list[str]]) -> None:
    running, served = echo
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{running.url}/invoke", json={"capability": "echo", "input": {"text": "hi"}}
        )
    assert answer.status_code == 402
    body = answer.json()
    assert body["x402Version"] == 1
    (accepts,) = body["accepts"]
    assert accepts["payTo"] == running.server.account.address
    assert accepts["maxAmountRequired"] == str(PRICE)
    assert accepts["network"] == f"eip155:{running.chain.chain_id}"
    assert accepts["extra"]["channels"] == running.payer.contract.address
    assert "PAYMENT-REQUIRED" in answer.headers
    with pytest.raises(PaymentRequired, match="no channel 0x"):
        await running.client.invoke("echo", {"text": "hi"}, channel=12345)
    assert served == []


async def test_empty_channel_and_channel_to_someone_else_are_402(echo: tuple[Running, list[str]]) -> None:
    running, served = echo
    short = running.payer.open(running.server.account.address, PRICE - 1)
    with pytest.raises(PaymentRequired, match="top it up"):
        await running.client.invoke("echo", {"text": "hi"}, channel=short.channel_id)
    elsewhere = running.payer.open(running.chain.accounts[3].address, 10 * PRICE)
    with pytest.raises(PaymentRequired, match="not this agent"):
        await running.client.invoke("echo", {"text": "hi"}, channel=elsewhere.channel_id)
    assert served == []
    running.payer.topup(short.channel_id, 1)
    call = await running.client.invoke("echo", {"text": "hi"}, channel=short.channel_id)
    assert call.owed == PRICE  # the top-up was seen: the cached state refreshes before refusing


async def test_an_unpaid_delivered_call_blocks_the_next_until_its_voucher(
    echo: tuple[Running, list[str]],
) -> None:
    running, served = echo
    channel = running.payer.open(running.server.account.address, 10 * PRICE).channel_id
    first = await running.client.invoke("echo", {"text": "one"}, channel=channel)
    with pytest.raises(PaymentRequired, match=f"owes {PRICE:,} wei for a delivered call") as caught:
        await running.client.invoke("echo", {"text": "two"}, channel=channel)
    assert caught.value.requirements["accepts"][0]["extra"]["owed"] == str(PRICE)  # type: ignore[index]
    assert served == ["one"]
    second = await running.client.invoke(
        "echo", {"text": "two"}, channel=channel, payment=running.payer.sign(channel, first.owed)
    )
    assert second.output == {"echo": "two", "calls": 2}
    assert served == ["one", "two"]


# -- invalid vouchers are rejected, logged, and pay nothing ---------------------------------------------


async def test_invalid_vouchers_are_rejected_and_logged(
    echo: tuple[Running, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    running, served = echo
    payer, chain = running.payer, running.chain
    agent_address = running.server.account.address
    channel = payer.open(agent_address, 10 * PRICE).channel_id
    other = payer.open(agent_address, 10 * PRICE).channel_id
    first = await running.client.invoke("echo", {"text": "one"}, channel=channel)
    key = bytes(payer.account.key)
    contract = payer.contract.address
    stranger = VoucherSigner(bytes(chain.accounts[4].key), payer.domain)
    bad = {
        "wrong chain": VoucherSigner(key, ChannelDomain(chain.chain_id + 1, contract)).sign(channel, PRICE),
        "wrong contract": VoucherSigner(key, ChannelDomain(chain.chain_id, "0x" + "11" * 20)).sign(
            channel, PRICE
        ),
        "other channel": payer.sign(other, PRICE),
        "bad signature": stranger.sign(channel, PRICE),
    }
    caplog.set_level(logging.WARNING, logger="motet.agents.server")
    for name, voucher in bad.items():
        with pytest.raises(AgentCallFailed, match="invalid voucher") as caught:
            await running.client.invoke("echo", {"text": name}, channel=channel, payment=voucher)
        assert caught.value.status == 400, name
    assert len([r for r in caplog.records if "rejected a voucher" in r.message]) == len(bad)
    good = payer.sign(channel, first.owed)
    second = await running.client.invoke("echo", {"text": "two"}, channel=channel, payment=good)
    assert await running.client.pay(channel, payer.sign(channel, second.owed)) == second.owed
    lower = VoucherSigner(key, payer.domain).sign(channel, second.owed - 1)  # bypasses the payer's ledger
    for voucher in [good, lower]:  # a replay of an older voucher, and a lower amount
        with pytest.raises(AgentCallFailed, match="not above"):
            await running.client.pay(channel, voucher)
    assert served == ["one", "two"]
    (redemption,) = running.server.channels.redeem()
    assert redemption.paid == 2 * PRICE  # exactly the two delivered calls


# -- malformed input: 4xx naming the field, no work, nothing owed ---------------------------------------


async def test_malformed_input_is_4xx_naming_the_field_and_owes_nothing(
    echo: tuple[Running, list[str]],
) -> None:
    running, served = echo
    channel = running.payer.open(running.server.account.address, 10 * PRICE).channel_id
    with pytest.raises(InvalidAgentInput, match="text") as caught:
        await running.client.invoke("echo", {"txt": "hi"}, channel=channel)
    assert caught.value.field == "text"
    with pytest.raises(UnknownCapability):
        await running.client.invoke("summarise", {"text": "hi"}, channel=channel)
    async with httpx.AsyncClient() as http:
        huge = await http.post(
            f"{running.url}/invoke",
            json={"capability": "echo", "input": {"text": "x" * 600_000}, "channel": hex(channel)},
        )
        assert huge.status_code == 413
        not_json = await http.post(f"{running.url}/invoke", content=b"{nope")
        assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]
        unknown = await http.post(
            f"{running.url}/invoke", json={"capability": "echo", "input": {"text": "x"}, "tip": 5}
        )
        assert unknown.status_code == 400 and unknown.json()["field"] == "tip"
    assert served == []
    call = await running.client.invoke("echo", {"text": "ok"}, channel=channel)
    assert call.owed == PRICE  # nothing was owed for the refused calls


async def test_prompt_beyond_the_model_context_is_413_and_owes_nothing(summarizer: Running) -> None:
    channel = summarizer.payer.open(summarizer.server.account.address, 10 * PRICE).channel_id
    long_text = " ".join(f"w{n}q" for n in range(1200))  # 7,289 characters (under MAX_TEXT), 6,090 tokens
    with pytest.raises(InvalidAgentInput, match="context window") as caught:
        await summarizer.client.invoke("summarize", {"text": long_text}, channel=channel)
    assert caught.value.field == "input"
    call = await summarizer.client.invoke("summarize", {"text": TEXT}, channel=channel)
    assert call.owed == PRICE


async def test_an_idempotency_key_returns_the_delivered_answer_without_a_second_charge(
    echo: tuple[Running, list[str]],
) -> None:
    running, served = echo
    payer = running.payer
    channel = payer.open(running.server.account.address, 10 * PRICE).channel_id
    first = await running.client.invoke(
        "echo", {"text": "once"}, channel=channel, idempotency_key="run-1/echo"
    )
    again = await running.client.invoke(
        "echo", {"text": "once"}, channel=channel, idempotency_key="run-1/echo"
    )
    assert again == first
    assert served == ["once"]
    voucher = payer.sign(channel, first.owed)
    assert await running.client.pay(channel, voucher) == PRICE
    assert await running.client.pay(channel, voucher) == PRICE  # sent again after a crash: already held
    with pytest.raises(AgentCallFailed, match="idempotencyKey must be"):
        await running.client.invoke("echo", {"text": "x"}, channel=channel, idempotency_key="k" * 129)
    (redemption,) = running.server.channels.redeem()
    assert redemption.paid == PRICE
