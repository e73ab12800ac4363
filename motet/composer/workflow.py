"""Describe a workflow, compile it against the registry, run it on LangGraph with every call paid.

    flow = (
        Workflow("brief", inputs=Text)
        .add("extract", "summarize")
        .add("keywords", "extract_keywords", after="extract", inputs={"text": "extract.summary"})
        ...
    )
    runnable = await flow.compile(registry, payer=Payer(chain), budget=10**16)
    report = await runnable.run({"text": "..."})

`compile()` resolves each node's candidate agents from the registry (cheapest, then most staked, among
those whose card declares the capability and whose receipt signer is the registered payout), type-checks
every edge against the cards' JSON Schemas, refuses a graph whose worst case exceeds the budget, and builds
an immutable LangGraph graph. Errors name the node or the edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import tomllib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypedDict, cast

import networkx as nx
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, JsonValue

from motet.agents.cards import fetch_card
from motet.composer import render
from motet.composer.budget import Budget
from motet.composer.events import (
    CallPaid,
    Event,
    Failover,
    NodeDone,
    NodeReport,
    NodeSkipped,
    NodeStarted,
    ReceiptChecked,
    RunDone,
    RunReport,
    Settled,
    Token,
)
from motet.composer.payer import Candidate, Payer
from motet.composer.planner import Offer, Plan, plan
from motet.composer.types import check_inputs, fields_of
from motet.errors import BudgetExceeded, GraphError, MotetError, NodeFailed
from motet.registry import Registry, capability_hash

Policy = Literal["cheapest", "most_staked"]


@dataclass(frozen=True)
class Node:
    """One step: a capability, optionally pinned to an agent or capped in price, and where its input comes from."""

    id: str
    capability: str
    after: tuple[str, ...] = ()
    agent: int | None = None
    max_price: int | None = None
    inputs: Mapping[str, str] = field(default_factory=dict)
    """Input field → `"node.field"` or `"input.field"`, for fields not fed by a same-named field."""


@dataclass(frozen=True)
class Route:
    """After `source`, run only the target chosen by the value of its output field `on`."""

    source: str
    on: str
    cases: Mapping[str, str]
    default: str | None = None

    @property
    def targets(self) -> set[str]:
        return set(self.cases.values()) | ({self.default} if self.default else set())


class Workflow:
    """A graph of capability calls: build it with `add()` and `route()`, then `compile()` it."""

    def __init__(self, name: str, *, inputs: type[BaseModel] | Mapping[str, Any]) -> None:
        self.name = name
        self.input_schema: dict[str, Any] = (
            inputs.model_json_schema() if isinstance(inputs, type) else dict(inputs)
        )
        self.nodes: dict[str, Node] = {}
        self.routes: dict[str, Route] = {}

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, nodes={list(self.nodes)})"

    def add(
        self,
        id: str,
        capability: str,
        *,
        after: str | Sequence[str] = (),
        agent: int | None = None,
        max_price: int | None = None,
        inputs: Mapping[str, str] | None = None,
    ) -> Self:
        """Add a node calling `capability` once every node in `after` is done (roots read the inputs)."""
        if id in self.nodes or id in ("input", "__start__", "__end__"):
            raise GraphError(id, "node ids must be unique and not 'input', '__start__' or '__end__'")
        predecessors = (after,) if isinstance(after, str) else tuple(after)
        self.nodes[id] = Node(id, capability, predecessors, agent, max_price, dict(inputs or {}))
        return self

    def route(self, source: str, *, on: str, cases: Mapping[str, str], default: str | None = None) -> Self:
        """Choose which of `source`'s successors runs by its output field `on` (`cases`: value → node)."""
        self.routes[source] = Route(source, on, dict(cases), default)
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Workflow:
        """A workflow from its file form (TOML/YAML): `name`, `inputs` (JSON Schema properties), `nodes`,
        `routes`."""
        try:
            properties = dict(data["inputs"])
            flow = cls(
                str(data["name"]),
                inputs={"type": "object", "properties": properties, "required": sorted(properties)},
            )
            for node in data["nodes"]:
                flow.add(
                    str(node["id"]),
                    str(node["capability"]),
                    after=node.get("after", ()),
                    agent=node.get("agent"),
                    max_price=node.get("max_price"),
                    inputs=node.get("inputs"),
                )
            for route in data.get("routes", ()):
                flow.route(
                    route["source"], on=route["on"], cases=route["cases"], default=route.get("default")
                )
        except (KeyError, TypeError) as exc:
            raise GraphError("workflow file", f"missing or malformed entry: {exc}") from exc
        return flow

    @classmethod
    def load(cls, path: str | Path) -> Workflow:
        """Read a `.toml`, `.yaml` or `.yml` workflow file."""
        path = Path(path)
        text = path.read_text()
        if path.suffix == ".toml":
            return cls.from_dict(tomllib.loads(text))
        if path.suffix in (".yaml", ".yml"):
            import yaml

            return cls.from_dict(yaml.safe_load(text))
        raise GraphError(str(path), "a workflow file is .toml, .yaml or .yml")

    @classmethod
    async def from_goal(
        cls, goal: str, *, inputs: type[BaseModel] | Mapping[str, Any], registry: Registry, max_steps: int = 6
    ) -> tuple[Workflow, Plan]:
        """Plan a workflow that produces `goal`'s output from `inputs`: the cheapest type-compatible chain
        of registered capabilities (see `motet.composer.planner`). Returns it with the plan, whose
        `explain()` says why. Nodes are named after their capability and not pinned, so failover applies.
        """
        flow = cls(f"goal:{goal}", inputs=inputs)
        found = plan(goal, fields_of(flow.input_schema), await registry_offers(registry), max_steps=max_steps)
        for step in found.steps:
            sources = {ref.partition(".")[0] for ref in step.inputs.values()} - {"input"}
            flow.add(step.capability, step.capability, after=sorted(sources), inputs=dict(step.inputs))
        return flow, found

    def _graph(self) -> nx.DiGraph[str]:
        graph: nx.DiGraph[str] = nx.DiGraph()
        graph.add_nodes_from(self.nodes)
        for node in self.nodes.values():
            for before in node.after:
                if before not in self.nodes:
                    raise GraphError(f"{before} -> {node.id}", f"no node {before!r}")
                graph.add_edge(before, node.id)
        if not nx.is_directed_acyclic_graph(graph):
            edges = nx.find_cycle(graph)
            cycle = " -> ".join([edge[0] for edge in edges] + [edges[0][0]])
            raise GraphError(cycle, "the graph has a cycle")
        for route in self.routes.values():
            if route.source not in self.nodes:
                raise GraphError(route.source, "a route starts at a node that does not exist")
            for target in route.targets:
                if target not in self.nodes or self.nodes[target].after != (route.source,):
                    raise GraphError(
                        f"{route.source} -> {target}",
                        "a route target must be a node whose only predecessor is the route's source",
                    )
                branch = {target} | nx.descendants(graph, target)
                for member in branch:
                    outside = set(graph.predecessors(member)) - branch - {route.source}
                    if outside:
                        raise GraphError(
                            member, f"joins a routed branch with {sorted(outside)}: it might never run"
                        )
        return graph

    async def compile(
        self,
        registry: Registry,
        *,
        payer: Payer,
        budget: int,
        policy: Policy = "cheapest",
        checkpoints: str | Path | None = None,
    ) -> CompiledWorkflow:
        """Resolve agents, type-check every edge, check the worst case against `budget`, build the graph."""
        graph = self._graph()
        registry.sync()
        candidates: dict[str, tuple[Candidate, ...]] = {}
        for node in self.nodes.values():
            candidates[node.id] = await _candidates(registry, node, policy)
        feeds: dict[str, dict[str, str]] = {}
        order = list(nx.topological_sort(graph))
        for node_id in order:
            node = self.nodes[node_id]
            spec = candidates[node_id][0].card.capability(node.capability)
            # In the order data arrives: a predecessor's field takes over from a same-named input.
            sources: dict[str, dict[str, dict[str, Any]]] = {"input": fields_of(self.input_schema)}
            for before in node.after:
                out = candidates[before][0].card.capability(self.nodes[before].capability).output_schema
                sources[before] = fields_of(out)
            feeds[node_id] = check_inputs(node_id, spec.input_schema, sources, dict(node.inputs) or None)
            for route in self.routes.values():
                if route.source == node_id and route.on not in fields_of(spec.output_schema):
                    raise GraphError(
                        node_id, f"routes on {route.on!r}, not a field of {node.capability}'s output"
                    )
        worst = sum(max(c.price for c in candidates[n]) for n in self.nodes)
        Budget(budget).check_worst_case(worst, what=f"workflow {self.name!r} at worst case")
        return CompiledWorkflow(self, graph, order, candidates, feeds, worst, budget, payer, checkpoints)


