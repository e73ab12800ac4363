"""Drawing a graph of agent calls without a network: Mermaid text for documents, boxes for a terminal.

A `GraphView` is what there is to draw: nodes with a title and a detail line (the agent and its price),
edges with an optional label (a route's condition). The ids `"__start__"` and `"__end__"` stand for the
workflow's inputs and its end; an edge may name them without a `NodeView` for them.

Example:
    >>> view = GraphView(
    ...     (NodeView("extract", "extract", "agent 1 · 500 wei"),),
    ...     (EdgeView("__start__", "extract"), EdgeView("extract", "__end__")),
    ... )
    >>> print(ascii(view))
    ( start )
      start ──▶ extract
    [ extract | agent 1 · 500 wei ]
      extract ──▶ end
    ( end )
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from typing import Final

import networkx as nx

from motet.errors import GraphError

__all__ = ["END", "START", "EdgeView", "GraphView", "NodeView", "ascii", "mermaid"]

START: Final = "__start__"
END: Final = "__end__"
_TERMINALS: Final = {START: "start", END: "end"}
_WIDTH: Final = 100
"""Columns a row of boxes or a line of edges takes before it wraps."""
_ARROW: Final = " ──▶ "
# Mermaid reads `#name;`/`#123;` as an entity; these characters would otherwise end or restyle a label.
_MERMAID_ESCAPES: Final = {
    "#": "#35;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "[": "#91;",
    "]": "#93;",
    "{": "#123;",
    "}": "#125;",
    "|": "#124;",
    "`": "#96;",
    "\n": " ",
    "\r": " ",
}
_MERMAID_KEYWORDS: Final = frozenset(
    {"end", "graph", "flowchart", "subgraph", "style", "class", "classdef", "click", "linkstyle", "direction"}
)


@dataclass(frozen=True)
class NodeView:
    """A node to draw: its `id` (what edges name), a `title`, and an optional `detail` line."""

    id: str
    title: str
    detail: str = ""


@dataclass(frozen=True)
class EdgeView:
    """An edge from `source` to `target`; a `label` marks a conditional edge (the condition that takes it)."""

    source: str
    target: str
    label: str = ""


@dataclass(frozen=True)
class GraphView:
    """The nodes and edges to draw, in the order given."""

    nodes: tuple[NodeView, ...]
    edges: tuple[EdgeView, ...]


def mermaid(view: GraphView) -> str:
    """The graph as a Mermaid `flowchart TD`, labels escaped with Mermaid's entity codes.

    Example:
        >>> view = GraphView(
        ...     (NodeView("route", "route"), NodeView("long", "summarize", 'says "hi"')),
        ...     (EdgeView("__start__", "route"), EdgeView("route", "long", "len > 1000")),
        ... )
        >>> print(mermaid(view))
        flowchart TD
            __start__(["start"])
            route["route"]
            long["long: summarize<br/>says #quot;hi#quot;"]
            __start__ --> route
            route -- "len #gt; 1000" --> long
    """
    nodes = _nodes(view)
    ids = _mermaid_ids(list(nodes))
    lines = ["flowchart TD"]
    for node in nodes.values():
        text = _mermaid_text(_name(node) if node.id in _TERMINALS else _heading(node))
        if node.detail:
            text += "<br/>" + _mermaid_text(node.detail)
        shape = '(["{}"])' if node.id in _TERMINALS else '["{}"]'
        lines.append(f"    {ids[node.id]}{shape.format(text)}")
    for edge in view.edges:
        link = f' -- "{_mermaid_text(edge.label)}" --> ' if edge.label else " --> "
        lines.append(f"    {ids[edge.source]}{link}{ids[edge.target]}")
    return "\n".join(lines)


def ascii(view: GraphView) -> str:
    """The graph as rows of boxes, one row per layer (the longest path from the start), edges below each.

    Layers that do not fit in about 100 columns wrap onto several lines. Raises `GraphError` naming a node
    on a cycle: only acyclic graphs have layers.

    Example:
        >>> view = GraphView(
        ...     tuple(NodeView(name, name) for name in ["extract", "a", "b", "c", "report"]),
        ...     (EdgeView("extract", "a"), EdgeView("extract", "b"), EdgeView("extract", "c"),
        ...      EdgeView("a", "report"), EdgeView("b", "report"), EdgeView("c", "report")),
        ... )
        >>> print(ascii(view))
        [ extract ]
          extract ──▶ a, b, c
        [ a ]  [ b ]  [ c ]
          a, b, c ──▶ report
        [ report ]
    """
    nodes = _nodes(view)
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from((edge.source, edge.target) for edge in view.edges)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join([cycle[0][0], *(target for _, target, *_ in cycle)])
        raise GraphError(cycle[0][0], f"the graph has a cycle ({path}): a drawing in layers needs a DAG")
    position = {node_id: index for index, node_id in enumerate(nodes)}
    outgoing: dict[str, list[EdgeView]] = {node_id: [] for node_id in nodes}
    for edge in view.edges:
        outgoing[edge.source].append(edge)
    lines: list[str] = []
    for generation in nx.topological_generations(graph):
        layer = sorted(generation, key=position.__getitem__)
        lines.extend(_row([_box(nodes[node_id]) for node_id in layer]))
        lines.extend(_edge_lines(layer, outgoing, nodes))
    return "\n".join(lines)


def _nodes(view: GraphView) -> dict[str, NodeView]:
    nodes: dict[str, NodeView] = {}
    for node in view.nodes:
        if node.id in nodes:
            raise GraphError(node.id, "the node is listed twice; give each node one NodeView")
        nodes[node.id] = node
    for edge in view.edges:
        for end in (edge.source, edge.target):
            if end in nodes:
                continue
            if end not in _TERMINALS:
                raise GraphError(
                    f"{edge.source} -> {edge.target}",
                    f"no node {end!r}: add a NodeView for it or drop the edge",
                )
            nodes[end] = NodeView(end, _TERMINALS[end])
    # The start first and the end last, whatever order they came in.
    return dict(sorted(nodes.items(), key=lambda item: (item[0] != START, item[0] == END)))


def _name(node: NodeView) -> str:
    """What edges call a node: its id, or the title of the start and end."""
    if node.id in _TERMINALS:
        return node.title or _TERMINALS[node.id]
    return node.id


def _heading(node: NodeView) -> str:
    return node.id if node.title in ("", node.id) else f"{node.id}: {node.title}"


def _box(node: NodeView) -> str:
    if node.id in _TERMINALS:
        return f"( {_name(node)} )"
    return f"[ {_heading(node)} | {node.detail} ]" if node.detail else f"[ {_heading(node)} ]"


def _row(boxes: list[str]) -> list[str]:
    lines: list[str] = []
    current = ""
    for box in boxes:
        if current and len(current) + 2 + len(box) > _WIDTH:
            lines.append(current)
            current = box
        else:
            current = f"{current}  {box}" if current else box
    return [*lines, current]


def _edge_lines(
    layer: list[str], outgoing: dict[str, list[EdgeView]], nodes: dict[str, NodeView]
) -> list[str]:
    # Sources with the same targets share a line, so a fan-in reads "a, b, c ──▶ report".
    groups: dict[tuple[str, ...], list[str]] = {}
    for node_id in layer:
        targets = tuple(
            _name(nodes[edge.target]) + (f" ({edge.label})" if edge.label else "")
            for edge in outgoing[node_id]
        )
        if targets:
            groups.setdefault(targets, []).append(_name(nodes[node_id]))
    lines = []
    for targets, sources in groups.items():
        head = "  " + ", ".join(sources) + _ARROW
        lines.extend(
            textwrap.wrap(
                ", ".join(targets),
                width=max(_WIDTH, len(head) + 20),
                initial_indent=head,
                subsequent_indent=" " * len(head),
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return lines


def _mermaid_text(text: str) -> str:
    return "".join(_MERMAID_ESCAPES.get(char, char) for char in text)


def _mermaid_ids(node_ids: list[str]) -> dict[str, str]:
    """Mermaid-safe ids: letters, digits and `_`, not a keyword, unique."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for node_id in node_ids:
        base = re.sub(r"\W", "_", node_id, flags=re.ASCII) or "node"
        if base[0].isdigit() or base.lower() in _MERMAID_KEYWORDS:
            base = "n_" + base
        safe, count = base, 1
        while safe in taken:
            count += 1
            safe = f"{base}_{count}"
        ids[node_id] = safe
        taken.add(safe)
    return ids
