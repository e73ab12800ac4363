"""Attacks on who is served (O6): strangers on someone else's channel, replayed and reordered calls, idempotency
keys reused for other requests, channels in an asset the agent does not price in. Real agent server on
127.0.0.1, embedded chain; each test asserts that the attacker gets no work and nobody owes anything."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from support.agents import PRICE, Running, call_signer
from support.channels import CONTRACTS_DIR

from motet.agents import AgentClient
from motet.errors import InvalidCallSignature, PaymentRequired
from motet.payments import (
    CALL_TYPE,
    Call,
    CallSigner,
    ChannelClient,
    ChannelDomain,
    Delegation,
    DelegationClient,
    recover_call_signer,
    request_hash,
    sign_typed,
)

Echo = tuple[Running, list[str]]


def signed_body(signer: CallSigner, channel: int, seq: int, text: str, **extra: Any) -> dict[str, Any]:
    """An /invoke body for `echo`, signed by `signer` as call `seq` on `channel`."""
    value = {"text": text}
    signature = signer.sign(channel, seq, request_hash("echo", value, channel, seq))
    return {
        "capability": "echo",
        "input": value,
        "channel": hex(channel),
        "seq": seq,
        "signature": "0x" + signature.hex(),
        **extra,
    }


def owed(running: Running, channel: int) -> int:
    return running.server._owed(channel)


async def test_stranger_cannot_spend_someone_elses_channel(echo: Echo) -> None:
    running, served = echo
    channel = running.payer.open(running.server.account.address, 10 * PRICE).channel_id
    stranger = ChannelClient(running.chain, running.chain.accounts[4])
    async with httpx.AsyncClient() as http:
        # Unsigned, as the call used to be: refused before any work.
        unsigned = {"capability": "echo", "input": {"text": "free"}, "channel": hex(channel)}
        answer = await http.post(f"{running.url}/invoke", json=unsigned)
        assert answer.status_code == 400 and answer.json()["field"] == "seq"
        # Signed, but by a stranger: 403, no output in the body.
        answer = await http.post(
            f"{running.url}/invoke", json=signed_body(call_signer(stranger), channel, 1, "free")
        )
        assert answer.status_code == 403 and "output" not in answer.json()
        # A signature that does not recover (all zeros), and one for another chain: refused too.
        zero = {**signed_body(call_signer(stranger), channel, 1, "free"), "signature": "0x" + "00" * 65}
        assert (await http.post(f"{running.url}/invoke", json=zero)).status_code == 400
        elsewhere = CallSigner(
            bytes(running.payer.account.key),
            ChannelDomain(running.chain.chain_id + 1, running.payer.contract.address),
        )
        answer = await http.post(f"{running.url}/invoke", json=signed_body(elsewhere, channel, 1, "free"))
        assert answer.status_code == 403
    # Through the client too: the stranger's AgentClient gets a specific error.
    async with AgentClient(running.url, signer=call_signer(stranger)) as client:
        with pytest.raises(InvalidCallSignature, match="refused the call's signature"):
            await client.invoke("echo", {"text": "free"}, channel=channel)
    assert served == []
    assert owed(running, channel) == 0  # the real payer is billed nothing
    call = await running.client.invoke("echo", {"text": "mine"}, channel=channel)
    assert (call.seq, call.owed) == (1, PRICE)
    assert served == ["mine"]


async def test_stranger_cannot_read_a_delivered_answer(echo: Echo) -> None:
    running, served = echo
    channel = running.payer.open(running.server.account.address, 10 * PRICE).channel_id
    await running.client.invoke("echo", {"text": "secret"}, channel=channel, idempotency_key="run-1/echo")
    stranger = call_signer(ChannelClient(running.chain, running.chain.accounts[4]))
    async with httpx.AsyncClient() as http:
        for seq in (1, 2):
            body = signed_body(stranger, channel, seq, "secret", idempotencyKey="run-1/echo")
            answer = await http.post(f"{running.url}/invoke", json=body)
            assert answer.status_code == 403, answer.text
            assert "secret" not in answer.text
        unsigned = {"capability": "echo", "input": {"text": "secret"}, "channel": hex(channel)}
        answer = await http.post(f"{running.url}/invoke", json={**unsigned, "idempotencyKey": "run-1/echo"})
        assert answer.status_code == 400 and "secret" not in answer.text
    assert served == ["secret"]
    assert owed(running, channel) == PRICE


async def test_idempotency_key_with_another_request_is_409(echo: Echo) -> None:
    running, served = echo
    payer = running.payer
    channel = payer.open(running.server.account.address, 10 * PRICE).channel_id
    first = await running.client.invoke("echo", {"text": "one"}, channel=channel, idempotency_key="k")
    await running.client.pay(channel, payer.sign(channel, first.owed))
    async with httpx.AsyncClient() as http:
        body = signed_body(call_signer(payer), channel, 2, "two", idempotencyKey="k")
        answer = await http.post(f"{running.url}/invoke", json=body)
    assert answer.status_code == 409 and answer.json()["field"] == "idempotencyKey"
    assert "one" not in answer.text
    assert served == ["one"]
    assert owed(running, channel) == PRICE
    # The same key with the same request, signed for the next number: the delivered answer, no second run.
    again = await running.client.invoke("echo", {"text": "one"}, channel=channel, idempotency_key="k")
    assert again == first and served == ["one"]


async def test_replayed_call_signature_is_refused(echo: Echo) -> None:
    running, served = echo
    payer = running.payer
    channel = payer.open(running.server.account.address, 10 * PRICE).channel_id
    body = signed_body(call_signer(payer), channel, 1, "once")
    async with httpx.AsyncClient() as http:
        delivered = await http.post(f"{running.url}/invoke", json=body)
        assert delivered.status_code == 200 and delivered.json()["seq"] == 1
        voucher = payer.sign(channel, int(delivered.json()["owed"]))
        assert (
            await http.post(
                f"{running.url}/pay", json={"channel": hex(channel), "payment": voucher.to_dict()}
            )
        ).status_code == 200
        replayed = await http.post(f"{running.url}/invoke", json=body)  # the same signed call, again
        assert replayed.status_code == 409 and replayed.json()["nextSeq"] == 2
        # A call signed for a number ahead of the next (to be spent later) is refused as well.
        ahead = await http.post(
            f"{running.url}/invoke", json=signed_body(call_signer(payer), channel, 5, "later")
        )
        assert ahead.status_code == 409 and ahead.json()["nextSeq"] == 2
        # Tampering with the signed request (another input under the same signature) is another signer.
        tampered = {**body, "seq": 2, "input": {"text": "changed"}}
        assert (await http.post(f"{running.url}/invoke", json=tampered)).status_code == 403
    assert served == ["once"]
    assert owed(running, channel) == PRICE  # one call, paid once
    # The payer's client learns the number from the 409 and goes on.
    call = await running.client.invoke("echo", {"text": "next"}, channel=channel)
    assert call.seq == 2 and served == ["once", "next"]


async def test_a_resuming_payer_gets_its_delivered_answer_with_a_fresh_client(echo: Echo) -> None:
    running, served = echo
    channel = running.payer.open(running.server.account.address, 10 * PRICE).channel_id
    first = await running.client.invoke("echo", {"text": "a"}, channel=channel, idempotency_key="r/1")
    async with AgentClient(running.url, signer=call_signer(running.payer)) as fresh:  # knows no numbers
        again = await fresh.invoke("echo", {"text": "a"}, channel=channel, idempotency_key="r/1")
        assert again == first
        await fresh.pay(channel, running.payer.sign(channel, first.owed))
        second = await fresh.invoke("echo", {"text": "b"}, channel=channel)
    assert second.seq == 2 and served == ["a", "b"]


async def test_channel_in_a_worthless_asset_is_402(echo: Echo) -> None:
    running, served = echo
    chain, payer = running.chain, running.payer
    token = chain.deploy(CONTRACTS_DIR / "TestToken.vy", sender=chain.accounts[0])
    chain.send(token.functions.mint(payer.address, 10**24), sender=chain.accounts[0])
    channel = payer.open(running.server.account.address, 10**21, asset=token.address).channel_id
    with pytest.raises(PaymentRequired, match=f"holds the asset {token.address}") as caught:
        await running.client.invoke("echo", {"text": "worthless"}, channel=channel)
    accepts: Any = caught.value.requirements["accepts"]
    assert accepts[0]["asset"] == running.server.agent.asset
    assert served == []
    assert owed(running, channel) == 0


def test_call_signatures_are_eip712_and_cost_well_under_a_millisecond() -> None:
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    domain = ChannelDomain(31337, "0x" + "11" * 20)
    signer = CallSigner("0x" + "01" * 32, domain)
    digest = request_hash("echo", {"text": "hi"}, channel_id=7, seq=3)
    signature = signer.sign(7, 3, digest)
    typed = Call(7, 3, digest).typed_data(domain)
    assert typed["types"]["Call"] == [
        {"name": "channelId", "type": "uint256"},
        {"name": "seq", "type": "uint256"},
        {"name": "requestHash", "type": "bytes32"},
    ]
    assert CALL_TYPE == "Call(uint256 channelId,uint256 seq,bytes32 requestHash)"
    assert (
        Account.recover_message(encode_typed_data(full_message=typed), signature=signature) == signer.address
    )
    started = time.perf_counter()
    for _ in range(1_000):
        assert recover_call_signer(domain, 7, 3, digest, signature) == signer.address
    per_call = (time.perf_counter() - started) / 1_000
    print(f"call signature check: {per_call * 1e6:.0f} µs per call")
    assert per_call < 1e-3


async def test_stranger_and_delegator_cannot_spend_a_delegated_channel(echo: Echo) -> None:
    running, served = echo
    chain = running.chain
    wallet, session = chain.accounts[5], chain.accounts[6]
    DelegationClient(chain, wallet).deposit(20 * PRICE)
    now = chain.timestamp()
    delegation = Delegation(
        delegator=wallet.address,
        session_key=session.address,
        cap=10 * PRICE,
        valid_after=now - 1,
        expiry=now + 3600,
        capabilities=("echo",),
        nonce=1,
    )
    signature = sign_typed(bytes(wallet.key), delegation.digest(running.payer.domain))
    delegation_id = DelegationClient(chain, session).register(delegation, signature)
    session_channels = ChannelClient(chain, session)
    channel = session_channels.open(
        running.server.account.address,
        5 * PRICE,
        delegation=delegation_id,
        agent_id=running.agent_id,
        capability="echo",
    ).channel_id
    refused = {
        "a stranger": call_signer(ChannelClient(chain, chain.accounts[4])),
        "the delegator, whose session key signs this channel's calls": call_signer(
            ChannelClient(chain, wallet)
        ),
    }
    for who, signer in refused.items():
        async with AgentClient(running.url, signer=signer) as client:
            with pytest.raises(InvalidCallSignature):
                await client.invoke("echo", {"text": who}, channel=channel)
    assert served == []
    async with AgentClient(running.url, signer=call_signer(session_channels)) as client:
        call = await client.invoke("echo", {"text": "session"}, channel=channel)
        await client.pay(channel, session_channels.sign(channel, call.owed))
    assert served == ["session"] and call.owed == PRICE
