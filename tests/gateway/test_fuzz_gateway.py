"""The gateway's API fed hypothesis-generated bodies, headers and paths (a real gateway on 127.0.0.1, the embedded
chain): every answer is a JSON refusal or a success, never a 500; nothing fails unhandled; and nothing is
registered, paid or spent: the wallet's balance, the session key's and the gas count stay as they were."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.gateway import Setup, bare_gateway

from motet.chain import Chain
from motet.payments import DelegationClient
from motet.settings import GatewayLimits

ANSWERS = {200, 202, 307, 400, 403, 404, 405, 409, 413, 415}
"""Answers, a redirect (a path with a trailing slash) and refusals: never a 5xx."""

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
# Printable ASCII; no leading or trailing space, which the HTTP client itself refuses to send.
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(str.strip)


def mutated(typed: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Real typed data with one field of its message, domain or types replaced."""
    return st.sampled_from(["message", "domain", "primaryType", "types"]).flatmap(
        lambda part: (
            st.sampled_from(sorted(typed["message"])).flatmap(
                lambda field: json_values.map(
                    lambda value: {**typed, "message": {**typed["message"], field: value}}
                )
            )
            if part == "message"
            else json_values.map(lambda value: {**typed, part: value})
        )
    )


def bodies(s: Setup) -> st.SearchStrategy[Any]:
    delegation, signed_delegation = s.delegation()
    _, signed_order = s.order(delegation)
    signed = st.fixed_dictionaries(
        {
            "typedData": mutated(signed_delegation["typedData"]) | mutated(signed_order["typedData"]),
            "signature": st.just(signed_delegation["signature"]) | hex_text | json_values,
        }
    )
    return st.one_of(
        json_values,
        signed,
        st.fixed_dictionaries({"delegation": signed | json_values, "order": signed | json_values}),
        st.fixed_dictionaries(
            {
                "function": st.sampled_from(["deposit", "withdraw", "revoke", "transfer"]) | json_values,
                "amount": json_values | st.integers(min_value=-5, max_value=2**257).map(str),
                "delegation": hex_text | json_values,
            }
        ),
    )


@pytest.fixture
async def fuzzed(chain: Chain) -> Any:
    async with bare_gateway(chain, limits=GatewayLimits(rate=10_000, burst=10_000, max_body=4_096)) as s:
        yield s


async def test_fuzzed_requests_never_fail_and_never_spend(
    fuzzed: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    s = fuzzed
    wallet_balance = DelegationClient(s.chain).balance(s.wallet.address)
    session_balance = s.chain.balance(s.session_key.address)
    blocks = s.chain.w3.eth.block_number
    strategy = bodies(s)
    answered: list[int] = []
    deadline = time.monotonic() + 90  # a safety bound for a very slow machine; 120 examples take ~10 s

    @settings(
        max_examples=120,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        body=strategy,
        path=st.sampled_from(["/api/delegations", "/api/orders", "/api/calls"]),
        content_type=st.sampled_from(["application/json", "application/json; charset=utf-8"]) | header_values,
        origin=st.none() | st.just(s.url) | header_values,
        raw=st.none() | st.binary(max_size=64),
        get_path=st.sampled_from(
            ["/api/accounts/", "/api/orders/", "/api/transactions/", "/api/orders/x/"]
        ).flatmap(lambda prefix: st.text(max_size=70).map(lambda tail: prefix + quote(tail, safe=""))),
    )
    def check(
        body: Any, path: str, content_type: str, origin: str | None, raw: bytes | None, get_path: str
    ) -> None:
        if time.monotonic() > deadline:
            return
        headers = {"Content-Type": content_type}
        if origin is not None:
            headers["Origin"] = origin
        with httpx.Client(base_url=s.url, timeout=30) as http:
            content = raw if raw is not None else json.dumps(body).encode()
            for response in (
                http.post(path, content=content, headers=headers),
                # The same body as JSON (Infinity included, which the server's parser reads as a float).
                http.post(
                    path, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
                ),
                http.get(get_path, headers={"Origin": origin} if origin is not None else {}),
            ):
                assert response.status_code in ANSWERS, (path, body, response.status_code, response.text)
                if response.headers.get("content-type", "").startswith("application/json"):
                    answer = response.json()
                    if response.status_code >= 400:
                        assert isinstance(answer.get("error"), str) and answer["error"]
                answered.append(response.status_code)

    with caplog.at_level(logging.WARNING):
        await asyncio.to_thread(check)
    assert len(answered) > 100  # the examples ran (three requests each), not cut short by the deadline
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    # Nothing registered, opened or paid: no block was mined, every balance is as it was.
    assert s.chain.w3.eth.block_number == blocks
    assert DelegationClient(s.chain).balance(s.wallet.address) == wallet_balance
    assert s.chain.balance(s.session_key.address) == session_balance
    assert s.gateway.orders.gas.spent(s.wallet.address) == 0
    assert s.gateway.orders._db.execute("SELECT COUNT(*) FROM orders").fetchone() == (0,)
