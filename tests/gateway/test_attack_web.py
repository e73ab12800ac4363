"""Attacks from web pages and floods on a real gateway on 127.0.0.1 (embedded chain): a page on another site, or
on a DNS name rebound to 127.0.0.1, tries to drive the gateway through the visitor's browser; a client floods it
or sends what no honest client does. Each is refused before any route runs, and nothing is registered or paid."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from support.gateway import Setup, bare_gateway

from motet.chain import Chain
from motet.payments import DelegationClient
from motet.settings import GatewayLimits


@pytest.fixture
async def bare(chain: Chain) -> AsyncIterator[Setup]:
    async with bare_gateway(chain) as running:
        yield running


def nothing_happened(s: Setup, delegation_id: bytes, session_balance: int) -> None:
    """The delegation is not on chain, the session key paid no gas, no gas is counted for the wallet."""
    assert DelegationClient(s.chain).state(delegation_id) is None
    assert s.chain.balance(s.session_key.address) == session_balance
    assert s.gateway.orders.gas.spent(s.wallet.address) == 0


async def test_dns_rebinding_host_is_403(bare: Setup) -> None:
    # evil.example resolves to 127.0.0.1 after the page loaded: the browser sends its own name as the Host.
    port = bare.url.rsplit(":", 1)[1]
    delegation, signed = bare.delegation()
    session_balance = bare.chain.balance(bare.session_key.address)
    rebound = {"Host": f"evil.example:{port}"}
    for method, path, body in (
        ("GET", "/", None),
        ("GET", "/api/config", None),
        ("GET", f"/api/accounts/{bare.wallet.address}", None),
        ("POST", "/api/delegations", signed),
    ):
        response = await bare.http.request(method, path, json=body, headers=rebound)
        assert response.status_code == 403, (path, response.text)
        assert "does not answer to the host 'evil.example:" in response.json()["error"]
    nothing_happened(bare, delegation.digest(bare.domain), session_balance)
    # The gateway's own names keep working, and so do IP addresses (no DNS, so nothing to rebind).
    for host in (
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        f"LOCALHOST:{port}",
        f"10.1.2.3:{port}",
        f"[::1]:{port}",
    ):
        assert (await bare.http.get("/api/config", headers={"Host": host})).status_code == 200


async def test_cross_site_post_is_403(bare: Setup) -> None:
    delegation, signed = bare.delegation()
    session_balance = bare.chain.balance(bare.session_key.address)
    for origin in ("https://evil.example", "null", "http://127.0.0.1:1", bare.url + ".evil.example"):
        response = await bare.http.post("/api/delegations", json=signed, headers={"Origin": origin})
        assert response.status_code == 403, (origin, response.text)
        assert "requests from pages on" in response.json()["error"]
        calls = await bare.http.post(
            "/api/calls", json={"function": "deposit", "amount": "1"}, headers={"Origin": origin}
        )
        assert calls.status_code == 403
    nothing_happened(bare, delegation.digest(bare.domain), session_balance)
    # The gateway's own page (its origin) may post; a client that sends no Origin (the CLI, curl) too.
    own = await bare.http.post("/api/delegations", json=signed, headers={"Origin": bare.url})
    assert own.status_code == 200, own.text
    assert DelegationClient(bare.chain).state(delegation.digest(bare.domain)) is not None


async def test_an_allowed_origin_may_post(chain: Chain) -> None:
    limits = GatewayLimits(origins=("https://wallet.example",))
    async with bare_gateway(chain, limits=limits) as s:
        response = await s.http.post(
            "/api/calls",
            json={"function": "deposit", "amount": "1"},
            headers={"Origin": "https://wallet.example"},
        )
        assert response.status_code == 200, response.text


async def test_non_json_post_is_415(bare: Setup) -> None:
    # A form on any site can post text/plain, urlencoded or multipart without a CORS preflight.
    delegation, signed = bare.delegation()
    session_balance = bare.chain.balance(bare.session_key.address)
    text = json.dumps(signed)
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ):
        headers = {"Content-Type": content_type} if content_type else {}
        response = await bare.http.post("/api/delegations", content=text, headers=headers)
        assert response.status_code == 415, (content_type, response.text)
        assert "must be JSON" in response.json()["error"]
    nothing_happened(bare, delegation.digest(bare.domain), session_balance)
    charset = await bare.http.post(
        "/api/calls",
        content=b'{"function": "deposit", "amount": "1"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 200


async def test_oversized_body_is_413(bare: Setup) -> None:
    limit = bare.gateway.limits.max_body
    huge = {"function": "deposit", "amount": "1", "padding": "x" * limit}
    response = await bare.http.post("/api/calls", json=huge)
    assert response.status_code == 413 and f"over {limit} bytes" in response.json()["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"function": "deposit", "amount": "1", "padding": "'
        for _ in range(limit // 4096 + 2):
            yield b"x" * 4096
        yield b'"}'

    chunked = await bare.http.post(
        "/api/calls", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert chunked.status_code == 413
    assert (
        await bare.http.post("/api/calls", json={"function": "deposit", "amount": "1"})
    ).status_code == 200


async def test_flood_is_rate_limited_429(chain: Chain) -> None:
    async with bare_gateway(chain, limits=GatewayLimits(rate=1.0, burst=5)) as s:
        responses = await asyncio.gather(*(s.http.get("/api/config") for _ in range(12)))
        statuses = [r.status_code for r in responses]
        assert statuses.count(200) == 5 and statuses.count(429) == 7, statuses
        refused = next(r for r in responses if r.status_code == 429)
        assert int(refused.headers["Retry-After"]) >= 1
        assert "too many requests" in refused.json()["error"]
        await asyncio.sleep(1.1)  # the rate refills
        assert (await s.http.get("/api/config")).status_code == 200


async def test_internal_failures_answer_a_generic_message_with_an_id(
    bare: Setup, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("node at http://user:hunter2@10.0.0.5 refused")

    monkeypatch.setattr(bare.gateway.delegations, "balance", broken)
    with caplog.at_level(logging.ERROR, logger="motet.gateway"):
        response = await bare.http.get(f"/api/accounts/{bare.wallet.address}")
    assert response.status_code == 500
    error = response.json()["error"]
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    incident = error.split("incident ")[1].split(";")[0]
    assert any(incident in r.getMessage() for r in caplog.records)
    assert any("hunter2" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    # A malformed address says what is wrong without the library's own text.
    bad = await bare.http.get("/api/accounts/0x12")
    assert bad.status_code == 400 and "not an address (0x + 40 hex digits)" in bad.json()["error"]


async def test_the_gateways_own_page_still_loads_and_posts(bare: Setup) -> None:
    # As a browser on the page sends them: its Origin, Host and JSON.
    headers = {"Origin": bare.url, "Sec-Fetch-Site": "same-origin"}
    assert (await bare.http.get("/", headers=headers)).status_code == 200
    assert (await bare.http.get("/static/app.js", headers=headers)).status_code == 200
    async with httpx.AsyncClient(base_url=bare.url.replace("127.0.0.1", "localhost")) as by_name:
        response = await by_name.post(
            "/api/calls",
            json={"function": "deposit", "amount": "1"},
            headers={"Origin": bare.url.replace("127.0.0.1", "localhost")},
        )
        assert response.status_code == 200, response.text


async def test_deeply_nested_json_is_400_and_the_gateway_lives(bare: Setup) -> None:
    # Under py_ecc's recursion limit (100,000) the standard library's parser overflows the C stack this deep.
    deep = b"[" * 120_000 + b"]" * 120_000
    assert len(deep) < bare.gateway.limits.max_body
    response = await bare.http.post("/api/calls", content=deep, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "not JSON" in response.json()["error"]
    assert (
        await bare.http.post("/api/calls", json={"function": "deposit", "amount": "1"})
    ).status_code == 200
