"""A run as it happens: tokens per node, then each answer in words, paid calls, the budget spent, failovers,
the settlement; and the runs of this session."""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import JsonValue
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Grid, Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Log, Static
from textual.worker import Worker, WorkerState

from motet import composer
from motet.errors import MotetError
from motet.settings import Settings
from motet.tui._format import short
from motet.tui._session import Session
from motet.tui.widgets.budget import BudgetMeter
from motet.tui.widgets.node_pane import NodePane
from motet.units import format_gwei


@dataclass
class PastRun:
    """One run of this session, as the history table shows it."""

    run_id: str
    workflow: str
    started: float
    """Seconds since the epoch."""
    budget: int
    status: str = "running"
    spent: int = 0
    settled: int | None = None
    """What the settlement paid, in wei; None before it."""
    kept: bool = False
    """A run kept in motet's home (by `motet run` or another session), not one of this session's."""


class RunScreen(Screen[None]):
    """The current run. Esc cancels it: calls not yet answered are not paid. r runs the same workflow again
    on the same inputs (to run another one, choose it on the compose screen, F3, and press r there). The runs
    of this session are listed at the bottom right."""

    AUTO_FOCUS = "#calls"
    TITLE = "Run"
    BINDINGS: ClassVar[list[BindingType]] = [
        ("escape", "cancel", "Cancel run"),
        ("r", "rerun", "Run same again"),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.report: composer.RunReport | None = None
        self.worker: Worker[None] | None = None
        self.state = "idle"
        self._paid: dict[str, composer.CallPaid] = {}
        self._receipts: set[str] = set()
        self._last: tuple[composer.CompiledWorkflow, dict[str, JsonValue]] | None = None
        self._ready = False
        self.history: list[PastRun] = []
        """The runs of this session, oldest first."""
        self.kept: list[PastRun] = []
        """The runs kept in motet's home when the screen opened, newest first (`motet runs` lists them)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Grid(id="panes")
        yield DataTable(id="calls", cursor_type="row")
        yield BudgetMeter(id="spent")
        yield Static("No run yet: compose a workflow (F3) and press r.", id="run-status")
        with Horizontal(id="bottom"):
            yield Log(id="events")
            yield DataTable(id="history", cursor_type="row")
        yield Footer()

    async def on_mount(self) -> None:
        table = self.query_one("#calls", DataTable)
        for key, label in (
            ("node", "node"),
            ("agent", "agent"),
            ("tokens", "tokens in+out"),
            ("price", "price"),
            ("latency", "latency"),
            ("receipt", "receipt"),
            ("voucher", "voucher: channel · cumulative"),
        ):
            table.add_column(label, key=key)
        table.border_title = "paid calls"
        history = self.query_one("#history", DataTable)
        for key in ("run", "workflow", "status", "spent", "settled", "started"):
            history.add_column(key, key=key)
        history.border_title = "runs: this session, then those kept in motet's home"
        self.kept = kept_runs(Settings.from_env().home)
        self._show_history()
        self.query_one("#spent", BudgetMeter).set(0, 0)
        self.query_one("#events", Log).border_title = "events"
        self._ready = True
        if self._last is not None:  # start() came before the screen was ready
            await self.start(*self._last)

    async def start(self, compiled: composer.CompiledWorkflow, inputs: dict[str, JsonValue]) -> None:
        """Start a run of `compiled` on `inputs`; one run at a time."""
        if self.worker is not None and self.worker.state == WorkerState.RUNNING:
            self.notify("A run is in progress: wait for it or cancel it (Esc).", severity="warning")
            return
        self._last = (compiled, inputs)
        if not self._ready:
            return
        self._paid.clear()
        self._receipts.clear()
        panes = self.query_one("#panes", Grid)
        await panes.remove_children()
        await panes.mount_all(NodePane(n, compiled.workflow.nodes[n].capability) for n in compiled.order)
        self.query_one("#calls", DataTable).clear()
        self.query_one("#events", Log).clear()
        self.query_one("#spent", BudgetMeter).set(0, compiled.budget)
        self.report = compiled.new_report(uuid.uuid4().hex[:16])
        self.state = "running"
        self.history.append(PastRun(self.report.run_id, compiled.workflow.name, time.time(), compiled.budget))
        self._show_history()
        self._status(f"running {compiled.workflow.name} · budget {format_gwei(compiled.budget)}")
        self.worker = self.run_worker(self._run(compiled, inputs, self.report), exclusive=True, group="run")

    async def _run(
        self, compiled: composer.CompiledWorkflow, inputs: dict[str, JsonValue], report: composer.RunReport
    ) -> None:
        try:
            async for event in compiled.stream(inputs, run_id=report.run_id, report=report):
                self.show_event(event)
        except MotetError as exc:
            self.state = "failed"
            self._record(status="failed")
            self._status(f"[red]failed[/]: {exc}")
            self.notify(
                f"{exc}\nRaise the budget or swap agents on the compose screen (F3).", severity="error"
            )

    def show_event(self, event: composer.Event) -> None:
        log = self.query_one("#events", Log)
        match event:
            case composer.NodeStarted(node=node, agent=agent):
                self._pane(node).status(f"{agent} · running", "running")
                log.write_line(f"{node}: asking {agent}")
            case composer.TextDelta(node=node, text=text):
                self._pane(node).tokens(text)
            case composer.ReceiptChecked(node=node):
                self._receipts.add(node)
            case composer.CallPaid() as paid:
                self._paid[paid.node] = paid
                self.query_one("#spent", BudgetMeter).add(paid.price)
                self._record(spent=self.query_one("#spent", BudgetMeter).spent)
                log.write_line(f"{paid.node}: paid {format_gwei(paid.price)} on channel {hex(paid.channel)}")
            case composer.Failover(node=node, failed_agent=failed, problem=problem, next_agent=following):
                then = f"; trying {following}" if following else "; no agent left"
                self._pane(node).line(f"✗ {failed}: {problem}{then}")
                log.write_line(f"{node}: failover from {failed} ({problem}){then}")
                self.notify(f"{node}: {failed} failed ({problem}){then}", severity="warning")
            case composer.NodeDone() as done:
                pane = self._pane(done.node)
                pane.status(f"{done.agent} · {format_gwei(done.price)}", "done")
                pane.output(done.output)
                voucher_of = self._paid.get(done.node)
                voucher = (
                    f"{hex(voucher_of.channel)} · {format_gwei(voucher_of.cumulative)}" if voucher_of else "-"
                )
                self.query_one("#calls", DataTable).add_row(
                    done.node,
                    done.agent,
                    f"{done.prompt_tokens}+{done.completion_tokens}",
                    format_gwei(done.price),
                    f"{done.latency_s:.2f} s",
                    "✓" if done.node in self._receipts else "-",
                    voucher,
                    key=done.node,
                )
            case composer.CheckDone() as check:
                by = f" by {check.by}" if check.by else ""
                self._pane(check.node).line(f"checked{by}: {check.verdict}")
                log.write_line(f"{check.node}: check of {check.agent}{by}: {check.verdict} ({check.detail})")
                if check.problem:
                    self.notify(f"{check.node}: {check.problem}", severity="warning")
            case composer.DisputeOpened() as opened:
                log.write_line(
                    f"{opened.node}: dispute #{opened.dispute_id} opened against {opened.agent} "
                    f"(bond {format_gwei(opened.bond)})"
                )
                self.notify(
                    f"{opened.agent} answered {opened.node} with a cheat: dispute #{opened.dispute_id}"
                )
            case composer.NodeSkipped(node=node):
                self._pane(node).status("skipped", "skipped")
            case composer.RunDone(spent=spent, budget=budget):
                self._record(status="settling", spent=spent)
                self._status(f"done · spent {format_gwei(spent)} of {format_gwei(budget)} · settling…")
            case composer.Settled() as settled:
                self.state = "settled"
                self._record(status="settled", settled=settled.paid)
                hashes = ", ".join(short(h, 8) for h in settled.tx_hashes) or "-"
                self._status(
                    f"[b]settled[/] {format_gwei(settled.paid)} for {settled.paid_calls} paid calls in tx {hashes} · "
                    f"gas {settled.gas_used:,} ({settled.gas_per_paid_call:,.0f} per paid call)"
                )
                log.write_line(f"settled: {', '.join(settled.tx_hashes)}")

    def _record(self, **changes: str | int | None) -> None:
        """Update the current run's row of the history."""
        if not self.history:
            return
        current = self.history[-1]
        for key, value in changes.items():
            setattr(current, key, value)
        self._show_history()

    def _show_history(self) -> None:
        table = self.query_one("#history", DataTable)
        table.clear()
        for past in [*reversed(self.history), *self.kept]:
            table.add_row(
                short(past.run_id, 4),
                past.workflow,
                past.status + (" (kept)" if past.kept else ""),
                format_gwei(past.spent),
                "-" if past.settled is None else format_gwei(past.settled),
                time.strftime("%H:%M:%S" if not past.kept else "%m-%d %H:%M", time.localtime(past.started)),
                key=past.run_id,
            )

    def _pane(self, node: str) -> NodePane:
        return self.query_one(f"#panes NodePane.node-pane#pane-{node}", NodePane)

    def _status(self, text: str) -> None:
        self.query_one("#run-status", Static).update(text)

    def action_cancel(self) -> None:
        if self.worker is None or self.worker.state != WorkerState.RUNNING:
            self.notify("No run in progress.")
            return
        self.worker.cancel()
        self.state = "cancelled"
        for pane in self.query(NodePane):
            if pane.has_class("running") or pane.has_class("pending"):
                pane.status("cancelled · not paid", "cancelled")
        self._status("[yellow]cancelled[/]: calls not answered yet are not paid")
        self._record(status="cancelled")
        self.query_one("#events", Log).write_line("cancelled by the user")
        self.notify("Run cancelled: unfinished calls are not paid.", severity="warning")

    async def action_rerun(self) -> None:
        if self._last is None:
            self.notify("Compose a workflow first (F3).", severity="warning")
            return
        await self.start(*self._last)


def kept_runs(home: Path) -> list[PastRun]:
    """The runs the payers' files in `home` keep (`calls-<address>-<chain id>.sqlite`, as `motet run` writes
    them), newest first; a file that cannot be read is skipped (it belongs to another process or version)."""
    found: list[PastRun] = []
    for path in sorted(home.glob("calls-*.sqlite")):
        try:
            log = composer.RunLog(path)
            try:
                records = log.runs()
            finally:
                log.close()
        except sqlite3.Error:
            continue
        found.extend(
            PastRun(r.run_id, r.workflow, r.started, r.budget, r.status, r.spent, kept=True) for r in records
        )
    return sorted(found, key=lambda past: -past.started)
