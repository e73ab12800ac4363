"""What a run tells its watcher, in order: typed events, one dataclass per kind.

`CompiledWorkflow.stream()` yields them as they happen; `run()` collects them into the `RunReport`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from pydantic import JsonValue

from motet.units import format_amount, plural


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
    payee: str = ""
    """The address the agent is paid at (its payout), where its channel's vouchers pay out."""


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
    """`agent: problem` of each agent that failed this node, in order."""
    status: str = "pending"
    """`pending`, `running`, `done`, `skipped`; `failed` or `stopped` when the run failed or was cancelled
    while the node ran."""


RunStatus: TypeAlias = Literal["running", "done", "failed", "cancelled"]
"""Where a run ended: `done` (every node ran, or was skipped by a route), `failed` (`RunReport.error` says
why), `cancelled` (stopped from outside: ctrl+c, SIGTERM, a cancelled task); `running` until then."""

_LABEL_ID = re.compile(r"\(#(\d+)\)$")


@dataclass
class AgentPayment:
    """What one agent was paid in a run, in wei: for the calls it answered, and the checks it ran as a
    verifier. Each amount is signed in a voucher the agent holds; it is settled once redeemed on chain."""

    agent: str
    """`name (#id)`."""
    agent_id: int
    payee: str = ""
    """The address its vouchers pay out to ("" when the report did not learn it: a verifier's checks)."""
    calls: int = 0
    """Its calls paid in this run (checks it ran included)."""
    paid: int = 0
    """What those calls cost, in wei."""
    channels: list[int] = field(default_factory=list)
    """The channels the run paid it through."""

    def add(self, price: int, channel: int | None = None) -> None:
        self.calls += 1
        self.paid += price
        if channel is not None and channel not in self.channels:
            self.channels.append(channel)

    def describe(self) -> str:
        """`paid extractor (#1) 5 gwei for 1 call · to 0x2B5A… · channel 0x1`."""
        where = [f"to {self.payee}"] if self.payee else []
        where += [f"channel {hex(channel)}" for channel in self.channels]
        return " · ".join(
            [f"paid {self.agent} {format_amount(self.paid)} for {plural(self.calls, 'call')}", *where]
        )


