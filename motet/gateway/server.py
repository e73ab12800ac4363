"""The task gateway: runs wallet-signed task orders under their delegation, with the gateway's session key.

A wallet sends a signed `Delegation` and a signed `TaskOrder` (see `motet.payments.delegation`); the gateway
checks both, registers the delegation on chain if it is new, reserves the order's budget against what the
delegation has left, compiles the workflow, runs it paying each call with vouchers the session key signs on
the delegator's channels, settles, and keeps the outcome. Progress streams as server-sent events; the signing
page (`static/`) is served at `/`.

The money rule (INVARIANTS D1) holds off chain as on chain: an order is accepted only if its budget fits in the
delegation's cap less what earlier orders spent and running orders reserved, decided under one lock, and a run
never signs more than its budget; the contract refuses anything above the cap regardless.

Example:
    >>> gateway = Gateway(chain, registry, session_key=key, workflows={"research-brief": research_brief()})
    >>> async with gateway.running(port=8402) as url:
    ...     ...
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from web3.exceptions import TransactionNotFound

from motet._http import serve
from motet.chain import NATIVE_TOKEN, Chain
from motet.composer import Payer, Workflow
from motet.composer.events import CallPaid, Event, ReceiptChecked, RunDone, Settled
from motet.composer.workflow import CompiledWorkflow
from motet.errors import InvalidDelegation, MotetError
from motet.payments.delegation import (
    DELEGATION_TYPE,
    TASK_ORDER_TYPE,
    Delegation,
    DelegationClient,
    TaskOrder,
    eip712_fields,
    parse_signature,
)
from motet.payments.ledger import Ledger
from motet.registry import Registry

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS delegations (
    id TEXT PRIMARY KEY,
    delegator TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    typed_data TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY,
    delegator TEXT NOT NULL,
    nonce TEXT NOT NULL,
    delegation TEXT NOT NULL,
    budget TEXT NOT NULL,
    status TEXT NOT NULL,
    spent TEXT NOT NULL DEFAULT '0',
    result TEXT,
    error TEXT,
    created REAL NOT NULL,
    UNIQUE (delegator, nonce)
);
"""


