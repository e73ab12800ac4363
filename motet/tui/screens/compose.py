"""Choose a workflow (or plan one for a goal), fill its inputs, compile it, pick agents, and run it."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from pydantic import BaseModel, JsonValue
from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Select, Static

from motet.composer import CompiledWorkflow, Offer, Workflow
from motet.errors import InvalidAmount, MotetError, WorkflowInputError
from motet.tui._format import reputation
from motet.tui._session import Session
from motet.tui.widgets.input_form import InputForm
from motet.units import AMOUNT_HELP, GWEI, format_eth, format_gwei, parse_amount

GOAL = "(goal)"
"""The form key of a goal's inputs (every goal is planned from the same input schema)."""


class ComposeScreen(Screen[None]):
    """Pick a workflow or type a goal (the planner builds one), set the budget (`1000gwei`, `0.001eth`; a bare
    number is gwei), fill the inputs form (required fields are marked *), compile with c. Highlight a node:
    its candidates are listed with price, stake and reputation; pick one with enter to ask it first (s: the
    next one). r runs the chosen workflow on its inputs (compiling it first when it changed)."""

    AUTO_FOCUS = "#nodes"
    TITLE = "Compose"
    BINDINGS: ClassVar[list[BindingType]] = [
        ("c", "compile", "Compile"),
        ("s", "swap", "Next agent"),
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
        self.values: dict[str, dict[str, JsonValue]] = {}
        """Form key (workflow name, or GOAL) → the inputs last typed for it."""
        self.form_key = ""
        self.compiled_for: tuple[str, str, str] | None = None
        """(workflow name, goal, budget text) the session's compiled workflow was compiled from."""
        self.compiled_flow: Workflow | None = None
        """The workflow it was compiled from (its input schema checks the inputs)."""

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
                tooltip=f"The run's budget: {AMOUNT_HELP}",
            )
        with Horizontal(id="compiled"):
            with VerticalScroll(id="graph-box"):
                yield Static("Press c to compile.", id="graph")
            with Vertical(id="right"):
                yield DataTable(id="nodes", cursor_type="row")
                yield DataTable(id="candidates", cursor_type="row")
                yield Vertical(id="form-box")
        yield Static("", id="summary")
        yield Footer()

    async def on_mount(self) -> None:
        table = self.query_one("#nodes", DataTable)
        for key, label in (
            ("node", "node"),
            ("capability", "capability"),
            ("agent", "agent"),
            ("price", "price"),
            ("candidates", "candidates"),
        ):
            table.add_column(label, key=key)
        candidates = self.query_one("#candidates", DataTable)
        for key in ("rank", "agent", "price", "stake", "reputation", "score"):
            candidates.add_column(key, key=key)
        self.query_one("#graph-box").border_title = "graph"
        self.query_one("#budget").border_title = "budget"
        self.query_one("#nodes").border_title = "agents per node"
        candidates.border_title = "candidates (enter picks)"
        await self._show_form()

    # -- what is chosen ------------------------------------------------------------------------------

    def _workflow_name(self) -> str:
        return str(self.query_one("#workflow", Select).value)

    def _goal(self) -> str:
        return self.query_one("#goal", Input).value.strip()

    def _choice(self) -> tuple[str, str, str]:
        return self._workflow_name(), self._goal(), self.query_one("#budget", Input).value.strip()

    def _schema(self, key: str) -> dict[str, Any]:
        if key == GOAL:
            schema = self.session.goal_inputs
            if isinstance(schema, type) and issubclass(schema, BaseModel):
                return schema.model_json_schema()
            return dict(schema or {})
        return self.session.workflows[key].input_schema

    def _form_key(self) -> str:
        return GOAL if self._goal() and self.session.goal_inputs is not None else self._workflow_name()

    def form(self) -> InputForm:
        return self.query_one("#form", InputForm)

    async def _show_form(self) -> None:
        """The inputs form of what is chosen, filled with what was typed for it before (or the session's
        inputs where its schema has them)."""
        key = self._form_key()
        if key == self.form_key:
            return
        box = self.query_one("#form-box", Vertical)
        if self.form_key:
            self.values[self.form_key] = self.form().values()
        self.form_key = key
        schema = self._schema(key)
        known = self.values.get(key)
        if known is None:
            known = {k: v for k, v in self.session.inputs.items() if k in schema.get("properties", {})}
        await box.remove_children()
        await box.mount(InputForm(schema, known))
        box.border_title = f"inputs of {key if key != GOAL else 'the goal'}"

    @on(Select.Changed, "#workflow")
    @on(Input.Changed, "#goal")
    @on(Input.Changed, "#budget")
    async def _choice_changed(self) -> None:
        await self._show_form()
        if self.session.compiled is not None and self.compiled_for != self._choice():
            self.query_one("#summary", Static).update(
                f"[yellow]changed since the last compile[/]: c compiles {escape(self._label())}, "
                "r compiles and runs it"
            )

    def _label(self) -> str:
        goal = self._goal()
        return f"the goal {goal}" if goal else self._workflow_name()

    # -- compile, pick, run -------------------------------------------------------------------------------

    @on(Input.Submitted, "#goal")
    @on(Input.Submitted, "#budget")
    async def _submitted(self) -> None:
        await self.action_compile()

    async def action_compile(self) -> CompiledWorkflow | None:
        """Compile the chosen workflow, or the plan for the goal, against the registry within the budget."""
        choice = self._choice()
        try:
            budget = parse_amount(choice[2])
        except InvalidAmount as exc:
            self.notify(f"budget: {exc}", severity="error")
            return None
        goal = choice[1]
        schema = self.session.goal_inputs
        if goal and schema is None:
            self.notify("This TUI was started without a schema to plan goals from: pick a workflow.")
            return None
        explanation = ""
        try:
            if goal and schema is not None:
                flow, plan = await Workflow.from_goal(goal, inputs=schema, registry=self.session.registry)
                explanation = plan.explain()
            else:
                flow = self.session.workflows[choice[0]]
            compiled = await flow.compile(self.session.registry, payer=self.session.payer, budget=budget)
        except MotetError as exc:
            self.notify(f"{exc}\nFix the workflow, raise the budget or pick another goal.", severity="error")
            return None
        self.session.compiled = compiled
        self.compiled_for, self.compiled_flow = choice, flow
        self.show(compiled, explanation)
        return compiled

    def show(self, compiled: CompiledWorkflow, explanation: str = "") -> None:
        """Draw the graph, why each node's agents were chosen (`CompiledWorkflow.explain()`), the agent and
        price per node, the highlighted node's candidates, and the worst case."""
        chosen = compiled.explain()
        self.query_one("#graph", Static).update(
            escape(compiled.ascii())
            + ("\n\n" + escape(explanation) if explanation else "")
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
        table.move_cursor(row=max(0, min(row, len(compiled.order) - 1)))
        self._show_candidates()
        self.query_one("#summary", Static).update(
            f"[b]{escape(compiled.workflow.name)}[/] · {len(compiled.order)} nodes · worst case "
            f"[b]{format_gwei(compiled.worst_case)}[/] within a budget of {format_gwei(compiled.budget)}"
        )

    def _node(self) -> str | None:
        compiled = self.session.compiled
        if compiled is None or not compiled.order:
            return None
        return compiled.order[min(self.query_one("#nodes", DataTable).cursor_row, len(compiled.order) - 1)]

    @on(DataTable.RowHighlighted, "#nodes")
    def _node_highlighted(self) -> None:
        self._show_candidates()

    def _show_candidates(self) -> None:
        """The highlighted node's candidates in the order they are tried: price, stake, reputation, score."""
        compiled, node = self.session.compiled, self._node()
        table = self.query_one("#candidates", DataTable)
        table.clear()
        if compiled is None or node is None:
            return
        selection = compiled.selections.get(node)
        ranked = {r.offer.agent_id: r for r in selection.ranked} if selection is not None else {}
        for rank, offer in enumerate(compiled.candidates[node], start=1):
            known = ranked.get(offer.agent_id)
            table.add_row(
                str(rank),
                offer.label,
                format_gwei(offer.price),
                format_eth(offer.stake),
                reputation(known.trust.facts if known else None),
                f"{known.score:.2f}" if known else "-",
                key=str(offer.agent_id),
            )
        table.border_title = f"candidates of {node} (enter picks)"

    @on(DataTable.RowSelected, "#candidates")
    def _picked(self, event: DataTable.RowSelected) -> None:
        compiled, node = self.session.compiled, self._node()
        if compiled is None or node is None or event.row_key.value is None:
            return
        agent_id = int(event.row_key.value)
        current = compiled.candidates[node]
        chosen = next(offer for offer in current if offer.agent_id == agent_id)
        self._reorder(compiled, node, (chosen, *(o for o in current if o is not chosen)))
        self.query_one("#candidates", DataTable).move_cursor(row=0)

    def action_swap(self) -> None:
        """Use the highlighted node's next candidate first (they all offer its capability)."""
        compiled, node = self.session.compiled, self._node()
        if compiled is None or node is None:
            self.notify("Compile first (c).", severity="warning")
            return
        current = compiled.candidates[node]
        if len(current) < 2:
            self.notify(f"{node}: no other agent offers {compiled.workflow.nodes[node].capability}.")
            return
        self._reorder(compiled, node, (*current[1:], current[0]))

    def _reorder(self, compiled: CompiledWorkflow, node: str, offers: tuple[Offer, ...]) -> None:
        candidates = {**compiled.candidates, node: offers}
        self.session.compiled = swapped = dataclasses.replace(compiled, candidates=candidates)
        self.show(swapped)
        self.notify(f"{node} now asks {offers[0].label} first.")

    async def action_run(self) -> None:
        """Run what is chosen now on its form's inputs, checked first: compiles it when the workflow, goal or
        budget changed since the last compile."""
        form = self.form()
        key = self.form_key
        compiled = self.session.compiled
        if compiled is None or self.compiled_flow is None or self.compiled_for != self._choice():
            compiled = await self.action_compile()
            if compiled is None:
                return
        assert self.compiled_flow is not None
        try:
            inputs = self.compiled_flow.validate_inputs(form.values())
        except WorkflowInputError as exc:
            form.show_errors(str(exc), exc.fields)
            self.notify(f"{exc}\nFix the inputs form, then press r.", severity="error", markup=False)
            return
        form.show_errors("", {})
        self.values[key] = form.values()
        self.post_message(self.RunRequested(compiled, inputs))


def _typed(wei: int) -> str:
    """An amount as a person would type it, with its unit: `1000gwei` when a whole number of gwei, else wei."""
    return f"{wei // GWEI}gwei" if wei % GWEI == 0 else f"{wei}wei"
