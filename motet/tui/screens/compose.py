"""Choose a workflow (or plan one for a goal), compile it, swap agents, and run it."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Select, Static, TextArea

from motet.composer import CompiledWorkflow, Workflow
from motet.errors import InvalidAmount, MotetError
from motet.tui._session import Session
from motet.units import AMOUNT_HELP, GWEI, format_gwei, parse_amount


class ComposeScreen(Screen[None]):
    """Pick a workflow or type a goal (the planner builds one), set the budget (`1000gwei`, `0.001eth`; a bare
    number is gwei), compile with c. Highlight a node and press s to use its next candidate agent; r runs the
    compiled workflow."""

    AUTO_FOCUS = "#nodes"
    TITLE = "Compose"
    BINDINGS: ClassVar[list[BindingType]] = [
        ("c", "compile", "Compile"),
        ("s", "swap", "Swap agent"),
        ("r", "run", "Run"),
    ]

    class RunRequested(Message):
        """Run `compiled` on `inputs` (the app switches to the run screen)."""

        def __init__(self, compiled: CompiledWorkflow, inputs: dict[str, Any]) -> None:
            super().__init__()
            self.compiled = compiled
            self.inputs = inputs

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        names = list(self.session.workflows)
        yield Header()
        with Horizontal(id="choose"):
            yield Select([(n, n) for n in names], value=names[0], allow_blank=False, id="workflow")
            yield Input(placeholder="…or a goal capability, e.g. compose_report", id="goal")
            yield Input(
                _typed(self.session.budget),
                placeholder="budget, e.g. 1000gwei",
                id="budget",
                tooltip=AMOUNT_HELP,
            )
        with Horizontal(id="compiled"):
            with VerticalScroll(id="graph-box"):
                yield Static("Press c to compile.", id="graph")
            with Vertical(id="right"):
                yield DataTable(id="nodes", cursor_type="row")
                yield TextArea(json.dumps(self.session.inputs, indent=1), id="inputs", soft_wrap=True)
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
            budget = parse_amount(self.query_one("#budget", Input).value)
        except InvalidAmount as exc:
            self.notify(str(exc), severity="error")
            return
        goal = self.query_one("#goal", Input).value.strip()
        schema = self.session.goal_inputs
        if goal and schema is None:
            self.notify("This TUI was started without a schema to plan goals from: pick a workflow.")
            return
        explanation = ""
        try:
            if goal and schema is not None:
                flow, plan = await Workflow.from_goal(goal, inputs=schema, registry=self.session.registry)
                explanation = plan.explain()
            else:
                name = self.query_one("#workflow", Select).value
                flow = self.session.workflows[str(name)]
            compiled = await flow.compile(self.session.registry, payer=self.session.payer, budget=budget)
        except MotetError as exc:
            self.notify(f"{exc}\nFix the workflow, raise the budget or pick another goal.", severity="error")
            return
        self.session.compiled = compiled
        self.show(compiled, explanation)

    def show(self, compiled: CompiledWorkflow, explanation: str = "") -> None:
        """Draw the graph, why each node's agents were chosen (`CompiledWorkflow.explain()`), the agent and
        price per node, and the worst case."""
        chosen = compiled.explain()
        self.query_one("#graph", Static).update(
            compiled.ascii()
            + ("\n\n" + explanation if explanation else "")
            + ("\n\n[b]Why these agents[/]\n" + escape(chosen) if chosen else "")
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
                format_gwei(first.price),
                str(1 + len(others)),
                key=node,
            )
        table.move_cursor(row=min(row, len(compiled.order) - 1))
        self.query_one("#summary", Static).update(
            f"[b]{compiled.workflow.name}[/] · {len(compiled.order)} nodes · worst case "
            f"[b]{format_gwei(compiled.worst_case)}[/] within a budget of {format_gwei(compiled.budget)}"
        )

    def action_swap(self) -> None:
        """Use the highlighted node's next candidate first (they all offer its capability)."""
        compiled = self.session.compiled
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
        self.session.compiled = swapped = dataclasses.replace(compiled, candidates=candidates)
        self.show(swapped)
        self.notify(f"{node} now asks {swapped.candidates[node][0].label} first.")

    def action_run(self) -> None:
        compiled = self.session.compiled
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
        self.post_message(self.RunRequested(compiled, inputs))


def _typed(wei: int) -> str:
    """An amount as a person would type it: bare gwei when whole (`1000`), else with its unit."""
    return str(wei // GWEI) if wei % GWEI == 0 else f"{wei}wei"
