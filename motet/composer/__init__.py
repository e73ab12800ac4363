"""The composer: workflows of capability calls, compiled against the registry, run on LangGraph, every call
paid exactly once and settled in a batch.

- `Workflow` → `compile()` → `CompiledWorkflow.run()` / `.stream()` (typed events, `RunReport`).
- `Payer` opens channels, calls agents, pays accepted answers, resumes after a crash.
- `plan()` finds a type-compatible, cheapest chain of `Offer`s for a goal (networkx).
- `Budget` reserves worst cases and commits actual prices: what is signed never exceeds the cap.
- Selection weighs trust (`policy="trusted"`, `CompiledWorkflow.explain()`); a share of paid calls to
  verifiable capabilities is checked after payment (`CheckDone`, `DisputeOpened`; docs/trust.md).

Example:
    flow = Workflow("brief", inputs=Text).add("summary", "summarize")
    async with Payer(chain) as payer:
        runnable = await flow.compile(Registry(chain), payer=payer, budget=10**16)
        report = await runnable.run({"text": "..."})
"""

from motet.composer._budget import Budget, Reservation
from motet.composer._compiled import CompiledWorkflow
from motet.composer._events import (
    AgentPayment,
    CallPaid,
    CheckDone,
    DisputeOpened,
    Event,
    Failover,
    NodeDone,
    NodeReport,
    NodeSkipped,
    NodeStarted,
    ReceiptChecked,
    RunDone,
    RunReport,
    Settled,
    TextDelta,
)
from motet.composer._offer import Offer, registry_offers
from motet.composer._payer import CallRecord, Payer, RunLog, RunRecord, SimulatedCrash
from motet.composer._planner import Path, Plan, PlanStep, plan
from motet.composer._trust import Ranked, Selection
from motet.composer._workflow import Node, Policy, Route, Workflow

__all__ = [
    "AgentPayment",
    "Budget",
    "CallPaid",
    "CallRecord",
    "CheckDone",
    "CompiledWorkflow",
    "DisputeOpened",
    "Event",
    "Failover",
    "Node",
    "NodeDone",
    "NodeReport",
    "NodeSkipped",
    "NodeStarted",
    "Offer",
    "Path",
    "Payer",
    "Plan",
    "PlanStep",
    "Policy",
    "Ranked",
    "ReceiptChecked",
    "Reservation",
    "Route",
    "RunDone",
    "RunLog",
    "RunRecord",
    "RunReport",
    "Selection",
    "Settled",
    "SimulatedCrash",
    "TextDelta",
    "Workflow",
    "plan",
    "registry_offers",
]
