"""Drawing graphs offline: Mermaid text and terminal boxes."""

from __future__ import annotations

import doctest
import re

import pytest

from motet.composer import _render as render
from motet.composer._render import EdgeView, GraphView, NodeView, ascii, mermaid
from motet.errors import GraphError


def diamond() -> GraphView:
    nodes = (
        NodeView("__start__", "inputs"),
        NodeView("extract", "extract", "agent 1 · 500 wei"),
        NodeView("summarize", "summarize", "agent 3 · 1,000 wei"),
        NodeView("keywords", "extract_keywords", "agent 4 · 1,000 wei"),
        NodeView("sentiment", "classify_sentiment", "agent 5 · 1,000 wei"),
        NodeView("report", "compose_report", "agent 6 · 500 wei"),
    )
    edges = (
        EdgeView("__start__", "extract"),
        EdgeView("extract", "summarize"),
        EdgeView("extract", "keywords"),
        EdgeView("extract", "sentiment"),
        EdgeView("summarize", "report"),
        EdgeView("keywords", "report"),
        EdgeView("sentiment", "report"),
        EdgeView("report", "__end__"),
    )
    return GraphView(nodes, edges)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(render)
    assert result.attempted > 0
    assert result.failed == 0


def test_ascii_draws_a_diamond_in_layers_wrapping_past_100_columns() -> None:
    assert ascii(diamond()) == (
        "( inputs )\n"
        "  inputs ──▶ extract\n"
        "[ extract | agent 1 · 500 wei ]\n"
        "  extract ──▶ summarize, keywords, sentiment\n"
        "[ summarize | agent 3 · 1,000 wei ]  [ keywords: extract_keywords | agent 4 · 1,000 wei ]\n"
        "[ sentiment: classify_sentiment | agent 5 · 1,000 wei ]\n"
        "  summarize, keywords, sentiment ──▶ report\n"
        "[ report: compose_report | agent 6 · 500 wei ]\n"
        "  report ──▶ end\n"
        "( end )"
    )


def test_ascii_layers_by_the_longest_path_and_labels_conditional_edges() -> None:
    view = GraphView(
        (
            NodeView("route", "route"),
            NodeView("long", "long"),
            NodeView("short", "short"),
            NodeView("join", "join"),
        ),
        (
            EdgeView("route", "long", "len > 1000"),
            EdgeView("route", "short", "otherwise"),
            EdgeView("route", "join"),
            EdgeView("long", "join"),
            EdgeView("short", "join"),
        ),
    )
    lines = ascii(view).splitlines()
    assert lines == [
        "[ route ]",
        "  route ──▶ long (len > 1000), short (otherwise), join",
        "[ long ]  [ short ]",
        "  long, short ──▶ join",
        "[ join ]",
    ]


def test_ascii_wraps_a_wide_layer() -> None:
    fan = [
        NodeView(f"worker{index}", f"worker{index}", f"agent {index} · 1,000,000 wei") for index in range(12)
    ]
    view = GraphView(
        (NodeView("split", "split"), *fan),
        tuple(EdgeView("split", node.id) for node in fan),
    )
    lines = ascii(view).splitlines()
    assert all(len(line) <= 100 for line in lines), max(len(line) for line in lines)
    drawn = " ".join(lines)
    assert all(f"[ worker{index} | agent {index} · 1,000,000 wei ]" in drawn for index in range(12))
    assert lines[1].startswith("  split ──▶ worker0, worker1")
    assert lines[2].startswith(" " * 12 + "worker")  # the edge list goes on under its first target


def test_ascii_refuses_a_cycle_naming_a_node_on_it() -> None:
    view = GraphView(
        (NodeView("a", "a"), NodeView("b", "b"), NodeView("c", "c")),
        (EdgeView("__start__", "a"), EdgeView("a", "b"), EdgeView("b", "c"), EdgeView("c", "a")),
    )
    with pytest.raises(GraphError) as raised:
        ascii(view)
    assert raised.value.where in {"a", "b", "c"}
    assert re.search(
        r"the graph has a cycle \((a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)\)", str(raised.value)
    )


def test_ascii_refuses_a_self_loop() -> None:
    with pytest.raises(GraphError, match=r"^a: the graph has a cycle \(a -> a\)"):
        ascii(GraphView((NodeView("a", "a"),), (EdgeView("a", "a"),)))


def test_an_edge_to_an_unknown_node_is_an_error() -> None:
    view = GraphView((NodeView("a", "a"),), (EdgeView("a", "b"),))
    with pytest.raises(GraphError, match=r"^a -> b: no node 'b'") as raised:
        mermaid(view)
    assert raised.value.where == "a -> b"
    with pytest.raises(GraphError):
        ascii(view)


def test_a_node_listed_twice_is_an_error() -> None:
    with pytest.raises(GraphError, match=r"^a: the node is listed twice"):
        ascii(GraphView((NodeView("a", "a"), NodeView("a", "b")), ()))


def test_mermaid_lists_every_node_edge_and_label() -> None:
    text = mermaid(diamond())
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    assert '    __start__(["inputs"])' in lines
    assert '    __end__(["end"])' in lines
    assert '    keywords["keywords: extract_keywords<br/>agent 4 · 1,000 wei"]' in lines
    for edge in diamond().edges:
        assert f"    {edge.source} --> {edge.target}" in lines
    assert len(lines) == 1 + 7 + 8


def test_mermaid_labels_conditional_edges_and_escapes_what_would_break_it() -> None:
    view = GraphView(
        (
            NodeView("route", 'say "hi" [now]', "a <b> | {c} #1"),
            NodeView("end", "end"),
            NodeView("text.sum", "x"),
        ),
        (EdgeView("route", "end", 'if "x" > [1]'), EdgeView("route", "text.sum")),
    )
    lines = mermaid(view).splitlines()
    assert (
        lines[1]
        == '    route["route: say #quot;hi#quot; #91;now#93;<br/>a #lt;b#gt; #124; #123;c#125; #35;1"]'
    )
    assert lines[2] == '    n_end["end"]'  # `end` closes a subgraph in Mermaid: not usable as an id
    assert lines[3] == '    text_sum["text.sum: x"]'
    assert lines[4] == '    route -- "if #quot;x#quot; #gt; #91;1#93;" --> n_end'
    assert lines[5] == "    route --> text_sum"
    for line in lines[1:]:  # no raw quote, bracket or pipe is left inside a label
        label = line.split('"', 1)[1].rsplit('"', 1)[0].replace("<br/>", "") if '"' in line else ""
        assert not set(label) & set('"[]<>|{}')


def test_mermaid_ids_stay_unique_after_cleaning() -> None:
    view = GraphView(
        (NodeView("a.b", "a.b"), NodeView("a_b", "a_b"), NodeView("1st", "1st")), (EdgeView("a.b", "a_b"),)
    )
    lines = mermaid(view).splitlines()
    assert lines[1:4] == ['    a_b["a.b"]', '    a_b_2["a_b"]', '    n_1st["1st"]']
    assert lines[4] == "    a_b --> a_b_2"


def test_start_and_end_need_no_node_view() -> None:
    view = GraphView((NodeView("a", "a"),), (EdgeView("__start__", "a"), EdgeView("a", "__end__")))
    assert mermaid(view).splitlines()[1:3] == ['    __start__(["start"])', '    a["a"]']
    assert ascii(view).splitlines()[0] == "( start )"