async def registry_offers(registry: Registry) -> list[Offer]:
    """Every active agent's capabilities at its price, from the registry and the agents' cards; agents whose
    card cannot be read, or whose card's signer is not their payout, are left out."""
    offers: list[Offer] = []
    for record in registry.search():
        try:
            card = await fetch_card(record.agent_uri)
        except MotetError:
            continue
        if card.signer != record.payout:
            continue
        offers.extend(
            Offer(record.agent_id, card.name, spec, record.price)
            for spec in card.capabilities
            if record.declares(capability_hash(spec.name))
        )
    return offers


async def _candidates(registry: Registry, node: Node, policy: Policy) -> tuple[Candidate, ...]:
    records = (
        [registry.get(node.agent)]
        if node.agent is not None
        else registry.search(node.capability, max_price=node.max_price, refresh=False)
    )
    found: list[Candidate] = []
    problems: list[str] = []
    for record in records:
        if not record.active:
            problems.append(f"agent {record.agent_id} is inactive")
            continue
        try:
            card = await fetch_card(record.agent_uri)
            card.capability(node.capability)
        except MotetError as exc:
            problems.append(f"agent {record.agent_id}: {exc}")
            continue
        if card.signer != record.payout:
            problems.append(
                f"agent {record.agent_id}'s card signer {card.signer} is not its payout {record.payout}"
            )
            continue
        found.append(
            Candidate(record.agent_id, card.name, record.payout, record.price, record.bonded_stake, card)
        )
    if not found:
        cap = f" at or under {node.max_price}" if node.max_price is not None else ""
        why = f" ({'; '.join(problems)})" if problems else ""
        raise GraphError(node.id, f"no active agent offers {node.capability!r}{cap}{why}")
    if policy == "most_staked":
        found.sort(key=lambda c: (-c.stake, c.price, c.agent_id))
    else:
        found.sort(key=lambda c: (c.price, -c.stake, c.agent_id))
    return tuple(found)


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    return {**left, **right}


