"""A compiled workflow: agents chosen, edges checked, worst case within budget; run on LangGraph.

`Workflow.compile()` makes one. Its LangGraph graph is built once, on the first run: each node is an async
function that feeds the node's inputs from the run's state, calls the node's offers in order through the
`Payer` until one delivers (a `Failover` event for each that fails), and emits the node's events. What one
run's nodes share (its id, budget and event queue) travels in LangGraph's config, so every run reuses the
graph; with `checkpoints`, each run checkpoints to SQLite and can be resumed by its id.

After a node's call is paid, the `Sampler` draws whether to check it; a chosen call is checked in a task
beside the run (the next nodes do not wait for it), and the run waits for its checks before `RunDone`. Checks
through a paid verifier agent reserve from the budget's room above the worst case (`budget - worst_case`),
so they never take what a node needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol, TypedDict, cast

import networkx as nx
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, JsonValue

from motet.composer import _accounts as accounts
from motet.composer import _events as events
from motet.composer import _render as render
from motet.composer._budget import Budget
from motet.composer._inputs import check_node_input
from motet.composer._nodes import Node, Route
from motet.composer._offer import Offer
from motet.composer._payer import Payer
from motet.composer._trust import Sampler, Selection
from motet.errors import BudgetExceeded, InvalidComposeArgument, MotetError, NodeFailed
from motet.units import format_amount

__all__ = ["CompiledWorkflow"]


class WorkflowSource(Protocol):
    """What a compiled workflow reads of the `Workflow` it was compiled from (which imports this module)."""

    name: str
    nodes: dict[str, Node]
    routes: dict[str, Route]

    def validate_inputs(self, values: Mapping[str, Any]) -> dict[str, Any]: ...


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    return {**left, **right}


_CONTEXT = "motet_run"


@dataclass(frozen=True)
class _RunContext:
    """What one run's nodes share: passed through LangGraph's config, so the graph is built once."""

    run_id: str
    budget: Budget
    emit: Callable[[events.Event], None]
    tokens: bool
    checks_budget: Budget
    """What checks through verifier agents may spend: the budget's room above the worst case."""
    checks: list[asyncio.Task[events.CheckDone]]
    settle: bool
    """The run settles at its end: a voucher no later call of the run can carry is handed over at once."""


class _State(TypedDict):
    inputs: dict[str, JsonValue]
    outputs: Annotated[dict[str, dict[str, JsonValue]], _merge]


