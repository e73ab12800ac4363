"""The task gateway: runs wallet-signed task orders under their delegation, with the gateway's session key.

A wallet sends a signed `Delegation` and a signed `TaskOrder`; the gateway checks both and reserves the order's
budget (`_orders`), runs the workflow paying each call with vouchers the session key signs on the delegator's
channels, settles, and keeps the outcome (`_runs`). Progress streams as server-sent events; the signing page
(`static/`) is served at `/`, and builds the wallet's own transactions through `/api/calls` (`_wallet`).
Every request passes the `GatewayLimits` first (`_guard`: host, origin, JSON, size, rate), and the gas the
session key spends is counted per wallet (`_gas`). A node's chain calls run on worker threads, never on the
event loop (`Chain.off_loop`).

Routes:

- `GET /` — the signing page; `GET /api/config` — chain, contract, session key, EIP-712 types, workflows.
- `GET /api/accounts/{address}` — a wallet's balance in the channels contract and its delegations.
- `POST /api/delegations` — a signed delegation, registered on chain if new.
- `POST /api/orders` — a signed delegation and a signed task order: `202` with the order's id, or a refusal.
- `GET /api/orders/{id}` — an order's outcome; `GET /api/orders/{id}/events` — its events as they happen.
- `POST /api/calls` — an unsigned deposit, withdraw or revoke for the wallet to send.
- `GET /api/transactions/{hash}` — whether a transaction the wallet sent is mined.

Example:
    >>> gateway = Gateway(chain, registry, session_key=key, workflows={"research-brief": research_brief()})
    >>> async with gateway.running(port=8402) as url:
    ...     ...
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
from pathlib import Path
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from motet._http import serve
from motet._json import loads
from motet.chain import NATIVE_ASSET, Chain
from motet.composer import Payer, Workflow
from motet.errors import MotetError, OrderRefused
from motet.gateway._gas import MeteredChain
from motet.gateway._guard import Guard, failure_message, incident_id
from motet.gateway._orders import OrderDesk, signed_part
from motet.gateway._runs import OrderRun, run_order
from motet.gateway._wallet import transaction_status, wallet_transaction
from motet.payments import DELEGATION_TYPE, TASK_ORDER_TYPE, DelegationClient, Ledger, eip712_fields
from motet.registry import Registry
from motet.settings import GatewayLimits

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
HEX20 = re.compile(r"0x[0-9a-fA-F]{40}")
WORKFLOWS_FRESH = 10.0
"""Seconds `/api/config` reuses its list of workflows and their worst cases."""


class Gateway:
    """Runs wallet-signed task orders; see the module docstring.

    Args:
        chain: where the channels contract and the registry are.
        registry: where agents are found.
        session_key: the key delegations are made to; it signs vouchers and pays the gas of registering
            delegations, opening channels and settling.
        workflows: the workflows orders can name.
        data_dir: where orders, calls and vouchers are kept (None: in memory, lost on exit).
        call_timeout: seconds for one agent call.
        limits: what it accepts from the network (hosts, origins, body size, request rate), the gas it spends
            per wallet and the history it keeps; `GatewayLimits()` by default.
    """

    def __init__(
        self,
        chain: Chain,
        registry: Registry,
        *,
        session_key: LocalAccount,
        workflows: Mapping[str, Workflow],
        data_dir: str | Path | None = None,
        call_timeout: float = 120.0,
        limits: GatewayLimits | None = None,
    ) -> None:
        self.chain = chain
        self.registry = registry
        self.session_key = session_key
        self.workflows = dict(workflows)
        self.delegations = DelegationClient(chain, session_key)
        self.domain = self.delegations.domain
        self.call_timeout = call_timeout
        self.limits = limits or GatewayLimits()
        self._dir = Path(data_dir) if data_dir is not None else None
        if self._dir is not None:
            self._dir.mkdir(parents=True, exist_ok=True)
        self.orders = OrderDesk(
            chain,
            registry,
            self.delegations,
            workflows=self.workflows,
            payer=self._payer,
            path=self._path("gateway.sqlite"),
            gas_per_wallet=self.limits.gas_per_wallet,
        )
        self._ledger = Ledger(self._path("vouchers.sqlite"))
        self._payers: dict[bytes, Payer] = {}
        self._runs: dict[str, OrderRun] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stale = self.orders.release_stale()
        self._workflows_listed: tuple[float, list[dict[str, Any]]] | None = None
        self.routes = Starlette(
            routes=[
                Route("/", self._page),
                Route("/api/config", self._config),
                Route("/api/accounts/{address}", self._account),
                Route("/api/delegations", self._post_delegation, methods=["POST"]),
                Route("/api/orders", self._post_order, methods=["POST"]),
                Route("/api/orders/{order_id}", self._get_order),
                Route("/api/orders/{order_id}/events", self._order_events),
                Route("/api/calls", self._post_call, methods=["POST"]),
                Route("/api/transactions/{tx_hash}", self._transaction),
                Mount("/static", StaticFiles(directory=STATIC)),
            ],
            exception_handlers={OrderRefused: self._refused, Exception: self._failed},  # type: ignore[dict-item]
        )
        self.guard = Guard(self.routes, self.limits)
        self.app = self.guard

    def _path(self, name: str) -> str:
        return str(self._dir / name) if self._dir is not None else ":memory:"

    @contextlib.asynccontextmanager
    async def running(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve on `host:port` (0: a free port) until the block ends; yields the base URL. Runs still going
        at the end are cancelled (their paid calls are recorded, and settled when they are resumed)."""
        if host and not _unspecified(host):
            self.guard.hosts.add(host.strip("[]").lower())
        if self._stale:
            self._start(self._settle_stale(self._stale))
            self._stale = []
        try:
            async with serve(self.app, host, port, "gateway") as url:
                yield url
        finally:
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(BaseException):
                    await task
            for payer in self._payers.values():
                await payer.aclose()

    async def submit(self, signed_delegation: object, signed_order: object) -> str:
        """Check and start an order; returns its id. Raises `OrderRefused` saying why an order is not taken.

        Each part is what the wallet signed and sends: `{"typedData": ..., "signature": "0x..."}`.
        """
        accepted = await self.orders.accept(signed_delegation, signed_order)
        self._forget_old_runs()
        run = self._runs[accepted.id] = OrderRun(
            max_events=self.limits.events_kept, max_bytes=self.limits.event_bytes
        )
        run.publish(
            "accepted",
            {
                "id": accepted.id,
                "delegation": "0x" + accepted.delegation_id.hex(),
                "budget": str(accepted.order.budget),
                "plan": accepted.compiled.ascii(),
            },
        )
        self._start(run_order(accepted, run, self.orders))
        return accepted.id

    def _start(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget_old_runs(self) -> None:
        """Keep the events of at most `limits.runs_kept` finished runs (oldest forgotten first)."""
        finished = [order_id for order_id, run in self._runs.items() if run.done]
        for order_id in finished[: max(0, len(finished) - self.limits.runs_kept + 1)]:
            del self._runs[order_id]

    async def _settle_stale(self, stale: list[tuple[str, bytes, str]]) -> None:
        """Pay what the orders a stopped gateway left running delivered (their budgets are already released)."""
        for order_id, delegation_id, delegator in stale:
            payer = self._payer(delegation_id, delegator)
            if not payer.paid_calls(order_id):
                continue
            try:
                await self.chain.off_loop(payer.settle, order_id)
            except MotetError as exc:
                log.warning("order %s: settling after a restart failed: %s", order_id, exc)

    def _payer(self, delegation_id: bytes, delegator: str) -> Payer:
        payer = self._payers.get(delegation_id)
        if payer is None:
            metered = MeteredChain(self.chain, self.orders.gas, delegator)
            payer = Payer(
                cast(Chain, metered),
                self.session_key,
                store=self._path("calls.sqlite"),
                ledger=self._ledger,
                delegation=delegation_id,
                deposit_calls=1,  # deposits stay close to what is spent: the delegator's money, not ours
                timeout=self.call_timeout,
            )
            self._payers[delegation_id] = payer
        return payer

    # -- pages and reads ----------------------------------------------------------------------------

    async def _page(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def _config(self, request: Request) -> Response:
        return JSONResponse(
            {
                "chainId": self.chain.chain_id,
                "contract": self.domain.contract,
                "sessionKey": self.session_key.address,
                "asset": NATIVE_ASSET,
                "domain": self.domain.typed_data_domain(),
                "types": {
                    "Delegation": eip712_fields(DELEGATION_TYPE),
                    "TaskOrder": eip712_fields(TASK_ORDER_TYPE),
                },
                "workflows": await self._workflow_list(),
                "now": await self.chain.off_loop(self.chain.timestamp),
                "rpcUrl": self.chain.url,
            }
        )

    async def _workflow_list(self) -> list[dict[str, Any]]:
        """The workflows as `/api/config` lists them, each with its worst case against the market as it stands:
        compiled at most once every `WORKFLOWS_FRESH` seconds, however often the page is asked for."""
        now = time.monotonic()
        if self._workflows_listed is not None and now - self._workflows_listed[0] < WORKFLOWS_FRESH:
            return self._workflows_listed[1]
        workflows = []
        for name, flow in self.workflows.items():
            properties = flow.input_schema.get("properties", {})
            workflows.append(
                {
                    "name": name,
                    "nodes": [
                        {"id": n.id, "capability": n.capability, "after": list(n.after)}
                        for n in flow.nodes.values()
                    ],
                    "capabilities": sorted({n.capability for n in flow.nodes.values()}),
                    "inputs": [
                        {
                            "name": key,
                            "description": spec.get("description", ""),
                            "type": spec.get("type", "string"),
                        }
                        for key, spec in properties.items()
                    ],
                    "worstCase": str(await self._worst_case(flow)),
                }
            )
        self._workflows_listed = (time.monotonic(), workflows)
        return workflows

    async def _worst_case(self, flow: Workflow) -> int:
        try:
            probe = Payer(self.chain, self.session_key)
            compiled = await flow.compile(self.registry, payer=probe, budget=2**255)
        except MotetError:
            return 0
        return compiled.worst_case

    async def _account(self, request: Request) -> Response:
        address = request.path_params["address"]
        if not HEX20.fullmatch(address):
            raise OrderRefused(400, f"{address[:80]!r} is not an address (0x + 40 hex digits)")
        try:
            balance, found, now = await self.chain.off_loop(self._account_state, address)
        except ValueError:
            raise OrderRefused(
                400, f"{address!r} is not an address (a mixed-case one must be checksummed)"
            ) from None
        items = [
            {
                "id": "0x" + state.delegation_id.hex(),
                "sessionKey": state.session_key,
                "cap": str(state.cap),
                "spent": str(state.spent),
                "validAfter": state.valid_after,
                "expiry": state.expiry,
                "revoked": state.revoked,
                "status": state.status(now),
                "capabilities": self.orders.capabilities(state.delegation_id),
            }
            for state in found
        ]
        return JSONResponse({"address": address, "balance": str(balance), "delegations": items, "now": now})

    def _account_state(self, address: str) -> tuple[int, list[Any], int]:
        return (
            self.delegations.balance(address),
            self.delegations.delegations(delegator=address),
            self.chain.timestamp(),
        )

    async def _failed(self, request: Request, exc: Exception) -> Response:
        """A failure nobody foresaw: the details to the log, a generic message with an id to the caller."""
        incident = incident_id()
        log.error(
            "gateway: %s %s failed (incident %s)",
            request.method,
            request.url.path,
            incident,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        return JSONResponse({"error": failure_message(incident)}, status_code=500)

    async def _refused(self, request: Request, exc: OrderRefused) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    async def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = loads(await request.body())
        except ValueError:
            raise OrderRefused(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise OrderRefused(400, "the body must be a JSON object")
        return body

    # -- transactions the wallet sends itself ---------------------------------------------------------

    async def _post_call(self, request: Request) -> Response:
        body = await self._body(request)
        return JSONResponse(wallet_transaction(self.delegations.contract, self.chain.chain_id, body))

    async def _transaction(self, request: Request) -> Response:
        tx_hash = request.path_params["tx_hash"]
        return JSONResponse(await self.chain.off_loop(transaction_status, self.chain, tx_hash))

    # -- delegations and orders -----------------------------------------------------------------------

    async def _post_delegation(self, request: Request) -> Response:
        typed, signature = signed_part(await self._body(request), "delegation")
        delegation_id, tx = await self.orders.take_delegation(typed, signature)
        return JSONResponse({"id": "0x" + delegation_id.hex(), "tx": tx})

    async def _post_order(self, request: Request) -> Response:
        body = await self._body(request)
        order_id = await self.submit(body.get("delegation"), body.get("order"))
        return JSONResponse(
            {"id": order_id, "status": "running", "events": f"/api/orders/{order_id}/events"}, status_code=202
        )

    async def _get_order(self, request: Request) -> Response:
        order_id = request.path_params["order_id"]
        record = self.orders.record(order_id)
        if record is None:
            raise OrderRefused(404, f"no order {order_id!r} here")
        return JSONResponse(record)

    async def _order_events(self, request: Request) -> Response:
        order_id = request.path_params["order_id"]
        run = self._runs.get(order_id)
        if run is None:
            raise OrderRefused(
                404, f"no running or recent order {order_id!r} here: GET /api/orders/{order_id}"
            )

        async def stream() -> AsyncIterator[str]:
            async for kind, data in run.follow():
                yield f"event: {kind}\ndata: {json.dumps(data)}\n\n"

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )


def _unspecified(host: str) -> bool:
    """Whether `host` is an any-address (0.0.0.0, ::), which no request names."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False
