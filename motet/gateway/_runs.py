"""Running an accepted order: the compiled workflow's events, kept for every listener (late ones included) as
JSON-safe data, and the outcome, settled and recorded even when the run fails."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from motet.composer import CallPaid, Event, ReceiptChecked, RunDone, Settled
from motet.errors import ChainError, MotetError, TransactionReverted
from motet.gateway._orders import Accepted, OrderDesk

log = logging.getLogger(__name__)

_AMOUNTS = {"price", "cumulative", "spent", "budget", "paid"}
_DROPPABLE = {"text_delta"}
"""Events a run stops keeping once it holds its bound: streamed text, whose whole is in the outcome."""


class OrderRun:
    """One order's events, kept for every listener, late ones included, within bounds: text deltas past
    `max_events` events or `max_bytes` bytes of event data are dropped (counted in `dropped`); the other events
    (a few per node, and the outcome) are always kept."""

    def __init__(self, *, max_events: int = 2_000, max_bytes: int = 1_000_000) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.done = False
        self.dropped = 0
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._bytes = 0
        self._changed = asyncio.Event()

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        size = len(json.dumps(data, default=str))
        if kind in _DROPPABLE and (
            len(self.events) >= self.max_events or self._bytes + size > self.max_bytes
        ):
            self.dropped += 1
            return
        self.events.append((kind, data))
        self._bytes += size
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


def event_name(event: Event) -> str:
    """`NodeDone` → `node_done`: the server-sent event's name."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(event).__name__).lower()


def event_data(event: Event) -> dict[str, Any]:
    """An event as JSON-safe data; amounts in wei as decimal strings (JavaScript numbers lose big integers)."""
    data = dataclasses.asdict(event)
    return {k: str(v) if k in _AMOUNTS else list(v) if isinstance(v, tuple) else v for k, v in data.items()}


async def run_order(accepted: Accepted, run: OrderRun, desk: OrderDesk) -> None:
    """Run an accepted order to its end or its deadline, publishing its events on `run`; whatever happens,
    pay what was delivered and record the outcome with `desk`."""
    order_id, compiled, seconds = accepted.id, accepted.compiled, accepted.seconds
    payer = compiled.payer
    receipts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    result: dict[str, Any] = {}
    settled: Settled | None = None
    error: str | None = None
    report = compiled.new_report(order_id)
    try:
        async with asyncio.timeout(seconds):
            async for event in compiled.stream(accepted.order.input_values(), run_id=order_id, report=report):
                data = event_data(event)
                run.publish(event_name(event), data)
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
    except ChainError as exc:  # its text may name the node's URL, which can hold an API key
        incident = uuid.uuid4().hex[:12]
        log.warning("order %s: the chain failed (incident %s): %s", order_id, incident, exc)
        reason = (
            f"the contract refused: {exc.reason}"
            if isinstance(exc, TransactionReverted)
            else "the chain failed"
        )
        error = f"{reason} (incident {incident}; the gateway's log has the details)"
    except MotetError as exc:
        error = str(exc)
    except Exception:  # a bug must not leave the order 'running' for ever
        incident = uuid.uuid4().hex[:12]
        log.exception("order %s failed (incident %s)", order_id, incident)
        error = f"the gateway failed while running the order (incident {incident}; its log has the details)"
    finally:
        if settled is None and payer.paid_calls(order_id):
            # What was delivered before the failure is owed: pay it, as the agents were promised.
            try:
                hashes, paid, gas = await desk.chain.off_loop(payer.settle, order_id)
                settled = Settled(tuple(hashes), paid, gas, payer.paid_calls(order_id))
                run.publish("settled", event_data(settled))
                report.record(settled)
            except MotetError as exc:
                log.warning("order %s: settling after a failure failed: %s", order_id, exc)
        spent = payer.spent(order_id)
        result.update(
            {
                "receipts": receipts,
                "calls": calls,
                "spent": str(spent),
                "eventsDropped": run.dropped,
                # The run report's money: per agent paid (wei), settled and still to settle, failovers and why.
                "money": {**report.money(), "error": error},
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
        desk.finish(order_id, spent, result, error)
        if error:
            run.publish("failed", {"error": error, **result})
        else:
            run.publish("result", result)
        run.finish()
