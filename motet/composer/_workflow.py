"""Describe a workflow: nodes that call capabilities, the edges between them, routes; compile it.

    flow = (
        Workflow("brief", inputs=Text)
        .add("extract", "summarize")
        .add("keywords", "extract_keywords", after="extract", inputs={"text": "extract.summary"})
        ...
    )
    runnable = await flow.compile(registry, payer=Payer(chain), budget=10**16)
    report = await runnable.run({"text": "..."})

`compile()` resolves each node's offers from the registry (among the agents whose card declares the
capability and whose receipt signer is the registered payout; slashed agents dropped; ranked by the trust
score of `motet.composer._trust` by default, or by price or stake), type-checks every edge against the
cards' JSON Schemas, refuses a graph whose worst case exceeds the budget, and returns an
immutable `CompiledWorkflow` (`motet.composer._compiled`) that runs on LangGraph. Errors name the node or
the edge.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import networkx as nx
from pydantic import BaseModel

from motet.composer._budget import Budget
from motet.composer._compiled import CompiledWorkflow
from motet.composer._files import Locator, check_document, file_schema, read_document
from motet.composer._inputs import check_values
from motet.composer._nodes import Node, Route
from motet.composer._offer import Offer, read_card, registry_offers
from motet.composer._payer import Payer
from motet.composer._planner import Plan, plan
from motet.composer._schemas import fields_of
from motet.composer._trust import (
    VERIFY,
    AgentTrust,
    Policy,
    Sampler,
    Selection,
    draw,
    prefetch_trust,
    read_trust,
    select,
)
from motet.composer._types import check_inputs
from motet.errors import GraphError, MotetError
from motet.registry import Registry
from motet.trust.economics import Economics
from motet.units import format_amount, parse_amount

__all__ = ["Node", "Policy", "Route", "Workflow"]

log = logging.getLogger(__name__)


class Workflow:
    """A graph of capability calls: build it with `add()` and `route()`, then `compile()` it."""

    def __init__(
        self, name: str, *, inputs: type[BaseModel] | Mapping[str, Any], description: str = ""
    ) -> None:
        self.name = name
        self.description = description
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
        if id in self.nodes or id in ("input", "__start__", "__end__") or "#" in id:
            raise GraphError(
                id, "node ids must be unique, not 'input', '__start__' or '__end__', and without '#'"
            )
        predecessors = (after,) if isinstance(after, str) else tuple(after)
        self.nodes[id] = Node(id, capability, predecessors, agent, max_price, dict(inputs or {}))
        return self

    def route(self, source: str, *, on: str, cases: Mapping[str, str], default: str | None = None) -> Self:
        """Choose which of `source`'s successors runs by its output field `on` (`cases`: value → node)."""
        self.routes[source] = Route(source, on, dict(cases), default)
        return self

    def validate_inputs(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """`values` checked against the workflow's input schema before anything is paid: every required input
        given, none unknown, each of the type its field asks for. Text (a command line's `-i count=3`) becomes
        the integer, number, boolean, array or object the field asks for; an absent field with a `default`
        gets it. Raises `WorkflowInputError` naming every bad field and what it expects.

        Example:
            >>> flow = Workflow("w", inputs={"properties": {"n": {"type": "integer"}}, "required": ["n"]})
            >>> flow.validate_inputs({"n": "3"})
            {'n': 3}
        """
        return check_values(self.input_schema, values, what=f"inputs of workflow {self.name!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | Locator = "workflow file") -> Workflow:
        """A workflow from its file form (TOML/YAML, docs/workflows.md): `name`, `description`, `inputs` (each
        a field's JSON Schema; required unless it has a `default`), `nodes`, `routes`. Raises
        `WorkflowFileError` naming `source` (the file, and the line when `source` is the file's `Locator`),
        the node and the problem, with the close match of a typo'd key or name."""
        if isinstance(source, Locator):
            where = source
        else:
            nodes = data.get("nodes") if isinstance(data, Mapping) else None
            where = Locator(source, nodes=nodes if isinstance(nodes, list) else [])
        check_document(data, where)
        properties = {str(name): dict(spec) for name, spec in data["inputs"].items()}
        required = sorted(name for name, spec in properties.items() if "default" not in spec)
        flow = cls(
            str(data["name"]),
            inputs={"type": "object", "properties": properties, "required": required},
            description=str(data.get("description", "")),
        )
        for node in data["nodes"]:
            price = node.get("max_price")
            flow.add(
                node["id"],
                node["capability"],
                after=node.get("after", ()),
                agent=node.get("agent"),
                max_price=parse_amount(price) if isinstance(price, str) else price,
                inputs=node.get("inputs"),
            )
        for route in data.get("routes", ()):
            flow.route(route["source"], on=route["on"], cases=route["cases"], default=route.get("default"))
        try:
            flow._graph()
        except GraphError as exc:
            node_id = exc.where.rpartition(" -> ")[2]
            index = next((i for i, node in enumerate(data["nodes"]) if node["id"] == node_id), None)
            at = ("nodes", index) if index is not None else ()
            problem = f"{exc.problem}: {exc.where}" if " -> " in exc.where else exc.problem
            raise where.error(at, problem, node=node_id if index is not None else None) from None
        return flow

    @staticmethod
    def json_schema() -> dict[str, Any]:
        """The JSON Schema of workflow files, for editors (`motet workflow schema` prints it; the file ships as
        `motet/composer/workflow.schema.json`). `load()` checks the same rules and more (docs/workflows.md)."""
        schema: dict[str, Any] = json.loads(json.dumps(file_schema()))  # a copy the caller may change
        return schema

    @classmethod
    def load(cls, path: str | Path) -> Workflow:
        """Read a `.toml`, `.yaml` or `.yml` workflow file (docs/workflows.md). Every problem (malformed TOML or
        YAML, an unknown key, a node or input that does not exist, a bad mapping) raises `WorkflowFileError`
        with one line, `FILE:LINE: node 'id': problem`, before anything touches a chain or a model."""
        data, where = read_document(path)
        return cls.from_dict(data, source=where)

    @classmethod
    async def from_goal(
        cls, goal: str, *, inputs: type[BaseModel] | Mapping[str, Any], registry: Registry, max_steps: int = 6
    ) -> tuple[Workflow, Plan]:
        """Plan a workflow that produces `goal`'s output from `inputs`: the cheapest type-compatible chain
        of registered capabilities (see `motet.composer.plan`). Returns it with the plan, whose
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
        policy: Policy = "trusted",
        checkpoints: str | Path | None = None,
    ) -> CompiledWorkflow:
        """Resolve agents, type-check every edge, check the worst case against `budget`, build the graph.

        `policy` orders each node's candidates: `"trusted"` (default) by the trust score (price, reputation,
        stake, validation record, measured latency), `"cheapest"` by price, `"most_staked"` by stake; every
        policy drops slashed agents unless the node names its agent. `CompiledWorkflow.explain()` says why.
        Sampled checks (`Settings.trust.sample_rate`) run with the payer's `checker`, else through a verifier
        agent found here (capability `verify`), paid from the budget's room above the worst case.
        """
        graph = self._graph()
        registry.sync()
        records: dict[int, AgentTrust] = {}
        # Facts are read once per block: a compile before the chain moves again reads none.
        block = prefetch_trust(registry.chain, _candidate_ids(registry, self.nodes.values()))

        def trust(offer: Offer) -> AgentTrust:
            if offer.agent_id not in records:
                records[offer.agent_id] = read_trust(
                    registry.chain, offer.agent_id, payer.latency(offer.agent_id), block=block
                )
            return records[offer.agent_id]

        selections: dict[str, Selection] = {}
        candidates: dict[str, tuple[Offer, ...]] = {}
        for node in self.nodes.values():
            selections[node.id] = await _offers_for(registry, node, policy, trust)
            candidates[node.id] = selections[node.id].offers
        feeds: dict[str, dict[str, str]] = {}
        order = list(nx.topological_sort(graph))
        for node_id in order:
            node = self.nodes[node_id]
            spec = candidates[node_id][0].capability
            # In the order data arrives: a predecessor's field takes over from a same-named input.
            sources: dict[str, dict[str, dict[str, Any]]] = {"input": fields_of(self.input_schema)}
            for before in node.after:
                out = candidates[before][0].capability.output_schema
                sources[before] = fields_of(out)
            feeds[node_id] = check_inputs(node_id, spec.input_schema, sources, dict(node.inputs) or None)
            for route in self.routes.values():
                if route.source == node_id and route.on not in fields_of(spec.output_schema):
                    raise GraphError(
                        node_id, f"routes on {route.on!r}, not a field of {node.capability}'s output"
                    )
        worst = sum(max(c.worst_case for c in candidates[n]) for n in self.nodes)
        Budget(budget).check_worst_case(worst, what=f"workflow {self.name!r} at worst case")
        settings = registry.chain.settings.trust
        verifiers: tuple[Offer, ...] = ()
        if settings.sample_rate > 0 and any(
            offer.capability.verifiable is not None for offers in candidates.values() for offer in offers
        ):
            verifiers = await _verifiers(registry, trust)
        sampler = Sampler(
            payer, settings, checker=payer.checker, verifiers=verifiers, random=payer.random or draw
        )
        return CompiledWorkflow(
            self, graph, order, candidates, feeds, worst, budget, payer, checkpoints,
            selections=selections, sampler=sampler,
        )  # fmt: skip


async def _verifiers(registry: Registry, trust: Callable[[Offer], AgentTrust]) -> tuple[Offer, ...]:
    """Verifier agents (capability `verify`) for sampled checks the payer cannot run itself, best first."""
    try:
        selection = await _offers_for(registry, Node(VERIFY, VERIFY, ()), "trusted", trust)
    except GraphError as exc:
        log.info("no verifier agent: sampled calls are checked only locally (%s)", exc)
        return ()
    return selection.offers


def _candidate_ids(registry: Registry, nodes: Collection[Node]) -> set[int]:
    """The agents `_offers_for` may rank for `nodes` (and verifiers, when calls are sampled): whose trust facts
    `compile()` reads together before ranking."""
    min_stake = registry.chain.settings.min_stake
    wanted = [(node.capability, node.max_price) for node in nodes if node.agent is None]
    if registry.chain.settings.trust.sample_rate > 0:
        wanted.append((VERIFY, None))
    found = {node.agent for node in nodes if node.agent is not None}
    for capability, max_price in dict.fromkeys(wanted):
        try:
            records = registry.search(capability, max_price=max_price, min_stake=min_stake, refresh=False)
        except (MotetError, ValueError):
            continue  # `_offers_for` says what is wrong with the node, in its turn
        found.update(record.agent_id for record in records)
    return found


async def _offers_for(
    registry: Registry, node: Node, policy: Policy, trust: Callable[[Offer], AgentTrust]
) -> Selection:
    """The offers that can serve `node`, in the order `policy` tries them; `GraphError` when there is none.

    A node that names its agent gets that agent whatever its stake and record; otherwise only agents with at
    least `Settings.min_stake` bonded are candidates, so that an unstaked agent cannot take every call for
    free, and agents slashed for a confirmed cheat are dropped. So is an agent whose bonded stake is under
    what makes cheating lose at its price (`Economics.least_stake`) for a verifiable capability: a slash would
    not cost it what cheating at that price earns before a sample catches it.
    """
    min_stake = registry.chain.settings.min_stake
    economics = Economics.published(registry.chain.settings)
    records = (
        [registry.get(node.agent)]
        if node.agent is not None
        else registry.search(node.capability, max_price=node.max_price, min_stake=min_stake, refresh=False)
    )
    found: list[Offer] = []
    dropped: list[tuple[str, str]] = []
    for record in records:
        if not record.active:
            dropped.append((f"agent {record.agent_id}", "inactive"))
            continue
        try:
            card = await read_card(registry, record)
            spec = card.capability(node.capability)
            offer = Offer(
                record.agent_id, card.name, spec, record.price, record.payout, record.bonded_stake, card
            )
            offer.worst_case  # noqa: B018 - raises for a per-token price with no bound
        except MotetError as exc:
            dropped.append((f"agent {record.agent_id}", str(exc)))
            continue
        if node.agent is None and spec.verifiable is not None and economics.sample_rate > 0:
            least = economics.least_stake(offer.worst_case)
            if offer.stake < least:
                dropped.append(
                    (
                        f"agent {record.agent_id}",
                        f"stake {format_amount(offer.stake)} is under {format_amount(least)}, the least at which "
                        f"cheating at its price ({format_amount(offer.worst_case)}) loses (docs/trust.md#economics)",
                    )
                )
                continue
        found.append(offer)
    for label, problem in dropped:
        log.warning("node %r skips %s: %s", node.id, label, problem)
    selection = select(
        node.id,
        node.capability,
        found,
        trust,
        policy=policy,
        settings=registry.chain.settings.trust,
        named=node.agent is not None,
        dropped=dropped,
    )
    if not selection.ranked:
        cap = f" at or under {format_amount(node.max_price)}" if node.max_price is not None else ""
        staked = f" with {format_amount(min_stake)} staked" if node.agent is None and min_stake else ""
        reasons = [
            f"{label} is {why}" if why == "inactive" else f"{label}: {why}"
            for label, why in selection.dropped
        ]
        why = f" ({'; '.join(reasons)})" if reasons else ""
        raise GraphError(node.id, f"no active agent{staked} offers {node.capability!r}{cap}{why}")
    return selection