class Refused(MotetError):
    """An order or delegation the gateway will not take; `status` is the HTTP status it answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")  # a delegation id or a transaction hash


def _positive_wei(value: object) -> int:
    """A positive amount in wei, given as a decimal string or an integer."""
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not text.isdigit() or int(text) == 0:
        raise Refused(
            400, f"'amount' must be a positive whole number of wei (a decimal string), not {value!r}"
        )
    return int(text)


def _event_name(event: Event) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(event).__name__).lower()


_AMOUNTS = {"price", "cumulative", "spent", "budget", "paid"}


def _event_data(event: Event) -> dict[str, Any]:
    """An event as JSON-safe data; amounts in wei as decimal strings (JavaScript numbers lose big integers)."""
    data = dataclasses.asdict(event)
    return {k: str(v) if k in _AMOUNTS else list(v) if isinstance(v, tuple) else v for k, v in data.items()}


class _Run:
    """One order's events, kept for every listener, late ones included."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.done = False
        self._changed = asyncio.Event()

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))
        self._changed.set()

    def finish(self) -> None:
        self.done = True
        self._changed.set()

    async def follow(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        seen = 0
        while True:
            while seen < len(self.events):
                yield self.events[seen]
                seen += 1
            if self.done:
                return
            self._changed.clear()
            if seen == len(self.events) and not self.done:
                await self._changed.wait()


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
    ) -> None:
        self.chain = chain
        self.registry = registry
        self.session_key = session_key
        self.workflows = dict(workflows)
        self.delegations = DelegationClient(chain, session_key)
        self.domain = self.delegations.domain
        self.call_timeout = call_timeout
        self._dir = Path(data_dir) if data_dir is not None else None
        if self._dir is not None:
            self._dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self._path("gateway.sqlite"), check_same_thread=False, isolation_level=None
        )
        self._db.executescript(_SCHEMA)
        self._ledger = Ledger(self._path("vouchers.sqlite"))
        self._payers: dict[bytes, Payer] = {}
        self._runs: dict[str, _Run] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting = asyncio.Lock()
        self.app = Starlette(
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
            exception_handlers={Refused: self._refused},  # type: ignore[dict-item]
        )

    def _path(self, name: str) -> str:
        return str(self._dir / name) if self._dir is not None else ":memory:"

    @contextlib.asynccontextmanager
    async def running(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve on `host:port` (0: a free port) until the block ends; yields the base URL. Runs still going
        at the end are cancelled (their paid calls are recorded, and settled when they are resumed)."""
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

    # -- pages and reads ----------------------------------------------------------------------------

    async def _page(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def _config(self, request: Request) -> Response:
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
        return JSONResponse(
            {
                "chainId": self.chain.chain_id,
                "contract": self.domain.contract,
                "sessionKey": self.session_key.address,
                "asset": NATIVE_TOKEN,
                "domain": self.domain.typed_data_domain(),
                "types": {
                    "Delegation": eip712_fields(DELEGATION_TYPE),
                    "TaskOrder": eip712_fields(TASK_ORDER_TYPE),
                },
                "workflows": workflows,
                "now": self.chain.timestamp(),
                "rpcUrl": self.chain.url,
            }
        )

    async def _worst_case(self, flow: Workflow) -> int:
        try:
            probe = Payer(self.chain, self.session_key)
            compiled = await flow.compile(self.registry, payer=probe, budget=2**255)
        except MotetError:
            return 0
        return compiled.worst_case

    async def _account(self, request: Request) -> Response:
        address = request.path_params["address"]
        try:
            balance = self.delegations.balance(address)
            found = self.delegations.delegations(delegator=address)
        except ValueError as exc:
            raise Refused(400, f"{address!r} is not an address: {exc}") from None
        now = self.chain.timestamp()
        items = []
        for state in found:
            row = self._db.execute(
                "SELECT capabilities FROM delegations WHERE id = ?", ("0x" + state.delegation_id.hex(),)
            ).fetchone()
            items.append(
                {
                    "id": "0x" + state.delegation_id.hex(),
                    "sessionKey": state.session_key,
                    "cap": str(state.cap),
                    "spent": str(state.spent),
                    "validAfter": state.valid_after,
                    "expiry": state.expiry,
                    "revoked": state.revoked,
                    "status": state.status(now),
                    "capabilities": json.loads(row[0]) if row else None,
                }
            )
        return JSONResponse({"address": address, "balance": str(balance), "delegations": items, "now": now})

    # -- transactions the wallet sends itself ---------------------------------------------------------

    async def _post_call(self, request: Request) -> Response:
        """The unsigned transaction for a wallet to send (`eth_sendTransaction`) to the channels contract.

        `{"function": "deposit", "amount": wei}` adds to the sender's balance, `{"function": "withdraw",
        "amount": wei}` takes back what no channel holds, `{"function": "revoke", "delegation": id}` revokes one
        of the sender's delegations. The gateway signs nothing here: the wallet signs and pays the gas.
        """
        body = await self._body(request)
        function = body.get("function")
        contract = self.delegations.contract
        if function in ("deposit", "withdraw"):
            amount = _positive_wei(body.get("amount"))
            data = contract.encode_abi(function, args=[NATIVE_TOKEN, amount])
            value = amount if function == "deposit" else 0
        elif function == "revoke":
            delegation = body.get("delegation")
            if not isinstance(delegation, str) or not _HEX32.fullmatch(delegation):
                raise Refused(
                    400, f"'delegation' must be a delegation id (0x + 64 hex digits), not {delegation!r}"
                )
            data = contract.encode_abi("revoke", args=[bytes.fromhex(delegation[2:])])
            value = 0
        else:
            raise Refused(400, f"'function' must be 'deposit', 'withdraw' or 'revoke', not {function!r}")
        return JSONResponse(
            {"to": contract.address, "data": data, "value": hex(value), "chainId": hex(self.chain.chain_id)}
        )

    async def _transaction(self, request: Request) -> Response:
        """Whether a transaction the wallet sent is mined: `pending`, `success` or `reverted`."""
        tx_hash = request.path_params["tx_hash"]
        if not _HEX32.fullmatch(tx_hash):
            raise Refused(400, f"{tx_hash!r} is not a transaction hash (0x + 64 hex digits)")
        try:
            receipt = self.chain.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return JSONResponse({"hash": tx_hash, "status": "pending"})
        status = "success" if receipt["status"] == 1 else "reverted"
        return JSONResponse(
            {
                "hash": tx_hash,
                "status": status,
                "block": receipt["blockNumber"],
                "gasUsed": receipt["gasUsed"],
            }
        )

    async def _refused(self, request: Request, exc: Refused) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    # -- delegations --------------------------------------------------------------------------------

    async def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise Refused(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise Refused(400, "the body must be a JSON object")
        return body

    def _signed(self, body: object, what: str) -> tuple[dict[str, Any], bytes]:
        if not isinstance(body, dict) or "typedData" not in body or "signature" not in body:
            raise Refused(400, f"the {what} must be an object with 'typedData' and 'signature'")
        try:
            return body["typedData"], parse_signature(body["signature"])
        except InvalidDelegation as exc:
            raise Refused(400, f"{what}: {exc}") from None

    async def _post_delegation(self, request: Request) -> Response:
        typed, signature = self._signed(await self._body(request), "delegation")
        delegation_id, tx = self._take_delegation(typed, signature)
        return JSONResponse({"id": "0x" + delegation_id.hex(), "tx": tx})

    def _take_delegation(self, typed: dict[str, Any], signature: bytes) -> tuple[bytes, str | None]:
        """Check a signed delegation, remember its capabilities and register it on chain if it is new."""
        try:
            delegation = Delegation.from_typed_data(typed, self.domain)
        except InvalidDelegation as exc:
            raise Refused(400, f"delegation: {exc}") from None
        if delegation.session_key != self.session_key.address:
            raise Refused(
                403,
                f"the delegation is to the session key {delegation.session_key}, but this gateway's is "
                f"{self.session_key.address}: fetch /api/config and sign again",
            )
        delegation_id = delegation.digest(self.domain)
        if not self.delegations.signed_by(delegation.delegator, delegation_id, signature):
            raise Refused(403, f"the delegation is not signed by its delegator {delegation.delegator}")
        self._db.execute(
            "INSERT OR IGNORE INTO delegations VALUES (?, ?, ?, ?, ?)",
            (
                "0x" + delegation_id.hex(),
                delegation.delegator,
                json.dumps(list(delegation.capabilities)),
                json.dumps(typed),
                "0x" + signature.hex(),
            ),
        )
        if self.delegations.state(delegation_id) is not None:
            return delegation_id, None
        try:
            self.delegations.register(delegation, signature)
        except MotetError as exc:
            raise Refused(403, f"the channels contract refused the delegation: {exc}") from None
        receipt = self.chain.last_receipt
        return delegation_id, "0x" + bytes(receipt["transactionHash"]).hex() if receipt else None

    # -- orders -------------------------------------------------------------------------------------

    async def _post_order(self, request: Request) -> Response:
        body = await self._body(request)
        typed_delegation, delegation_signature = self._signed(body.get("delegation"), "delegation")
        typed_order, order_signature = self._signed(body.get("order"), "order")
        order_id = await self.submit(typed_delegation, delegation_signature, typed_order, order_signature)
        return JSONResponse(
            {"id": order_id, "status": "running", "events": f"/api/orders/{order_id}/events"}, status_code=202
        )

    async def submit(
        self,
        typed_delegation: dict[str, Any],
        delegation_signature: bytes,
        typed_order: dict[str, Any],
        order_signature: bytes,
    ) -> str:
        """Check and start an order; returns its id. Raises `Refused` saying why an order is not taken."""
        try:
            order = TaskOrder.from_typed_data(typed_order, self.domain)
            delegation = Delegation.from_typed_data(typed_delegation, self.domain)
        except InvalidDelegation as exc:
            raise Refused(400, str(exc)) from None
        delegation_id = delegation.digest(self.domain)
        if order.delegation != delegation_id:
            raise Refused(
                400,
                f"the order names delegation 0x{order.delegation.hex()}, not the one sent (0x{delegation_id.hex()})",
            )
        if not self.delegations.signed_by(delegation.delegator, order.digest(self.domain), order_signature):
            raise Refused(403, f"the task order is not signed by the delegator {delegation.delegator}")
        now = self.chain.timestamp()
        if order.deadline <= now:
            raise Refused(400, f"the order's deadline {order.deadline} has passed (chain time {now})")
        async with self._accepting:
            if self._nonce_used(delegation.delegator, order.nonce):
                raise Refused(
                    409,
                    f"a replay: order nonce {order.nonce} of {delegation.delegator} was already used here",
                )
            self._take_delegation(typed_delegation, delegation_signature)
            state = self.delegations.state(delegation_id)
            assert state is not None  # registered just above, or before
            problem = state.problem(now)
            if problem is not None:
                raise Refused(403, f"{problem}: sign a new delegation")
            compiled = await self._compile(order, delegation, delegation_id)
            left = state.cap - max(state.spent, self._committed(delegation_id))
            if order.budget > left:
                raise Refused(
                    403,
                    f"over budget: the order's budget of {order.budget} wei is more than the delegation has left "
                    f"({left} of its cap of {state.cap}, counting earlier and running orders)",
                )
            payer = compiled.payer
            funds = self.delegations.balance(delegation.delegator) + payer.unspent_deposits()
            needed = min(order.budget, compiled.worst_case)
            if funds < needed:
                raise Refused(
                    403,
                    f"the delegator's balance in the channels contract ({funds} wei) cannot cover this run "
                    f"(up to {needed} wei): deposit more first",
                )
            order_id = uuid.uuid4().hex[:16]
            self._db.execute(
                "INSERT INTO orders (id, delegator, nonce, delegation, budget, status, created) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?)",
                (
                    order_id,
                    delegation.delegator,
                    str(order.nonce),
                    "0x" + delegation_id.hex(),
                    str(order.budget),
                    time.time(),
                ),
            )
        run = self._runs[order_id] = _Run()
        run.publish(
            "accepted",
            {
                "id": order_id,
                "delegation": "0x" + delegation_id.hex(),
                "budget": str(order.budget),
                "plan": compiled.ascii(),
            },
        )
        task = asyncio.create_task(self._run(order_id, order, compiled, run, order.deadline - now))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return order_id

    def _nonce_used(self, delegator: str, nonce: int) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM orders WHERE delegator = ? AND nonce = ?", (delegator, str(nonce))
        ).fetchone()
        return row is not None

    def _committed(self, delegation_id: bytes) -> int:
        """What a delegation's orders here spent (finished) or may still spend (running)."""
        rows = self._db.execute(
            "SELECT status, budget, spent FROM orders WHERE delegation = ?", ("0x" + delegation_id.hex(),)
        ).fetchall()
        return sum(int(budget) if status == "running" else int(spent) for status, budget, spent in rows)

    def _payer(self, delegation_id: bytes) -> Payer:
        payer = self._payers.get(delegation_id)
        if payer is None:
            payer = Payer(
                self.chain,
                self.session_key,
                store=self._path("calls.sqlite"),
                ledger=self._ledger,
                delegation=delegation_id,
                deposit_calls=1,  # deposits stay close to what is spent: the delegator's money, not ours
                timeout=self.call_timeout,
            )
            self._payers[delegation_id] = payer
        return payer

    async def _compile(
        self, order: TaskOrder, delegation: Delegation, delegation_id: bytes
    ) -> CompiledWorkflow:
        inputs = order.input_values()
        try:
            if order.workflow:
                flow = self.workflows.get(order.workflow)
                if flow is None:
                    offered = ", ".join(sorted(self.workflows)) or "none"
                    raise Refused(400, f"no workflow named {order.workflow!r} here (offered: {offered})")
            else:
                schema = {
                    "type": "object",
                    "properties": {key: {"type": "string"} for key in inputs},
                    "required": list(inputs),
                }
                flow, _plan = await Workflow.from_goal(order.goal, inputs=schema, registry=self.registry)
            for node in flow.nodes.values():
                if not delegation.allows(node.capability):
                    raise Refused(
                        403,
                        f"the delegation does not allow the capability {node.capability!r} (node {node.id!r}); "
                        f"it allows {', '.join(delegation.capabilities)}",
                    )
            return await flow.compile(self.registry, payer=self._payer(delegation_id), budget=order.budget)
        except MotetError as exc:
            if isinstance(exc, Refused):
                raise
            raise Refused(400, f"cannot run this order: {exc}") from None

    async def _run(
        self, order_id: str, order: TaskOrder, compiled: CompiledWorkflow, run: _Run, seconds: int
    ) -> None:
        payer = compiled.payer
        receipts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        result: dict[str, Any] = {}
        settled: Settled | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(seconds):
                async for event in compiled.stream(order.input_values(), run_id=order_id):
                    data = _event_data(event)
                    run.publish(_event_name(event), data)
                    if isinstance(event, ReceiptChecked):
                        receipts.append(data)
                    elif isinstance(event, CallPaid):
                        calls.append(data)
                    elif isinstance(event, RunDone):
                        result["outputs"] = event.outputs
                    elif isinstance(event, Settled):
                        settled = event
        except TimeoutError:
            error = f"the order's deadline passed before the run finished ({seconds} s)"
        except asyncio.CancelledError:
            error = "the gateway stopped before the run finished"
            raise
        except MotetError as exc:
            error = str(exc)
        except Exception as exc:  # a bug must not leave the order 'running' for ever
            log.exception("order %s failed", order_id)
            error = f"{type(exc).__name__}: {exc}"
        finally:
            if settled is None and payer.paid_calls(order_id):
                # What was delivered before the failure is owed: pay it, as the agents were promised.
                try:
                    hashes, paid, gas = payer.settle(order_id)
                    settled = Settled(tuple(hashes), paid, gas, payer.paid_calls(order_id))
                    run.publish("settled", _event_data(settled))
                except MotetError as exc:
                    log.warning("order %s: settling after a failure failed: %s", order_id, exc)
            spent = payer.spent(order_id)
            result.update(
                {
                    "receipts": receipts,
                    "calls": calls,
                    "spent": str(spent),
                    "settlement": None
                    if settled is None
                    else {
                        "txs": list(settled.tx_hashes),
                        "paid": str(settled.paid),
                        "gasUsed": settled.gas_used,
                        "paidCalls": settled.paid_calls,
                    },
                }
            )
            status = "failed" if error else "done"
            self._db.execute(
                "UPDATE orders SET status = ?, spent = ?, result = ?, error = ? WHERE id = ?",
                (status, str(spent), json.dumps(result), error, order_id),
            )
            if error:
                run.publish("failed", {"error": error, **result})
            else:
                run.publish("result", result)
            run.finish()

    async def _get_order(self, request: Request) -> Response:
        order_id = request.path_params["order_id"]
        row = self._db.execute(
            "SELECT status, delegation, budget, spent, result, error FROM orders WHERE id = ?", (order_id,)
        ).fetchone()
        if row is None:
            raise Refused(404, f"no order {order_id!r} here")
        status, delegation, budget, spent, result, error = row
        return JSONResponse(
            {
                "id": order_id,
                "status": status,
                "delegation": delegation,
                "budget": budget,
                "spent": spent,
                "error": error,
                **(json.loads(result) if result else {}),
            }
        )

    async def _order_events(self, request: Request) -> Response:
        order_id = request.path_params["order_id"]
        run = self._runs.get(order_id)
        if run is None:
            raise Refused(404, f"no running or recent order {order_id!r} here: GET /api/orders/{order_id}")

        async def stream() -> AsyncIterator[str]:
            async for kind, data in run.follow():
                yield f"event: {kind}\ndata: {json.dumps(data)}\n\n"

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