@dataclass
class CompiledWorkflow:
    """An immutable, runnable workflow: agents chosen, edges checked, worst case within budget."""

    workflow: WorkflowSource
    """The `Workflow` it was compiled from."""
    graph: nx.DiGraph[str]
    order: list[str]
    candidates: Mapping[str, tuple[Offer, ...]]
    """Node → the offers that can serve it, in the order they are tried."""
    feeds: Mapping[str, Mapping[str, str]]
    """Node → input field → `"source.field"` that feeds it."""
    worst_case: int
    budget: int
    payer: Payer
    checkpoints: str | Path | None = None
    fault: Callable[[str, str], None] = field(default=lambda point, node: None)
    """A test hook called with `("after_node", node)` when a node finished, before LangGraph checkpoints it."""
    selections: Mapping[str, Selection] = field(default_factory=dict)
    """Node → how its candidates were chosen and ranked (what `explain()` prints)."""
    sampler: Sampler | None = None
    """Draws and runs the checks of paid calls to verifiable capabilities; None checks nothing."""
    _langgraph: Any = field(default=None, init=False, repr=False)

    # -- rendering ----------------------------------------------------------------------------------

    def _view(self) -> render.GraphView:
        nodes = [render.NodeView("__start__", "inputs")]
        edges: list[render.EdgeView] = []
        for node_id in self.order:
            node = self.workflow.nodes[node_id]
            first = self.candidates[node_id][0]
            others = len(self.candidates[node_id]) - 1
            backup = f" (+{others} backup)" if others else ""
            nodes.append(
                render.NodeView(
                    node_id, node.capability, f"{first.label} · {format_amount(first.price)}{backup}"
                )
            )
            if not node.after:
                edges.append(render.EdgeView("__start__", node_id))
            route = next((r for r in self.workflow.routes.values() if node_id in r.targets), None)
            for before in node.after:
                label = ""
                if route is not None:
                    values = [v for v, t in route.cases.items() if t == node_id]
                    label = f"{route.on} = {' | '.join(values)}" if values else "otherwise"
                edges.append(render.EdgeView(before, node_id, label))
        return render.GraphView(tuple(nodes), tuple(edges))

    def mermaid(self) -> str:
        """The graph as a Mermaid flowchart: each node with its first agent and price, routes on the edges."""
        return render.mermaid(self._view())

    def ascii(self) -> str:
        """The same graph drawn in boxes and arrows for a terminal."""
        return render.ascii(self._view())

    def explain(self) -> str:
        """Why each node's agents were chosen, node by node in run order: the policy, each candidate's price,
        stake, slashes, reputation, validation record and measured latency with its score, why the others
        rank lower, and which agents were dropped and why.

        Example (a node with two candidates and a slashed agent; lines shortened):
            echo (echo), policy trusted:
              1. careful (#2): score 0.73 · price 0.002 ETH · stake 0.1 ETH · slashes 0 · reputation 100/100 ...
              2. cheap (#1): score 0.70 · price 0.001 ETH · stake 0.1 ETH · slashes 0 · reputation 0/100 ...
                 ranks below careful (#2): score 0.70 < 0.73, lower on reputation (-0.21); better on price (+0.17)
              dropped cheater (#3): slashed 1 time (0.05 ETH): a confirmed cheat
        """
        parts = [self.selections[node].explain() for node in self.order if node in self.selections]
        return "\n".join(parts)

    # -- running ------------------------------------------------------------------------------------

    async def run(
        self,
        inputs: BaseModel | Mapping[str, JsonValue] | None = None,
        *,
        run_id: str | None = None,
        settle: bool = True,
    ) -> events.RunReport:
        """Run to the end (or resume `run_id` when `inputs` is None) and return the report."""
        report = self.new_report(run_id or "")
        async for _event in self.stream(inputs, run_id=run_id, settle=settle, report=report, tokens=False):
            pass
        return report

    def new_report(self, run_id: str = "") -> events.RunReport:
        """An empty report for a run of this workflow, to pass to `stream(report=...)`."""
        nodes = {n: events.NodeReport(n, self.workflow.nodes[n].capability) for n in self.order}
        return events.RunReport(run_id, nodes, budget=self.budget)

    async def stream(
        self,
        inputs: BaseModel | Mapping[str, JsonValue] | None = None,
        *,
        run_id: str | None = None,
        settle: bool = True,
        report: events.RunReport | None = None,
        tokens: bool = True,
    ) -> AsyncIterator[events.Event]:
        """Run, yielding events as they happen. `inputs=None` with a `run_id` resumes that run from its last
        checkpoint: finished nodes are not re-run and no call is paid twice. `tokens=False` asks agents for
        whole answers instead of token streams (no `TextDelta` events; a little less work per call)."""
        if inputs is None and run_id is None:
            raise InvalidComposeArgument("pass inputs to start a run, or the run_id of one to resume")
        run_id = run_id or uuid.uuid4().hex[:16]
        report = report if report is not None else self.new_report(run_id)
        report.run_id = run_id
        report.resumable = self.checkpoints is not None
        values: dict[str, JsonValue] | None = None
        if inputs is not None:
            values = inputs.model_dump(mode="json") if isinstance(inputs, BaseModel) else dict(inputs)
            try:  # before any call: an input error costs nothing, and the report says so
                values = self.workflow.validate_inputs(values)
            except MotetError as exc:
                report.finish("failed", str(exc))
                raise
        budget = Budget(self.budget)
        checked = self.payer.spent(run_id, checks=True)
        already = self.payer.spent(run_id) - checked
        if already:
            budget.reserve(already, what="calls paid before the resume").commit(already)
        queue: asyncio.Queue[events.Event | None] = asyncio.Queue()
        checks_budget = Budget(max(self.budget - self.worst_case, 0))
        if checked:
            checks_budget.reserve(checked, what="checks paid before the resume").commit(checked)
        context = _RunContext(run_id, budget, queue.put_nowait, tokens, checks_budget, [], settle)
        config = {"configurable": {"thread_id": run_id, _CONTEXT: context}, "max_concurrency": 16}

        async def drive() -> None:
            if values is not None:  # what resuming it by its id needs (`Payer.run`)
                self.payer.record_run(run_id, self.workflow.name, self.definition(), values, self.budget)
            try:
                async with self._checkpointer() as saver:
                    graph = self._compiled(saver)
                    start = {"inputs": values, "outputs": {}} if values is not None else None
                    if start is None and saver is not None:
                        self._replay_finished(run_id, await graph.aget_state(config), queue.put_nowait)
                    try:
                        state = await graph.ainvoke(start, config)
                    except Exception:
                        self.payer.run_status(run_id, "failed")
                        if settle:  # what was delivered is owed: the agents get its vouchers now
                            with contextlib.suppress(Exception):
                                await self.payer.hand_over(run_id, self._offers(), strict=False)
                        raise
                    finally:
                        await _finish(context.checks)
                outputs = state["outputs"]
                for node_id in self.order:
                    if node_id not in outputs:
                        queue.put_nowait(events.NodeSkipped(node_id))
                spent = budget.committed + checks_budget.committed
                queue.put_nowait(events.RunDone(outputs, spent, self.budget))
                self.payer.run_status(run_id, "done")
                if settle:
                    # The last vouchers go by `/pay` (each earlier one rode on the next call to its agent);
                    # without settling, they wait for this payer's next calls, or `Payer.aclose()`.
                    await self.payer.hand_over(run_id, self._offers(), strict=False)
                    # Off the event loop on a node; on the embedded chain (not thread-safe, and agents
                    # served in this process may share it) on the loop's thread (`Chain.off_loop`).
                    hashes, paid, gas = await self.payer.channels.chain.off_loop(self.payer.settle, run_id)
                    queue.put_nowait(events.Settled(tuple(hashes), paid, gas, self.payer.paid_calls(run_id)))
                    self.payer.run_status(run_id, "settled")
            finally:
                queue.put_nowait(None)

        task = asyncio.create_task(drive())
        ended: BaseException | None = None
        try:
            while (event := await queue.get()) is not None:
                report.record(event)
                yield event
            await task
        except BaseException as exc:  # the report says how the run ended, and its money, whatever happened
            ended = exc
            raise
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            accounts.drain(queue, report)
            accounts.close_report(report, self.payer, self._offers(), *accounts.outcome(ended))

    def _offers(self) -> list[Offer]:
        """Every agent a run of this workflow may pay: each node's candidates and the verifiers."""
        offers = [offer for found in self.candidates.values() for offer in found]
        return offers + (list(self.sampler.verifiers) if self.sampler is not None else [])

    def definition(self) -> dict[str, Any]:
        """The workflow in its file form (`Workflow.from_dict` reads it back): what a run keeps so that it can
        be resumed by its id alone (`motet runs resume ID`)."""
        schema = getattr(self.workflow, "input_schema", {})
        nodes = []
        for node in self.workflow.nodes.values():
            entry: dict[str, Any] = {"id": node.id, "capability": node.capability, "after": list(node.after)}
            if node.agent is not None:
                entry["agent"] = node.agent
            if node.max_price is not None:
                entry["max_price"] = node.max_price
            if node.inputs:
                entry["inputs"] = dict(node.inputs)
            nodes.append(entry)
        routes = [
            {
                "source": r.source,
                "on": r.on,
                "cases": dict(r.cases),
                **({"default": r.default} if r.default else {}),
            }
            for r in self.workflow.routes.values()
        ]
        return {
            "name": self.workflow.name,
            "inputs": dict(schema.get("properties", {})),
            "nodes": nodes,
            "routes": routes,
        }

    def _replay_finished(self, run_id: str, snapshot: Any, emit: Callable[[events.Event], None]) -> None:
        """On a resume, the nodes that finished before it, from the checkpoint and the payer's records: each one's
        payment (`CallPaid`, replayed) and output (`NodeDone`), so the resumed run's report is complete."""
        done: dict[str, dict[str, JsonValue]] = (snapshot.values or {}).get("outputs", {}) if snapshot else {}
        paid = {c.node: c for c in self.payer.calls(run_id) if c.status in ("signed", "paid")}
        for node_id in self.order:
            if node_id not in done:
                continue
            call = paid.get(node_id)
            offer = next(
                (o for o in self.candidates[node_id] if call is not None and o.agent_id == call.agent_id),
                None,
            )
            label = offer.label if offer is not None else (f"agent #{call.agent_id}" if call else "")
            emit(events.NodeStarted(node_id, self.workflow.nodes[node_id].capability, label))
            if call is not None:
                emit(
                    events.CallPaid(
                        node_id, label, call.agent_id, call.channel, call.price, call.cumulative, True
                    )
                )
            emit(events.NodeDone(node_id, label, done[node_id], call.price if call else 0, 0.0, 0, 0))

    @contextlib.asynccontextmanager
    async def _checkpointer(self) -> AsyncIterator[Any]:
        """The run's checkpoint saver; None without a `checkpoints` file (no run there can be resumed)."""
        if self.checkpoints is None:
            yield None
            return
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncSqliteSaver.from_conn_string(str(self.checkpoints)) as saver:
            yield saver

    def _compiled(self, checkpointer: Any) -> Any:
        """The LangGraph graph, built and compiled once; each run passes its own `_RunContext` in the config.

        Compiling inspects every node function's bytecode (LangGraph looks for subgraphs), which cost more than
        the paid calls of a fast graph; a run with checkpoints gets a copy that writes to its saver.
        """
        if self._langgraph is None:
            self._langgraph = self._build_state_graph().compile()
        return (
            self._langgraph if checkpointer is None else self._langgraph.copy({"checkpointer": checkpointer})
        )

    def _build_state_graph(self) -> Any:
        from langgraph.graph import END, START, StateGraph

        builder = StateGraph(_State)
        for node_id in self.order:
            builder.add_node(node_id, cast(Any, self._node_fn(node_id)))
        routed = {t for r in self.workflow.routes.values() for t in r.targets}
        for node_id in self.order:
            node = self.workflow.nodes[node_id]
            if not node.after:
                builder.add_edge(START, node_id)
            elif node_id not in routed:
                builder.add_edge(list(node.after) if len(node.after) > 1 else node.after[0], node_id)
            if self.graph.out_degree(node_id) == 0:
                builder.add_edge(node_id, END)
        for route in self.workflow.routes.values():
            builder.add_conditional_edges(route.source, _chooser(route), [*route.targets, END])
        return builder

    def _node_fn(self, node_id: str) -> Callable[[_State, RunnableConfig], Any]:
        node = self.workflow.nodes[node_id]
        candidates = self.candidates[node_id]
        feeds = self.feeds[node_id]

        async def run_node(state: _State, config: RunnableConfig) -> dict[str, Any]:
            context: _RunContext = config["configurable"][_CONTEXT]
            run_id, budget, emit = context.run_id, context.budget, context.emit
            value: dict[str, JsonValue] = {}
            for field_name, source in feeds.items():
                where, _, name = source.partition(".")
                origin = state["inputs"] if where == "input" else state["outputs"][where]
                if name in origin:
                    value[field_name] = origin[name]
            emit(events.NodeStarted(node_id, node.capability, candidates[0].label))
            attempts: list[tuple[str, str]] = []
            # An input no candidate's schema takes fails the run here, before anything is paid: never a failover.
            usable = check_node_input(node_id, candidates, value, feeds)
            for index, offer in enumerate(candidates):
                if offer.agent_id not in usable:
                    continue  # its card takes another shape of input: not called, not paid
                try:
                    paid = await self.payer.call(
                        run_id,
                        node_id,
                        offer,
                        value,
                        budget,
                        on_token=(lambda text: emit(events.TextDelta(node_id, text)))
                        if context.tokens
                        else None,
                    )
                except BudgetExceeded:
                    raise
                except (MotetError, TimeoutError) as exc:
                    problem = getattr(exc, "problem", None) or str(exc) or type(exc).__name__
                    attempts.append((offer.label, problem))
                    following = candidates[index + 1].label if index + 1 < len(candidates) else None
                    emit(events.Failover(node_id, offer.label, problem, following))
                    continue
                call = paid.invocation
                if call is not None:
                    receipt = call.receipt
                    emit(
                        events.ReceiptChecked(
                            node_id, offer.label, receipt.seq, "0x" + receipt.request_hash.hex(),
                            "0x" + receipt.response_hash.hex(),
                        )
                    )  # fmt: skip
                emit(
                    events.CallPaid(
                        node_id, offer.label, offer.agent_id, paid.channel, paid.price, paid.cumulative,
                        paid.replayed, offer.payout,
                    )
                )  # fmt: skip
                if context.settle and not self._may_call(offer.payout, node_id, state):
                    await self.payer.pay_now(paid.channel)  # else it rides on the next call to this agent
                if self.sampler is not None and call is not None and self.sampler.chosen(offer, call):
                    context.checks.append(
                        self.sampler.start(run_id, node_id, offer, value, call, context.checks_budget, emit)
                    )
                emit(
                    events.NodeDone(
                        node_id,
                        offer.label,
                        paid.output,
                        paid.price,
                        call.latency_s if call else 0.0,
                        call.usage.prompt_tokens if call else 0,
                        call.usage.completion_tokens if call else 0,
                    )
                )
                self.fault("after_node", node_id)
                return {"outputs": {node_id: paid.output}}
            raise NodeFailed(node_id, attempts)

        run_node.__name__ = f"node_{node_id}"
        return run_node

    def _may_call(self, payout: str, node_id: str, state: _State) -> bool:
        """Whether a node of the run other than `node_id`, not finished yet, may call the agent paid at `payout`."""
        done = state["outputs"]
        return any(
            offer.payout == payout
            for other, offers in self.candidates.items()
            if other != node_id and other not in done
            for offer in offers
        )


async def _finish(checks: list[asyncio.Task[events.CheckDone]]) -> None:
    """Wait for the run's checks (each reports its own failure); when the run is cancelled, cancel them too."""
    if not checks:
        return
    try:
        await asyncio.gather(*checks, return_exceptions=True)
    except asyncio.CancelledError:
        for task in checks:
            task.cancel()
        raise


def _chooser(route: Route) -> Callable[[_State], str]:
    from langgraph.graph import END

    def choose(state: _State) -> str:
        value = state["outputs"].get(route.source, {}).get(route.on)
        target = route.cases.get(str(value), route.default)
        return target if target is not None else END

    return choose
