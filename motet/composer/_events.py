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
class DisputeOpened:
    """A sampled check found a cheat: a dispute against the agent is open on chain, with the payer's bond."""

    node: str
    agent: str
    agent_id: int
    dispute_id: int
    bond: int


@dataclass(frozen=True)
class CheckDone:
    """A paid call drawn for a check (probability `Settings.trust.sample_rate`), and what the check said.

    `verdict` is `"consistent"`, `"cheat"`, `"inconclusive"`, or `"unchecked"` when no check could run (no
    local runtime for the model and no verifier agent, no room in the budget, a verifier down): `detail`
    then says why. A check never fails the run and never costs the agent anything.
    """

    node: str
    agent: str
    agent_id: int
    verdict: str
    by: str
    """`"local"` (the payer's `Checker`), the paid verifier agent (`name (#id)`), or `""` when unchecked."""
    detail: str
    price: int = 0
    """What the verifier agent was paid (0 for a local check)."""
    dispute_id: int | None = None
    """The dispute opened on a cheat."""
    problem: str = ""
    """Why a cheat's dispute could not be opened."""


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
    | CheckDone
    | DisputeOpened
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
    """What a run did: per-node agent, tokens, price, latency and receipt; what it spent (sampled checks
    through verifier agents included); the checks and their disputes; how it settled."""

    run_id: str
    nodes: dict[str, NodeReport]
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    spent: int = 0
    budget: int = 0
    settlement: Settled | None = None
    checks: list[CheckDone] = field(default_factory=list)
    """Every paid call drawn for a check, with its verdict (or why it went unchecked) and any dispute."""
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
            case CheckDone():
                self.checks.append(event)
            case _:
                pass
