"""Taking task orders: checking a wallet's signed delegation and task order, and reserving the order's budget.

A wallet sends a signed `Delegation` and a signed `TaskOrder` (see `motet.payments`); the desk checks
both signatures, registers the delegation on chain if it is new, compiles the order's workflow (one the gateway
offers, or one planned from the order's goal) with only the capabilities the delegation allows, and reserves
the order's budget. Every refusal is an `OrderRefused` whose `status` is the HTTP status the gateway answers.

The money rule (INVARIANTS D1) holds off chain as on chain: an order is accepted only if its budget fits in the
delegation's cap less what earlier orders spent and running orders reserved, decided under one lock, and a run
never signs more than its budget; the contract refuses anything above the cap regardless. The lock is held only
for that decision, never across a call to the chain; a node's calls run on worker threads, off the event loop.
An order whose deadline is past its delegation's expiry is refused, and orders a stopped gateway left running are
released when it starts again (`release_stale`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from motet.chain import Chain
from motet.composer import CompiledWorkflow, Payer, Workflow
from motet.errors import (
    AgentCallFailed,
    ChainError,
    InvalidDelegation,
    MotetError,
    OrderRefused,
    TransactionReverted,
    WorkflowInputError,
)
from motet.gateway._gas import GasMeter, MeteredChain
from motet.payments import Delegation, DelegationClient, TaskOrder, parse_signature
from motet.registry import Registry
from motet.units import format_amount

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Accepted:
    """An order that passed every check, its budget reserved: what to run, and for how long."""

    id: str
    order: TaskOrder
    delegation_id: bytes
    compiled: CompiledWorkflow
    seconds: int
    """From acceptance to the order's deadline, in chain time."""


def signed_part(body: object, what: str) -> tuple[dict[str, Any], bytes]:
    """The typed data and signature of a signed `what` (`{"typedData": ..., "signature": "0x..."}`)."""
    if not isinstance(body, dict) or "typedData" not in body or "signature" not in body:
        raise OrderRefused(400, f"the {what} must be an object with 'typedData' and 'signature'")
    try:
        return body["typedData"], parse_signature(body["signature"])
    except InvalidDelegation as exc:
        raise OrderRefused(400, f"{what}: {exc}") from None


