"""The composer: workflows of capability calls, compiled against the registry, run on LangGraph, every call
paid exactly once and settled in a batch.

- `Workflow` → `compile()` → `CompiledWorkflow.run()` / `.stream()` (typed events, `RunReport`).
- `Payer` opens channels, calls agents, pays accepted answers, resumes after a crash.
- `plan()` finds a type-compatible, cheapest chain of capabilities for a goal (networkx).
- `Budget` reserves worst cases and commits actual prices: what is signed never exceeds the cap.
"""

from motet.composer.budget import Budget, Reservation
from motet.composer.events import (
    CallPaid,
    Event,
    Failover,
    NodeDone,
    NodeSkipped,
    NodeStarted,
    ReceiptChecked,
    RunDone,
    RunReport,
    Settled,
    Token,
)
from motet.composer.payer import Candidate, Payer
from motet.composer.workflow import CompiledWorkflow, Node, Route, Workflow

__all__ = [
    "Budget",
    "CallPaid",
    "Candidate",
    "CompiledWorkflow",
    "Event",
    "Failover",
    "Node",
    "NodeDone",
    "NodeSkipped",
    "NodeStarted",
    "Payer",
    "ReceiptChecked",
    "Reservation",
    "Route",
    "RunDone",
    "RunReport",
    "Settled",
    "Token",
    "Workflow",
]
