"""A run's report closed, whatever the outcome: how it ended, and its money from the payer's own records.

`CompiledWorkflow.stream()` calls `close_report` when its run ends, is cancelled or fails. The events the
report recorded name each paid call as it happened; the payer's records are the truth about money (a call paid
while its event was still queued when the run was cancelled, the calls paid before a crash that a resumed run
does not repeat), so the report's payments and `spent` are taken from them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from motet.composer._events import AgentPayment, Event, RunReport, RunStatus
from motet.composer._offer import Offer
from motet.composer._payer import Payer

log = logging.getLogger(__name__)


def drain(queue: asyncio.Queue[Event | None], report: RunReport) -> None:
    """Record the events a stopped run left in its queue (they are not yielded to anyone)."""
    while not queue.empty():
        event = queue.get_nowait()
        if event is not None:
            report.record(event)


def outcome(exc: BaseException | None) -> tuple[RunStatus, str]:
    """`(status, error)` of a run that ended with `exc` (None: it finished)."""
    if exc is None:
        return "done", ""
    if isinstance(exc, asyncio.CancelledError | GeneratorExit | KeyboardInterrupt):
        return "cancelled", "the run was stopped before it finished"
    return "failed", str(exc) or type(exc).__name__


def close_report(
    report: RunReport, payer: Payer, offers: Iterable[Offer], status: RunStatus, error: str = ""
) -> None:
    """Record how the run ended, and take its payments and `spent` from `payer`'s records of the run."""
    report.finish(status, error)
    try:
        spent = payer.spent(report.run_id)
        paid = payer.receipts(report.run_id)
    except Exception:  # the report must not hide why the run ended: keep what its events said
        log.warning(
            "run %s: the payer's records could not be read for its report", report.run_id, exc_info=True
        )
        return
    known = {offer.agent_id: offer for offer in offers}
    payments: dict[str, AgentPayment] = {}
    by_id = {payment.agent_id: payment for payment in report.payments.values()}
    for _node, (agent_id, receipt) in sorted(paid.items(), key=lambda item: _order(report, item[1][0])):
        offer = known.get(agent_id)
        seen = by_id.get(agent_id)
        label = offer.label if offer is not None else seen.agent if seen is not None else f"agent #{agent_id}"
        payee = offer.payout if offer is not None else seen.payee if seen is not None else ""
        payment = payments.setdefault(label, AgentPayment(label, agent_id, payee))
        payment.add(receipt.price, receipt.channel_id)
    report.payments = payments
    report.spent = spent


def _order(report: RunReport, agent_id: int) -> int:
    """Agents in the order the report saw them paid; those it did not see after them."""
    for index, payment in enumerate(report.payments.values()):
        if payment.agent_id == agent_id:
            return index
    return len(report.payments)
