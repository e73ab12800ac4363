"""Orders that could strand money or the gateway: one whose deadline outlives its delegation, one a crashed gateway
left running (its budget reserved for ever), runs that stream without end, and a slow chain node that would stall
every request while one waits on it. Real gateway on 127.0.0.1, embedded chain (anvil for the slow node)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from support.gateway import bare_gateway

from motet.chain import Chain
from motet.gateway._runs import OrderRun
from motet.payments import DelegationClient
from motet.settings import GatewayLimits
from motet.units import GWEI


async def test_order_outliving_its_delegation_is_refused(chain: Chain) -> None:
    async with bare_gateway(chain) as s:
        now = chain.timestamp()
        delegation, signed_delegation = s.delegation(expiry=now + 600)
        _, signed_order = s.order(delegation, deadline=now + 3600)
        before = chain.balance(s.session_key.address)
        response = await s.post_order(signed_delegation, signed_order)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert f"is after its delegation's expiry {now + 600}" in error and "earlier deadline" in error
        # Refused before anything: not registered, no gas, nothing reserved.
        delegation_id = delegation.digest(s.domain)
        assert DelegationClient(chain).state(delegation_id) is None
        assert chain.balance(s.session_key.address) == before
        assert s.gateway.orders.committed(delegation_id) == 0


async def test_restart_releases_stale_order_reservations(chain: Chain, tmp_path: Path) -> None:
    data_dir = tmp_path / "gateway"
    async with bare_gateway(chain, data_dir=data_dir) as s:
        delegation, signed = s.delegation(cap=200 * GWEI)
        assert (await s.http.post("/api/delegations", json=signed)).status_code == 200
        delegation_id = delegation.digest(s.domain)
        # The gateway crashes mid-run: the order's row says 'running', and nothing will ever record its end.
        s.gateway.orders._db.execute(
            "INSERT INTO orders (id, delegator, nonce, delegation, budget, status, created) "
            "VALUES ('crashed', ?, '7', ?, ?, 'running', ?)",
            (s.wallet.address, "0x" + delegation_id.hex(), str(200 * GWEI), time.time()),
        )
        assert s.gateway.orders.committed(delegation_id) == 200 * GWEI  # the whole cap held

    async with bare_gateway(chain, data_dir=data_dir) as restarted:
        assert restarted.gateway.orders.committed(delegation_id) == 0  # released
        record = (await restarted.http.get("/api/orders/crashed")).json()
        assert record["status"] == "failed" and record["spent"] == "0"
        assert "stopped before the run finished" in record["error"]
        # The nonce stays used: the crashed order cannot be replayed.
        assert restarted.gateway.orders._nonce_used(s.wallet.address, 7)


def test_run_history_is_bounded() -> None:
    run = OrderRun(max_events=50, max_bytes=20_000)
    run.publish("accepted", {"id": "x"})
    for _ in range(10_000):  # an agent that streams for ever, in big pieces
        run.publish("text_delta", {"node": "summarize", "text": "y" * 1_000})
    run.publish("node_done", {"node": "summarize"})
    run.publish("result", {"outputs": {"summary": "short"}})
    kinds = [kind for kind, _ in run.events]
    assert len(run.events) <= 52 and kinds[0] == "accepted" and kinds[-2:] == ["node_done", "result"]
    assert sum(len(json.dumps(data)) for _, data in run.events) <= 20_000 + 200
    assert run.dropped == 10_000 - kinds.count("text_delta") > 9_000


async def test_gateway_keeps_the_events_of_a_bounded_number_of_runs(chain: Chain) -> None:
    async with bare_gateway(chain, limits=GatewayLimits(runs_kept=2)) as s:
        runs = s.gateway._runs
        for n in range(5):
            run = runs[f"old{n}"] = OrderRun()
            run.publish("result", {"n": n})
            run.finish()
        runs["live"] = OrderRun()  # still running: never forgotten
        s.gateway._forget_old_runs()  # as each new order is accepted
        assert sorted(runs) == ["live", "old4"]  # room for the new one: at most 2 finished
        gone = await s.http.get("/api/orders/old0/events")
        assert gone.status_code == 404 and "GET /api/orders/old0" in gone.json()["error"]
        kept = await s.http.get("/api/orders/old4/events")
        assert kept.status_code == 200 and '"n": 4' in kept.text


@pytest.mark.anvil
async def test_a_slow_chain_call_does_not_stall_other_requests(
    anvil_chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On a node (anvil): its calls wait on the network, so they run on worker threads.
    async with bare_gateway(anvil_chain) as s:
        real_signed_by = s.gateway.delegations.signed_by

        def slow_balance(*args: Any, **kwargs: Any) -> int:
            time.sleep(3)  # a node that takes its time
            return 0

        def slow_signed_by(*args: Any) -> bool:
            time.sleep(3)
            return real_signed_by(*args)

        monkeypatch.setattr(s.gateway.delegations, "balance", slow_balance)
        waiting = asyncio.create_task(s.http.get(f"/api/accounts/{s.wallet.address}"))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        config = await s.http.get("/api/config")
        assert config.status_code == 200 and time.monotonic() - started < 1.5
        assert not waiting.done()
        assert (await waiting).status_code == 200
        monkeypatch.undo()

        # An order stuck on a slow signature check holds up no other order.
        delegation, signed_delegation = s.delegation()
        monkeypatch.setattr(s.gateway.delegations, "signed_by", slow_signed_by)
        slow_order = asyncio.create_task(s.post_order(signed_delegation, s.order(delegation)[1]))
        await asyncio.sleep(0.3)
        monkeypatch.setattr(s.gateway.delegations, "signed_by", real_signed_by)
        started = time.monotonic()
        other = await s.post_order(signed_delegation, s.order(delegation, workflow="nope")[1])
        assert other.status_code == 400 and time.monotonic() - started < 1.5, other.text
        assert not slow_order.done()
        await slow_order
