"""A gateway on the embedded chain in front of the local market (agents on 127.0.0.1, the real SmolLM2 model),
with a wallet that holds a balance in the channels contract, and helpers that sign what the wallet sends."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from motet.chain import Chain
from motet.demo import Market, local_market, research_brief
from motet.gateway import Gateway
from motet.payments import ChannelDomain, Delegation, DelegationClient, TaskOrder, sign_typed
from motet.registry import Registry
from motet.runtimes import LlamaCppRuntime, Runtime
from motet.settings import GatewayLimits
from motet.units import GWEI

DOCUMENT = "<p>The city opened a new public library downtown. Visitors praised its bright reading rooms.</p>"
DEPOSIT = 10**6 * GWEI
_nonces = itertools.count(1)


@dataclass
class Setup:
    chain: Chain
    market: Market | None
    gateway: Gateway
    url: str
    http: httpx.AsyncClient
    wallet: LocalAccount
    session_key: LocalAccount

    @property
    def domain(self) -> ChannelDomain:
        return self.gateway.domain

    def delegation(
        self, signer: LocalAccount | None = None, **changes: Any
    ) -> tuple[Delegation, dict[str, Any]]:
        """A delegation from the wallet to the gateway's key (cap 1,000 gwei, an hour, any capability), and the
        body part that carries it, signed by `signer` (the wallet by default)."""
        now = self.chain.timestamp()
        values: dict[str, Any] = {
            "delegator": self.wallet.address,
            "session_key": self.session_key.address,
            "cap": 1_000 * GWEI,
            "valid_after": now - 60,
            "expiry": now + 3600,
            "capabilities": ("*",),
            "nonce": next(_nonces),
        }
        values.update(changes)
        delegation = Delegation(**values)
        return delegation, self.signed(delegation.typed_data(self.domain), signer)

    def order(
        self, delegation: Delegation, signer: LocalAccount | None = None, **changes: Any
    ) -> tuple[TaskOrder, dict[str, Any]]:
        """A research-brief order under `delegation` (budget 200 gwei, ten minutes), signed by the wallet."""
        values: dict[str, Any] = {
            "delegation": delegation.digest(self.domain),
            "workflow": "research-brief",
            "inputs": json.dumps({"document": DOCUMENT}),
            "budget": 200 * GWEI,
            "deadline": self.chain.timestamp() + 600,
            "nonce": next(_nonces),
        }
        values.update(changes)
        order = TaskOrder(**values)
        return order, self.signed(order.typed_data(self.domain), signer)

    def signed(self, typed: dict[str, Any], signer: LocalAccount | None = None) -> dict[str, Any]:
        digest = _digest(typed)
        signature = sign_typed(bytes((signer or self.wallet).key), digest)
        return {"typedData": typed, "signature": "0x" + signature.hex()}

    async def post_order(self, delegation: dict[str, Any], order: dict[str, Any]) -> httpx.Response:
        return await self.http.post("/api/orders", json={"delegation": delegation, "order": order})

    async def events(self, order_id: str) -> list[tuple[str, dict[str, Any]]]:
        """Every server-sent event of an order, to the end of its stream."""
        found: list[tuple[str, dict[str, Any]]] = []
        kind = ""
        async with self.http.stream("GET", f"/api/orders/{order_id}/events", timeout=600) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    found.append((kind, json.loads(line.removeprefix("data: "))))
        return found


def _digest(typed: dict[str, Any]) -> bytes:
    """The digest by eth-account, an EIP-712 implementation independent of motet's."""
    from eth_account.messages import encode_typed_data
    from eth_utils.crypto import keccak

    message = encode_typed_data(full_message=typed)
    return bytes(keccak(b"\x19" + message.version + message.header + message.body))


@contextlib.asynccontextmanager
async def gateway_setup(chain: Chain, runtime: Runtime, data_dir: Path | None = None) -> AsyncIterator[Setup]:
    """The market's agents (accounts 1-7), the gateway (session key: account 8), the wallet (account 9) with a
    balance of 1,000,000 gwei in the channels contract."""
    session_key, wallet = chain.accounts[8], chain.accounts[9]
    async with local_market(chain, runtime) as market:
        DelegationClient(chain, wallet).deposit(DEPOSIT)
        gateway = Gateway(
            chain,
            market.registry,
            session_key=session_key,
            workflows={"research-brief": research_brief()},
            data_dir=data_dir,
        )
        async with gateway.running() as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
            yield Setup(chain, market, gateway, url, http, wallet, session_key)


@contextlib.asynccontextmanager
async def bare_gateway(
    chain: Chain, *, limits: GatewayLimits | None = None, data_dir: Path | None = None
) -> AsyncIterator[Setup]:
    """A gateway with no agents in its registry (session key: account 8), for what it refuses before any agent is
    called; the wallet (account 9) has a balance of 1,000,000 gwei in the channels contract."""
    session_key, wallet = chain.accounts[8], chain.accounts[9]
    if DelegationClient(chain).balance(wallet.address) == 0:
        DelegationClient(chain, wallet).deposit(DEPOSIT)
    gateway = Gateway(
        chain,
        Registry(chain),
        session_key=session_key,
        workflows={"research-brief": research_brief()},
        data_dir=data_dir,
        limits=limits,
    )
    async with gateway.running() as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
        yield Setup(chain, None, gateway, url, http, wallet, session_key)


@pytest.fixture
async def setup(chain: Chain, smollm2: LlamaCppRuntime, tmp_path: Path) -> AsyncIterator[Setup]:
    async with gateway_setup(chain, smollm2, tmp_path / "gateway") as running:
        yield running
