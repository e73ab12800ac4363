"""Choose a workflow (or plan one for a goal), compile it, swap agents, and run it."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Select, Static, TextArea

from motet.composer import CompiledWorkflow, Workflow
from motet.errors import MotetError
from motet.market import Document
from motet.tui.format import gwei, parse_gwei

if TYPE_CHECKING:
    from motet.tui.app import MotetApp


class ComposeScreen(Screen[None]):
    """Pick a workflow or type a goal (the planner builds one), set the budget, compile with c. Highlight a
    node and press s to use its next candidate agent; r runs the compiled workflow."""

    AUTO_FOCUS = "#nodes"
    TITLE = "Compose"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "compile", "Compile"),
        Binding("s", "swap", "Swap agent"),
        Binding("r", "run", "Run"),
    ]

    @property
    def motet(self) -> MotetApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        names = list(self.motet.workflows)
        yield Header()
        with Horizontal(id="choose"):
            yield Select([(n, n) for n in names], value=names[0], allow_blank=False, id="workflow")
            yield Input(placeholder="…or a goal capability, e.g. compose_report", id="goal")
            yield Input(str(self.motet.budget // 10**9), placeholder="budget (gwei)", id="budget")
        with Horizontal(id="compiled"):
            with VerticalScroll(id="graph-box"):
                yield Static("Press c to compile.", id="graph")
            with Vertical(id="right"):
                yield DataTable(id="nodes", cursor_type="row")
                yield TextArea(json.dumps(self.motet.inputs, indent=1), id="inputs", soft_wrap=True)
        yield Static("", id="summary")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#nodes", DataTable)
        for key in ("node", "capability", "agent", "price", "candidates"):
            table.add_column(key, key=key)
        self.query_one("#graph-box").border_title = "graph"
        self.query_one("#inputs").border_title = "inputs (JSON)"
        self.query_one("#nodes").border_title = "agents per node"

    @on(Input.Submitted, "#goal")
    @on(Input.Submitted, "#budget")
    async def _submitted(self) -> None:
        await self.action_compile()

    async def action_compile(self) -> None:
        """Compile the chosen workflow, or the plan for the goal, against the registry within the budget."""
        try:
            budget = parse_gwei(self.query_one("#budget", Input).value)
        except ValueError as exc:
            self.notify(str(exc), severity="error")
            return
        goal = self.query_one("#goal", Input).value.strip()
        explanation = ""
        try:
            if goal:
                flow, plan = await Workflow.from_goal(goal, inputs=Document, registry=self.motet.registry)
                explanation = plan.explain()
            else:
                name = self.query_one("#workflow", Select).value
                flow = self.motet.workflows[str(name)]
            compiled = await flow.compile(self.motet.registry, payer=self.motet.payer, budget=budget)
        except MotetError as exc:
            self.notify(f"{exc}\nFix the workflow, raise the budget or pick another goal.", severity="error")
            return
        self.motet.compiled = compiled
        self.show(compiled, explanation)

    def show(self, compiled: CompiledWorkflow, explanation: str = "") -> None:
        """Draw the graph, the agent and price per node, and the worst case."""
        self.query_one("#graph", Static).update(
            compiled.ascii() + ("\n\n" + explanation if explanation else "")
        )
        table = self.query_one("#nodes", DataTable)
        row = table.cursor_row
        table.clear()
        for node in compiled.order:
            first, *others = compiled.candidates[node]
            table.add_row(
                node,
                compiled.workflow.nodes[node].capability,
                first.label,
                gwei(first.price),
                str(1 + len(others)),
                key=node,
            )
        table.move_cursor(row=min(row, len(compiled.order) - 1))
        self.query_one("#summary", Static).update(
            f"[b]{compiled.workflow.name}[/] · {len(compiled.order)} nodes · worst case "
            f"[b]{gwei(compiled.worst_case)}[/] within a budget of {gwei(compiled.budget)}"
        )

    def action_swap(self) -> None:
        """Use the highlighted node's next candidate first (they all offer its capability)."""
        compiled = self.motet.compiled
        if compiled is None:
            self.notify("Compile first (c).", severity="warning")
            return
        table = self.query_one("#nodes", DataTable)
        node = compiled.order[table.cursor_row]
        current = compiled.candidates[node]
        if len(current) < 2:
            self.notify(f"{node}: no other agent offers {compiled.workflow.nodes[node].capability}.")
            return
        candidates = {**compiled.candidates, node: (*current[1:], current[0])}
        self.motet.compiled = swapped = dataclasses.replace(compiled, candidates=candidates)
        self.show(swapped)
        self.notify(f"{node} now asks {swapped.candidates[node][0].label} first.")

    def action_run(self) -> None:
        compiled = self.motet.compiled
        if compiled is None:
            self.notify("Compile first (c), then run (r).", severity="warning")
            return
        try:
            inputs: Any = json.loads(self.query_one("#inputs", TextArea).text)
        except json.JSONDecodeError as exc:
            self.notify(f"The inputs are not JSON: {exc}. Fix them in the inputs box.", severity="error")
            return
        if not isinstance(inputs, dict):
            self.notify('The inputs must be a JSON object, e.g. {"document": "..."}.', severity="error")
            return
        self.motet.start_run(compiled, inputs)
