"""Making the gateway's session key pay gas: anyone can post delegations (each registration is a transaction the
session key pays for) and orders (channels opened, runs settled). The gas it pays is counted per wallet and
refused past `GatewayLimits.gas_per_wallet`; a wallet with nothing deposited gets nothing registered."""

from __future__ import annotations

import sqlite3
from typing import cast

import pytest
from eth_account import Account
from support.gateway import bare_gateway

from motet.chain import Chain
from motet.errors import OrderRefused
from motet.gateway._gas import GasMeter, MeteredChain
from motet.payments import DelegationClient
from motet.settings import GatewayLimits
from motet.units import GWEI


async def test_gas_budget_per_wallet_is_enforced(chain: Chain) -> None:
    async with bare_gateway(chain, limits=GatewayLimits(gas_per_wallet=1)) as s:
        key = s.session_key.address
        first, signed_first = s.delegation()
        before = chain.balance(key)
        registered = await s.http.post("/api/delegations", json=signed_first)
        assert registered.status_code == 200 and registered.json()["tx"], registered.text
        paid = before - chain.balance(key)
        # What the session key paid is what the gateway counts for the wallet, to the wei.
        assert paid > 0 and s.gateway.orders.gas.spent(s.wallet.address) == paid

        # The wallet's budget is spent: another delegation, or an order, makes the session key pay nothing more.
        second, signed_second = s.delegation()
        refused = await s.http.post("/api/delegations", json=signed_second)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"].startswith("gas budget spent: this gateway has paid")
        order = await s.post_order(signed_first, s.order(first)[1])
        assert order.status_code == 403 and "gas budget spent" in order.json()["error"]
        assert DelegationClient(chain).state(second.digest(s.domain)) is None
        assert chain.balance(key) == before - paid

        # Each wallet has its own budget.
        other = chain.accounts[7]
        DelegationClient(chain, other).deposit(10 * GWEI)
        _, signed_other = s.delegation(delegator=other.address, signer=other)
        assert (await s.http.post("/api/delegations", json=signed_other)).status_code == 200


async def test_a_wallet_with_nothing_deposited_gets_no_delegation_registered(chain: Chain) -> None:
    # Fresh wallets cost nothing to make: without a deposit, none makes the session key pay for a registration.
    async with bare_gateway(chain) as s:
        stranger = Account.create()
        before = chain.balance(s.session_key.address)
        delegation, signed = s.delegation(delegator=stranger.address, signer=stranger)
        response = await s.http.post("/api/delegations", json=signed)
        assert response.status_code == 403 and "deposit first" in response.json()["error"]
        assert DelegationClient(chain).state(delegation.digest(s.domain)) is None
        assert chain.balance(s.session_key.address) == before
        assert s.gateway.orders.gas.spent(stranger.address) == 0


def test_the_session_key_sends_nothing_more_for_a_wallet_past_its_budget(chain: Chain) -> None:
    # Mid-run, every transaction for the wallet (a channel opened or topped up) goes through its meter.
    wallet, key = chain.accounts[9].address, chain.accounts[8]
    meter = GasMeter(sqlite3.connect(":memory:"), budget=1)
    client = DelegationClient(cast(Chain, MeteredChain(chain, meter, wallet)), key)
    client.deposit(GWEI, owner=wallet)  # within the budget: sent, and counted
    spent = meter.spent(wallet)
    assert spent > 0
    before = chain.balance(key.address)
    with pytest.raises(OrderRefused, match="gas budget spent") as refused:
        client.deposit(GWEI, owner=wallet)
    assert refused.value.status == 403
    assert chain.balance(key.address) == before and meter.spent(wallet) == spent