_CONTEXT = "motet_run"


@dataclass(frozen=True)
class _RunContext:
    """What one run's nodes share: passed through LangGraph's config, so the graph is built once."""

    run_id: str
    budget: Budget
    emit: Callable[[Event], None]
    tokens: bool


class _State(TypedDict):
    inputs: dict[str, JsonValue]
    outputs: Annotated[dict[str, dict[str, JsonValue]], _merge]


@dataclass
class CompiledWorkflow:
    """An immutable, runnable workflow: agents chosen, edges checked, worst case within budget."""

    workflow: Workflow
    graph: nx.DiGraph[str]
    order: list[str]
    candidates: Mapping[str, tuple[Candidate, ...]]
    feeds: Mapping[str, Mapping[str, str]]
    """Node → input field → `"source.field"` that feeds it."""
    worst_case: int
    budget: int
    payer: Payer
    checkpoints: str | Path | None = None
    fault: Callable[[str, str], None] = field(default=lambda point, node: None)
    """A test hook called with `("after_node", node)` when a node finished, before LangGraph checkpoints it."""
    _langgraph: Any = field(default=None, init=False, repr=False)

    # -- rendering ----------------------------------------------------------------------------------

    def view(self) -> render.GraphView:
        nodes = [render.NodeView("__start__", "inputs")]
        edges: list[render.EdgeView] = []
        for node_id in self.order:
            node = self.workflow.nodes[node_id]
            first = self.candidates[node_id][0]
            others = len(self.candidates[node_id]) - 1
            backup = f" (+{others} backup)" if others else ""
            nodes.append(
                render.NodeView(node_id, node.capability, f"{first.label} · {first.price:,} wei{backup}")
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
        return render.mermaid(self.view())

    def ascii(self) -> str:
        return render.ascii(self.view())

    # -- running ------------------------------------------------------------------------------------

    async def run(
        self,
        inputs: BaseModel | Mapping[str, JsonValue] | None = None,
        *,
        run_id: str | None = None,
        settle: bool = True,
    ) -> RunReport:
        """Run to the end (or resume `run_id` when `inputs` is None) and return the report."""
        report = self.new_report(run_id or "")
        async for _event in self.stream(inputs, run_id=run_id, settle=settle, report=report, tokens=False):
            pass
        return report

    def new_report(self, run_id: str = "") -> RunReport:
        """An empty report for a run of this workflow, to pass to `stream(report=...)`."""
        nodes = {n: NodeReport(n, self.workflow.nodes[n].capability) for n in self.order}
        return RunReport(run_id, nodes, budget=self.budget)

    async def stream(
        self,
        inputs: BaseModel | Mapping[str, JsonValue] | None = None,
        *,
        run_id: str | None = None,
        settle: bool = True,
        report: RunReport | None = None,
        tokens: bool = True,
    ) -> AsyncIterator[Event]:
        """Run, yielding events as they happen. `inputs=None` with a `run_id` resumes that run from its last
        checkpoint: finished nodes are not re-run and no call is paid twice. `tokens=False` asks agents for
        whole answers instead of token streams (no `Token` events; a little less work per call)."""
        if inputs is None and run_id is None:
            raise ValueError("pass inputs to start a run, or the run_id of one to resume")
        run_id = run_id or uuid.uuid4().hex[:16]
        report = report if report is not None else self.new_report(run_id)
        report.run_id = run_id
        values: dict[str, JsonValue] | None = None
        if inputs is not None:
            values = inputs.model_dump(mode="json") if isinstance(inputs, BaseModel) else dict(inputs)
        budget = Budget(self.budget)
        already = self.payer.spent(run_id)
        if already:
            budget.reserve(already, what="calls paid before the resume").commit(already)
        events: asyncio.Queue[Event | None] = asyncio.Queue()
        context = _RunContext(run_id, budget, events.put_nowait, tokens)
        config = {"configurable": {"thread_id": run_id, _CONTEXT: context}, "max_concurrency": 16}

        async def drive() -> None:
            try:
                async with self._checkpointer() as saver:
                    graph = self._compiled(saver)
                    start = {"inputs": values, "outputs": {}} if values is not None else None
                    state = await graph.ainvoke(start, config)
                outputs = state["outputs"]
                for node_id in self.order:
                    if node_id not in outputs:
                        events.put_nowait(NodeSkipped(node_id))
                events.put_nowait(RunDone(outputs, budget.committed, self.budget))
                if settle:
                    # On the event loop's thread, like every other chain call: the embedded chain is not
                    # thread-safe, and agents served in this process may share it.
                    hashes, paid, gas = self.payer.settle(run_id)
                    events.put_nowait(Settled(tuple(hashes), paid, gas, self.payer.paid_calls(run_id)))
            finally:
                events.put_nowait(None)

        task = asyncio.create_task(drive())
        try:
            while (event := await events.get()) is not None:
                report.record(event)
                yield event
            await task
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

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
            emit(NodeStarted(node_id, node.capability, candidates[0].label))
            attempts: list[tuple[str, str]] = []
            for index, candidate in enumerate(candidates):
                try:
                    paid = await self.payer.call(
                        run_id,
                        node_id,
                        candidate,
                        node.capability,
                        value,
                        budget,
                        on_token=(lambda text: emit(Token(node_id, text))) if context.tokens else None,
                    )
                except BudgetExceeded:
                    raise
                except (MotetError, TimeoutError) as exc:
                    problem = getattr(exc, "problem", None) or str(exc) or type(exc).__name__
                    attempts.append((candidate.label, problem))
                    following = candidates[index + 1].label if index + 1 < len(candidates) else None
                    emit(Failover(node_id, candidate.label, problem, following))
                    continue
                call = paid.invocation
                if call is not None:
                    receipt = call.receipt
                    emit(
                        ReceiptChecked(
                            node_id, candidate.label, receipt.seq, "0x" + receipt.request_hash.hex(),
                            "0x" + receipt.response_hash.hex(),
                        )
                    )  # fmt: skip
                emit(
                    CallPaid(
                        node_id, candidate.label, candidate.agent_id, paid.channel, paid.price, paid.cumulative,
                        paid.replayed,
                    )
                )  # fmt: skip
                emit(
                    NodeDone(
                        node_id,
                        candidate.label,
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


def _chooser(route: Route) -> Callable[[_State], str]:
    from langgraph.graph import END

    def choose(state: _State) -> str:
        value = state["outputs"].get(route.source, {}).get(route.on)
        target = route.cases.get(str(value), route.default)
        return target if target is not None else END

    return choose
