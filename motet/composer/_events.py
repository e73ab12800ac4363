"""What a run tells its watcher, in order: typed events, one dataclass per kind.

`CompiledWorkflow.stream()` yields them as they happen; `run()` collects them into the `RunReport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

from pydantic import JsonValue


@dataclass(frozen=True)
class NodeStarted:
    node: str
    capability: str
    agent: str
    """The agent tried first: `name (#id)`."""


@dataclass(frozen=True)
class TextDelta:
    """A piece of the text a node's agent is generating, as it streams (with `stream(tokens=True)`)."""

    node: str
    text: str


@dataclass(frozen=True)
class ReceiptChecked:
    """The agent's signed receipt for a delivered answer verified: it names this request and this output."""

    node: str
    agent: str
    seq: int
    request_hash: str
    response_hash: str


@dataclass(frozen=True)
class CallPaid:
    """A voucher paid one accepted answer: `cumulative` on `channel` now covers `price`."""

    node: str
    agent: str
    agent_id: int
    channel: int
    price: int
    cumulative: int
    replayed: bool = False
    """True when a resumed run found the call already delivered and paid, or re-sent its stored voucher."""


@dataclass(frozen=True)
class Failover:
    """An agent failed, was slow or answered invalid output: it is not paid, and the next one is tried."""

    node: str
    failed_agent: str
    problem: str
    next_agent: str | None


@dataclass(frozen=True)
class NodeDone:
    node: str
    agent: str
    output: dict[str, JsonValue]
    price: int
    latency_s: float
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class NodeSkipped:
    """A route did not choose this node: it does not run and costs nothing."""

    node: str


@dataclass(frozen=True)
class RunDone:
    outputs: dict[str, dict[str, JsonValue]]
    spent: int
    budget: int


@dataclass(frozen=True)
class Settled:
    """Every voucher of the run redeemed on chain: one transaction per batch of up to 256 channels."""

    tx_hashes: tuple[str, ...]
    paid: int
    gas_used: int
    paid_calls: int

    @property
    def gas_per_paid_call(self) -> float:
        return self.gas_used / self.paid_calls if self.paid_calls else 0.0


Event: TypeAlias = (
    NodeStarted
    | TextDelta
    | ReceiptChecked
    | CallPaid
    | Failover
    | NodeDone
    | NodeSkipped
    | RunDone
    | Settled
)


@dataclass
class NodeReport:
    node: str
    capability: str
    agent: str = ""
    price: int = 0
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    receipt: str = ""
    """The receipt's request hash, short: the evidence the agent signed."""
    failovers: list[str] = field(default_factory=list)
    status: str = "pending"


@dataclass
class RunReport:
    """What a run did: per-node agent, tokens, price, latency and receipt; what it spent; how it settled."""

    run_id: str
    nodes: dict[str, NodeReport]
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    spent: int = 0
    budget: int = 0
    settlement: Settled | None = None
    events: list[Event] = field(default_factory=list)

    def record(self, event: Event) -> None:
        self.events.append(event)
        match event:
            case NodeStarted(node=node, agent=agent):
                self.nodes[node].agent = agent
                self.nodes[node].status = "running"
            case Failover(node=node, failed_agent=agent, problem=problem):
                self.nodes[node].failovers.append(f"{agent}: {problem}")
            case ReceiptChecked(node=node, request_hash=digest):
                self.nodes[node].receipt = digest[:18]
            case NodeDone() as done:
                report = self.nodes[done.node]
                report.agent, report.price, report.latency_s = done.agent, done.price, done.latency_s
                report.prompt_tokens, report.completion_tokens = done.prompt_tokens, done.completion_tokens
                report.status = "done"
                self.outputs[done.node] = done.output
            case NodeSkipped(node=node):
                self.nodes[node].status = "skipped"
            case RunDone(spent=spent, budget=budget):
                self.spent, self.budget = spent, budget
            case Settled():
                self.settlement = event
            case _:
                pass