class OrderDesk:
    """Checks delegations and task orders for the gateway whose key is `delegations`' account, and keeps them,
    with each order's outcome, in SQLite at `path` (":memory:" to keep nothing).

    Args:
        chain, registry: where delegations are registered and agents found.
        delegations: the channels contract's delegation client, acting as the gateway's session key.
        workflows: the workflows orders can name.
        payer: the payer of a delegation's calls, by delegation id and delegator.
        path: the SQLite file.
        gas_per_wallet: wei of gas the session key may spend for one wallet (`GasMeter`).
    """

    def __init__(
        self,
        chain: Chain,
        registry: Registry,
        delegations: DelegationClient,
        *,
        workflows: Mapping[str, Workflow],
        payer: Callable[[bytes, str], Payer],
        path: str,
        gas_per_wallet: int,
    ) -> None:
        self.chain = chain
        self.registry = registry
        self.delegations = delegations
        self.domain = delegations.domain
        self.session_key: str = delegations.account.address
        self.workflows = workflows
        self._payer = payer
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self.gas = GasMeter(self._db, gas_per_wallet)
        self._accepting = asyncio.Lock()
        self._registering: dict[bytes, asyncio.Lock] = {}

    # -- delegations ----------------------------------------------------------------------------------

    async def take_delegation(self, typed: dict[str, Any], signature: bytes) -> tuple[bytes, str | None]:
        """Check a signed delegation, remember its capabilities and register it on chain if it is new.

        Returns its id, and the hash of the registering transaction (None when it was registered before).
        Registering costs the session key gas, counted against the delegator's gas budget; a delegator with no
        balance in the channels contract (nothing a delegation could spend) is refused.
        """
        try:
            delegation = Delegation.from_typed_data(typed, self.domain)
        except InvalidDelegation as exc:
            raise OrderRefused(400, f"delegation: {exc}") from None
        if delegation.session_key != self.session_key:
            raise OrderRefused(
                403,
                f"the delegation is to the session key {delegation.session_key}, but this gateway's is "
                f"{self.session_key}: fetch /api/config and sign again",
            )
        delegation_id = delegation.digest(self.domain)
        signed = await self.chain.off_loop(
            self.delegations.signed_by, delegation.delegator, delegation_id, signature
        )
        if not signed:
            raise OrderRefused(403, f"the delegation is not signed by its delegator {delegation.delegator}")
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
        lock = self._registering.setdefault(delegation_id, asyncio.Lock())
        try:
            async with lock:  # one registration per delegation, not one for all
                return delegation_id, await self._register(delegation, delegation_id, signature)
        finally:
            if not lock.locked():
                self._registering.pop(delegation_id, None)

    async def _register(self, delegation: Delegation, delegation_id: bytes, signature: bytes) -> str | None:
        if await self.chain.off_loop(self.delegations.state, delegation_id) is not None:
            return None
        self.gas.check(delegation.delegator, "registering a delegation")
        if (
            await self.chain.off_loop(self.delegations.balance, delegation.delegator, asset=delegation.asset)
            == 0
        ):
            raise OrderRefused(
                403,
                f"{delegation.delegator} has no balance in the channels contract: deposit first (a delegation with "
                "nothing to spend is not registered)",
            )
        metered = MeteredChain(self.chain, self.gas, delegation.delegator)
        client = DelegationClient(cast(Chain, metered), self.delegations.account)
        try:
            await self.chain.off_loop(client.register, delegation, signature)
        except OrderRefused:
            raise
        except TransactionReverted as exc:
            raise OrderRefused(403, f"the channels contract refused the delegation: {exc}") from None
        except MotetError:
            log.exception("registering delegation 0x%s failed", delegation_id.hex())
            raise OrderRefused(
                503, "the gateway could not register the delegation on chain: try again"
            ) from None
        receipt = metered.last_receipt
        return "0x" + bytes(receipt["transactionHash"]).hex() if receipt else None

    def capabilities(self, delegation_id: bytes) -> list[str] | None:
        """The capabilities a delegation sent here allows; None for one never sent here."""
        row = self._db.execute(
            "SELECT capabilities FROM delegations WHERE id = ?", ("0x" + delegation_id.hex(),)
        ).fetchone()
        return json.loads(row[0]) if row else None

    # -- orders ---------------------------------------------------------------------------------------

    async def accept(self, signed_delegation: object, signed_order: object) -> Accepted:
        """Check a signed order under a signed delegation (each `{"typedData": ..., "signature": "0x..."}`, as
        the wallet sends it) and reserve its budget; raises `OrderRefused` saying why an order is not taken."""
        typed_delegation, delegation_signature = signed_part(signed_delegation, "delegation")
        typed_order, order_signature = signed_part(signed_order, "order")
        order, delegation = await self._signed_order(typed_delegation, typed_order, order_signature)
        self._check_inputs(order)  # before anything is registered, signed or spent
        delegation_id = delegation.digest(self.domain)
        now = await self.chain.off_loop(self.chain.timestamp)
        if order.deadline <= now:
            raise OrderRefused(400, f"the order's deadline {order.deadline} has passed (chain time {now})")
        if order.deadline > delegation.expiry:
            raise OrderRefused(
                400,
                f"the order's deadline {order.deadline} is after its delegation's expiry {delegation.expiry}: "
                "no channel opens under an expired delegation, so the run could not finish; sign the order with "
                "an earlier deadline, or sign a new delegation",
            )
        if self._nonce_used(delegation.delegator, order.nonce):
            raise OrderRefused(
                409, f"a replay: order nonce {order.nonce} of {delegation.delegator} was already used here"
            )
        self.gas.check(delegation.delegator, "running an order")
        await self.take_delegation(typed_delegation, delegation_signature)
        state = await self.chain.off_loop(self.delegations.state, delegation_id)
        assert state is not None  # registered just above, or before
        problem = state.problem(now)
        if problem is not None:
            raise OrderRefused(403, f"{problem}: sign a new delegation")
        compiled = await self._compile(order, delegation, delegation_id)
        balance = await self.chain.off_loop(self.delegations.balance, delegation.delegator)
        funds = balance + compiled.payer.unspent_deposits()
        needed = min(order.budget, compiled.worst_case)
        if funds < needed:
            raise OrderRefused(
                403,
                f"the delegator's balance in the channels contract ({funds} wei) cannot cover this run "
                f"(up to {needed} wei): deposit more first",
            )
        async with self._accepting:  # the decision only: no chain call while it is held
            if self._nonce_used(delegation.delegator, order.nonce):
                raise OrderRefused(
                    409,
                    f"a replay: order nonce {order.nonce} of {delegation.delegator} was already used here",
                )
            left = state.cap - max(state.spent, self.committed(delegation_id))
            if order.budget > left:
                raise OrderRefused(
                    403,
                    f"over budget: the order's budget of {format_amount(order.budget)} is more than the delegation has "
                    f"left ({format_amount(left)} of its cap of {format_amount(state.cap)}, counting earlier and "
                    "running orders): order less, or sign a new delegation",
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
        return Accepted(order_id, order, delegation_id, compiled, order.deadline - now)

    def release_stale(self) -> list[tuple[str, bytes, str]]:
        """Mark the orders a stopped gateway left `running` as failed, each having spent what its payer signed
        for it, so their budgets are no longer reserved. Call it before any order runs; returns each one's
        `(order id, delegation id, delegator)`, for settling what it delivered."""
        rows = self._db.execute(
            "SELECT id, delegation, delegator FROM orders WHERE status = 'running'"
        ).fetchall()
        for order_id, delegation, delegator in rows:
            spent = self._payer(bytes.fromhex(delegation[2:]), delegator).spent(order_id)
            self._db.execute(
                "UPDATE orders SET status = 'failed', spent = ?, error = ? WHERE id = ? AND status = 'running'",
                (
                    str(spent),
                    "the gateway stopped before the run finished; its budget is released, and the calls "
                    "delivered before it stopped are settled",
                    order_id,
                ),
            )
            log.warning(
                "order %s: left running by a stopped gateway, released (spent %d wei)", order_id, spent
            )
        return [
            (order_id, bytes.fromhex(delegation[2:]), delegator) for order_id, delegation, delegator in rows
        ]

    def committed(self, delegation_id: bytes) -> int:
        """What a delegation's orders here spent (finished) or may still spend (running)."""
        rows = self._db.execute(
            "SELECT status, budget, spent FROM orders WHERE delegation = ?", ("0x" + delegation_id.hex(),)
        ).fetchall()
        return sum(int(budget) if status == "running" else int(spent) for status, budget, spent in rows)

    def finish(self, order_id: str, spent: int, result: dict[str, Any], error: str | None) -> None:
        """Record an order's outcome: `done`, or `failed` with `error`; what it spent is no longer reserved."""
        self._db.execute(
            "UPDATE orders SET status = ?, spent = ?, result = ?, error = ? WHERE id = ?",
            ("failed" if error else "done", str(spent), json.dumps(result), error, order_id),
        )

    def record(self, order_id: str) -> dict[str, Any] | None:
        """An order as `GET /api/orders/{id}` shows it; None for an order not taken here."""
        row = self._db.execute(
            "SELECT status, delegation, budget, spent, result, error FROM orders WHERE id = ?", (order_id,)
        ).fetchone()
        if row is None:
            return None
        status, delegation, budget, spent, result, error = row
        return {
            "id": order_id,
            "status": status,
            "delegation": delegation,
            "budget": budget,
            "spent": spent,
            "error": error,
            **(json.loads(result) if result else {}),
        }

    async def _signed_order(
        self, typed_delegation: dict[str, Any], typed_order: dict[str, Any], order_signature: bytes
    ) -> tuple[TaskOrder, Delegation]:
        """The order and its delegation, once the order is seen to name the delegation and be signed by its
        delegator (the delegation's own signature is checked when it is taken)."""
        try:
            order = TaskOrder.from_typed_data(typed_order, self.domain)
            delegation = Delegation.from_typed_data(typed_delegation, self.domain)
        except InvalidDelegation as exc:
            raise OrderRefused(400, str(exc)) from None
        delegation_id = delegation.digest(self.domain)
        if order.delegation != delegation_id:
            raise OrderRefused(
                400,
                f"the order names delegation 0x{order.delegation.hex()}, not the one sent (0x{delegation_id.hex()})",
            )
        digest = order.digest(self.domain)
        if not await self.chain.off_loop(
            self.delegations.signed_by, delegation.delegator, digest, order_signature
        ):
            raise OrderRefused(403, f"the task order is not signed by the delegator {delegation.delegator}")
        return order, delegation

    def _check_inputs(self, order: TaskOrder) -> None:
        """Refuse (400) an order for one of the gateway's workflows whose inputs are missing, unknown or of the
        wrong type, naming each field and what it expects: nothing is registered, signed or spent for it."""
        flow = self.workflows.get(order.workflow) if order.workflow else None
        if flow is None:  # a goal's inputs are what it is planned from; an unknown workflow is refused later
            return
        try:
            flow.validate_inputs(order.input_values())
        except (WorkflowInputError, InvalidDelegation) as exc:
            raise OrderRefused(400, f"the order's inputs: {exc}") from None

    def _nonce_used(self, delegator: str, nonce: int) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM orders WHERE delegator = ? AND nonce = ?", (delegator, str(nonce))
        ).fetchone()
        return row is not None

    async def _compile(
        self, order: TaskOrder, delegation: Delegation, delegation_id: bytes
    ) -> CompiledWorkflow:
        """The order's workflow compiled against the registry, every node a capability the delegation allows."""
        inputs = order.input_values()
        try:
            if order.workflow:
                flow = self.workflows.get(order.workflow)
                if flow is None:
                    offered = ", ".join(sorted(self.workflows)) or "none"
                    raise OrderRefused(400, f"no workflow named {order.workflow!r} here (offered: {offered})")
            else:
                schema = {
                    "type": "object",
                    "properties": {key: {"type": "string"} for key in inputs},
                    "required": list(inputs),
                }
                flow, _plan = await Workflow.from_goal(order.goal, inputs=schema, registry=self.registry)
            for node in flow.nodes.values():
                if not delegation.allows(node.capability):
                    raise OrderRefused(
                        403,
                        f"the delegation does not allow the capability {node.capability!r} (node {node.id!r}); "
                        f"it allows {', '.join(delegation.capabilities)}",
                    )
            return await flow.compile(
                self.registry, payer=self._payer(delegation_id, delegation.delegator), budget=order.budget
            )
        except OrderRefused:
            raise
        except (ChainError, AgentCallFailed) as exc:  # their text may name a node's URL or an agent's host
            incident = uuid.uuid4().hex[:12]
            log.warning("compiling an order failed (incident %s): %s", incident, exc)
            raise OrderRefused(
                503, f"cannot plan this order now (incident {incident}; the gateway's log has the details)"
            ) from None
        except MotetError as exc:
            raise OrderRefused(400, f"cannot run this order: {exc}") from None