@dataclass
class RunReport:
    """What a run did: per-node agent, tokens, price, latency and receipt; what it spent (sampled checks
    through verifier agents included) and to whom; the checks and their disputes; how it settled; the
    failovers and why; how it ended (`status`, `error`) and, when it did not finish, how to resume it.

    The money, whatever the outcome: `payments` (per agent: calls and wei paid), `spent`, `settled` (redeemed
    on chain by the run's settlement) and `unsettled` (signed in vouchers the agents hold, not yet redeemed
    by this run: each agent's server redeems what it holds on its own, and a resumed run settles the rest).
    `summary()` says it in words, with units; `money()` as JSON-safe data."""

    run_id: str
    nodes: dict[str, NodeReport]
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    spent: int = 0
    """Wei the run paid or signed to pay, calls and checks; counted as calls are paid, and from the payer's
    records when the run ends (calls paid before a resume included)."""
    budget: int = 0
    settlement: Settled | None = None
    checks: list[CheckDone] = field(default_factory=list)
    """Every paid call drawn for a check, with its verdict (or why it went unchecked) and any dispute."""
    events: list[Event] = field(default_factory=list)
    status: RunStatus = "running"
    error: str = ""
    """Why the run failed or was cancelled ("" when it is done or running)."""
    payments: dict[str, AgentPayment] = field(default_factory=dict)
    """Agent (`name (#id)`) → what the run paid it, in the order they were first paid."""
    failovers: list[Failover] = field(default_factory=list)
    """Every agent that failed a node, with the reason, in order (each one also in its node's `failovers`)."""
    resumable: bool = False
    """True when the run kept checkpoints, so that a run that did not finish can be resumed by its id."""
    resume_hint: str = ""
    """How to resume this run, as its caller offers it (e.g. `motet run --resume ID`); "" for the default."""

    @property
    def settled(self) -> int:
        """Wei of the run's payments redeemed on chain by its settlement: all of `spent` once it settled."""
        return self.spent if self.settlement is not None else 0

    @property
    def unsettled(self) -> int:
        """Wei signed in vouchers the agents hold and this run has not redeemed: still to settle."""
        return self.spent - self.settled

    def finish(self, status: RunStatus, error: str = "") -> None:
        """Record how the run ended (the composer does, whatever the outcome); a node still running then
        failed with the run, or was stopped with it."""
        self.status, self.error = status, error
        for node in self.nodes.values():
            if node.status == "running" and status in ("failed", "cancelled"):
                node.status = "failed" if status == "failed" else "stopped"

    def how_to_resume(self) -> str:
        """How to resume the run ("" once it is done): the caller's `resume_hint`, else the Python way."""
        if self.status == "done":
            return ""
        if self.resume_hint:
            return self.resume_hint
        if self.resumable:
            return (
                f"resume it with `await compiled.run(run_id={self.run_id!r})` (the same checkpoints and payer "
                "store): finished nodes are not re-run and no call is paid twice"
            )
        return "it kept no checkpoints, so it cannot be resumed (compile with `checkpoints=` to make runs resumable)"

    def summary(self) -> str:
        """How the run ended and its money, in words and units, one fact a line: who was paid what, what is
        settled and what is still to settle, the failovers and why, and how to resume a run that did not finish.

        Example (a run whose second node failed with every agent):
            run 3f2a… failed: node 'translate' failed with every agent (polyglot (#5): ...)
            paid extractor (#1) 5 gwei for 1 call · to 0x2B5A…D6cF · channel 0x1: still to settle
            spent 5 gwei of a 10,000,000 gwei budget; settled 0 wei; still to settle 5 gwei (vouchers the
            agents hold: each agent redeems its own, and a resumed run settles what is left)
            failover: translate: polyglot (#5) failed (...)
            resume it with `motet run --resume 3f2a…`
        """
        ended = {"done": "done", "running": "still running", "failed": "failed", "cancelled": "cancelled"}
        head = f"run {self.run_id} {ended[self.status]}"
        lines = [f"{head}: {self.error}" if self.error else head]
        state = "settled" if self.settlement is not None else "still to settle"
        lines += [f"{payment.describe()}: {state}" for payment in self.payments.values()]
        if not self.payments and not self.spent:
            lines.append("paid no agent: nothing was signed")
        money = f"spent {format_amount(self.spent)} of a {format_amount(self.budget)} budget"
        if self.settlement is not None:
            money += f"; settled {format_amount(self.settled)} on chain ({len(self.settlement.tx_hashes)} tx)"
            if not self.settlement.tx_hashes:
                money += ", the agents had redeemed it already"
        elif self.spent:
            money += (
                f"; settled 0 wei; still to settle {format_amount(self.unsettled)} (vouchers the agents hold: "
                "each agent's server redeems its own, and a resumed run settles what is left)"
            )
        lines.append(money)
        for failover in self.failovers:
            trying = f", then {failover.next_agent} was tried" if failover.next_agent else ""
            lines.append(
                f"failover: {failover.node}: {failover.failed_agent} failed ({failover.problem}){trying}"
            )
        if hint := self.how_to_resume():
            lines.append(hint)
        return "\n".join(lines)

    def __repr__(self) -> str:
        """One line: `RunReport(run 3f2a…, done, 5 nodes, spent 60 gwei of a 1,000,000 gwei budget, settled
        60 gwei, 1 failover)`; `summary()` says it all."""
        parts = [
            f"run {self.run_id[:8]}…" if len(self.run_id) > 9 else f"run {self.run_id}",
            self.status,
            plural(len(self.nodes), "node"),
            f"spent {format_amount(self.spent)} of a {format_amount(self.budget)} budget",
            f"settled {format_amount(self.settled)}",
        ]
        if self.failovers:
            parts.append(plural(len(self.failovers), "failover"))
        return f"RunReport({', '.join(parts)})"

    def money(self) -> dict[str, Any]:
        """How the run ended and its money as JSON-safe data; amounts in wei as decimal strings (JavaScript
        numbers lose big integers)."""
        return {
            "runId": self.run_id,
            "status": self.status,
            "error": self.error or None,
            "spent": str(self.spent),
            "budget": str(self.budget),
            "settled": str(self.settled),
            "unsettled": str(self.unsettled),
            "payments": [
                {
                    "agent": p.agent,
                    "agentId": p.agent_id,
                    "payee": p.payee,
                    "calls": p.calls,
                    "paid": str(p.paid),
                    "channels": [str(c) for c in p.channels],
                }
                for p in self.payments.values()
            ],
            "failovers": [
                {"node": f.node, "agent": f.failed_agent, "problem": f.problem, "next": f.next_agent}
                for f in self.failovers
            ],
            "resume": self.how_to_resume() or None,
        }

    def record(self, event: Event) -> None:
        self.events.append(event)
        match event:
            case NodeStarted(node=node, agent=agent):
                self.nodes[node].agent = agent
                self.nodes[node].status = "running"
            case Failover(node=node, failed_agent=agent, problem=problem):
                self.nodes[node].failovers.append(f"{agent}: {problem}")
                self.failovers.append(event)
            case ReceiptChecked(node=node, request_hash=digest):
                self.nodes[node].receipt = digest[:18]
            case CallPaid():
                self._paid(event.agent, event.agent_id, event.payee).add(event.price, event.channel)
                self.spent += event.price
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
                if event.price and event.by:
                    self._paid(event.by, _agent_id(event.by), "").add(event.price)
                    self.spent += event.price
            case _:
                pass

    def _paid(self, agent: str, agent_id: int, payee: str) -> AgentPayment:
        payment = self.payments.setdefault(agent, AgentPayment(agent, agent_id, payee))
        payment.payee = payment.payee or payee
        return payment


def _agent_id(label: str) -> int:
    """The id in an agent's label `name (#id)` (0 when it has none)."""
    found = _LABEL_ID.search(label)
    return int(found.group(1)) if found else 0
