"""A run as it happens: tokens per node, paid calls, budget spent, failovers, then the settlement."""

from __future__ import annotations

import json
from typing import ClassVar

from pydantic import JsonValue
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Log, ProgressBar, Static
from textual.worker import Worker, WorkerState

from motet import composer
from motet.errors import MotetError
from motet.tui._format import short
from motet.tui._session import Session
from motet.tui.widgets.node_pane import NodePane
from motet.units import format_gwei


class RunScreen(Screen[None]):
    """The current run. Esc cancels it: calls not yet answered are not paid. r runs the workflow again."""

    AUTO_FOCUS = "#calls"
    TITLE = "Run"
    BINDINGS: ClassVar[list[BindingType]] = [
        ("escape", "cancel", "Cancel run"),
        ("r", "rerun", "Run again"),
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

    def compose(self) -> ComposeResult:
        yield Header()
        yield Grid(id="panes")
        yield DataTable(id="calls", cursor_type="row")
        yield ProgressBar(id="spent", show_eta=False)
        yield Static("No run yet: compose a workflow (F3) and press r.", id="run-status")
        yield Log(id="events")
        yield Footer()

    async def on_mount(self) -> None:
        table = self.query_one("#calls", DataTable)
        for key in ("node", "agent", "tokens", "price", "latency", "receipt", "voucher"):
            table.add_column(key, key=key)
        table.border_title = "paid calls"
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
        bar = self.query_one("#spent", ProgressBar)
        bar.update(total=compiled.budget, progress=0)
        self.report = compiled.new_report()
        self.state = "running"
        self._status(f"running {compiled.workflow.name} · budget {format_gwei(compiled.budget)}")
        self.worker = self.run_worker(self._run(compiled, inputs, self.report), exclusive=True, group="run")

    async def _run(
        self, compiled: composer.CompiledWorkflow, inputs: dict[str, JsonValue], report: composer.RunReport
    ) -> None:
        try:
            async for event in compiled.stream(inputs, report=report):
                self.show_event(event)
        except MotetError as exc:
            self.state = "failed"
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
                bar = self.query_one("#spent", ProgressBar)
                bar.advance(paid.price)
                log.write_line(f"{paid.node}: paid {format_gwei(paid.price)} on channel {paid.channel}")
            case composer.Failover(node=node, failed_agent=failed, problem=problem, next_agent=following):
                then = f"; trying {following}" if following else "; no agent left"
                self._pane(node).line(f"✗ {failed}: {problem}{then}")
                log.write_line(f"{node}: failover from {failed} ({problem}){then}")
                self.notify(f"{node}: {failed} failed ({problem}){then}", severity="warning")
            case composer.NodeDone() as done:
                pane = self._pane(done.node)
                pane.status(f"{done.agent} · {format_gwei(done.price)}", "done")
                if not done.completion_tokens:  # not a model: no tokens streamed, show the answer
                    pane.line(json.dumps(done.output, ensure_ascii=False))
                voucher_of = self._paid.get(done.node)
                voucher = (
                    f"ch {voucher_of.channel} · {format_gwei(voucher_of.cumulative)}" if voucher_of else "-"
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
                self._status(f"done · spent {format_gwei(spent)} of {format_gwei(budget)} · settling…")
            case composer.Settled() as settled:
                self.state = "settled"
                hashes = ", ".join(short(h, 8) for h in settled.tx_hashes) or "-"
                self._status(
                    f"[b]settled[/] {format_gwei(settled.paid)} for {settled.paid_calls} paid calls in tx {hashes} · "
                    f"gas {settled.gas_used:,} ({settled.gas_per_paid_call:,.0f} per paid call)"
                )
                log.write_line(f"settled: {', '.join(settled.tx_hashes)}")

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
        self.query_one("#events", Log).write_line("cancelled by the user")
        self.notify("Run cancelled: unfinished calls are not paid.", severity="warning")

    async def action_rerun(self) -> None:
        if self._last is None:
            self.notify("Compose a workflow first (F3).", severity="warning")
            return
        await self.start(*self._last)
