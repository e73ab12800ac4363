"""Workflow files: one-line errors naming file, line and node, read before anything heavy; the JSON Schema for
editors agrees with every example; docs/workflows.md's files and messages are the real ones."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from motet.composer import Workflow
from motet.demo import research_brief
from motet.errors import GraphError, WorkflowFileError, WorkflowInputError

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "workflows.md").read_text()
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.suffix in (".toml", ".yaml", ".yml"))


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, re.DOTALL)


FIRST = blocks("toml")[0]
"""docs/workflows.md's first file: summarize, then translate the summary."""

BASE = 'name = "x"\n[inputs]\ntext = { type = "string" }\n[[nodes]]\nid = "a"\ncapability = "s"\n'


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("syntax.toml", 'name = "x"\ninputs = {}\n[[nodes]]\nid = "a"\ncapability = \n',
         "syntax.toml:5: not valid TOML: Invalid value (column 14)"),
        ("top.toml", BASE.replace("name", "nme"),
         "top.toml:1: unknown key 'nme' (did you mean 'name'?); a workflow file takes name, description, inputs, "
         "nodes, routes"),
        ("field.toml", BASE.replace("{ type", "{ tpye"),
         "field.toml:3: unknown key 'tpye' (did you mean 'type'?); an input field is a JSON Schema: type, "
         "description, default, enum, ..."),
        ("type.toml", BASE.replace('"string"', '"strin"'),
         "type.toml:3: inputs.text.type is 'strin', not a JSON type (did you mean 'string'? types: string, "
         "integer, number, boolean, array, object, null)"),
        ("wrong.toml", BASE.replace('capability = "s"', "capability = 3"),
         "wrong.toml:6: node 'a': capability is 3: expected string"),
        ("empty.toml", "", "empty.toml: missing key 'name'; a workflow file needs name, inputs and nodes"),
        ("nodes.toml", 'name = "x"\ninputs = {}\nnodes = []\n',
         "nodes.toml:3: no nodes: add at least one [[nodes]] table with an id and a capability"),
        ("reserved.toml", BASE.replace('id = "a"', 'id = "input"'),
         "reserved.toml:5: node 'input': the id 'input' is reserved: choose another than input, __start__, __end__"),
        ("cycle.toml", BASE + 'after = "b"\n[[nodes]]\nid = "b"\ncapability = "s"\nafter = "a"\n',
         "cycle.toml:4: node 'a': the graph has a cycle: a -> b -> a"),
        ("self.toml", BASE + 'after = "a"\n', "self.toml:7: node 'a': a node cannot come after itself"),
        ("map.toml", BASE + '[[nodes]]\nid = "b"\ncapability = "s"\nafter = "a"\ninputs = { text = "summary" }\n',
         "map.toml:11: node 'b': inputs maps 'text' to 'summary': write 'source.field', where source is input or a "
         "node named in after"),
        ("far.toml", BASE + '[[nodes]]\nid = "b"\ncapability = "s"\ninputs = { text = "a.summary" }\n',
         "far.toml:10: node 'b': inputs maps 'text' to 'a.summary', but 'a' is not in this node's after: a node "
         "reads only the workflow's inputs and the nodes it comes after; add 'a' to after"),
        ("nowhere.toml", BASE + '[nodes.inputs]\ntext = "b.summary"\n',
         "nowhere.toml:8: node 'a': inputs maps 'text' to 'b.summary': 'b' is neither input nor a node (sources: "
         "input, a)"),
        ("price.toml", BASE + 'max_price = "10 bananas"\n',
         "price.toml:7: node 'a': max_price '10 bananas' is not an amount: unknown unit 'bananas': use wei, gwei or "
         "eth"),
        ("default.toml", BASE.replace('{ type = "string" }', '{ type = "integer", default = "a" }'),
         "default.toml:3: input 'text': the default 'a' does not fit: 'a' is not of type 'integer'"),
        ("route.toml", BASE + '[[nodes]]\nid = "b"\ncapability = "s"\nafter = "a"\n[[routes]]\nsource = "a"\n'
         'on = "mood"\ncases = { bad = "c" }\n',
         "route.toml:14: route from 'a' goes to 'c', which is no node here (nodes: a, b)"),
        ("routed.toml", BASE + '[[nodes]]\nid = "b"\ncapability = "s"\n[[routes]]\nsource = "a"\non = "m"\n'
         'cases = { x = "b" }\n',
         "routed.toml:7: node 'b': a route target must be a node whose only predecessor is the route's source: "
         "a -> b"),
        ("dup.yaml", "name: x\ninputs:\n  text: {type: string}\nnodes:\n  - id: a\n    capability: s\n"
         "  - id: a\n    capability: t\n",
         "dup.yaml:7: node 'a': the id 'a' is used by two nodes (first at line 5)"),
        ("typo.yaml", "name: x\ninputs: {}\nnodes:\n  - id: a\n    capability: s\n  - id: b\n    capabilit: t\n",
         "typo.yaml:7: node 'b': unknown key 'capabilit' (did you mean 'capability'?); a node takes id, "
         "capability, after, agent, max_price, inputs"),
        ("bad.yaml", "name: x\ninputs:\n  text: {type: string\nnodes: 3\n",
         "bad.yaml:4: not valid YAML: expected ',' or '}', but got ':' (column 6)"),
        ("flow.json", "{}", "flow.json: a workflow file is .toml, .yaml or .yml"),
    ],
)  # fmt: skip
def test_a_bad_file_is_one_line_naming_file_line_and_node(
    name: str, text: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path(name).write_text(text)
    with pytest.raises(WorkflowFileError) as raised:
        Workflow.load(name)
    assert str(raised.value) == message
    assert "\n" not in message and isinstance(raised.value, GraphError)


def test_the_docs_files_load_and_their_messages_are_the_real_ones(tmp_path: Path) -> None:
    toml, routes = blocks("toml")
    (yaml,) = blocks("yaml")
    (tmp_path / "flow.toml").write_text(toml)
    (tmp_path / "flow.yaml").write_text(yaml)
    (tmp_path / "routes.toml").write_text(routes)
    flow, same = Workflow.load(tmp_path / "flow.toml"), Workflow.load(tmp_path / "flow.yaml")
    assert flow.nodes == same.nodes and flow.input_schema == same.input_schema
    assert flow.nodes["translate"].max_price == 200 * 10**9 and flow.description == same.description != ""
    assert flow.input_schema["required"] == ["text"]  # target_language has a default
    assert set(Workflow.load(tmp_path / "routes.toml").routes["mood"].targets) == {"critique", "summarize"}
    # The input error the page shows.
    with pytest.raises(WorkflowInputError) as raised:
        flow.validate_inputs({"txt": "hello"})
    assert f"error: {raised.value}" in DOC
    # The file errors the page shows, from the page's first file with one mistake each.
    mistakes = [
        ("flow.toml", FIRST.replace('capability = "translate"', "capability = ")),
        ("flow.toml", FIRST.replace('capability = "translate"', 'capabilty = "translate"')),
        ("flow.toml", FIRST.replace('after = "summarize"', 'after = "sumarize"')),
        ("flow.toml", FIRST.replace('"summarize.summary"', '"input.txt"')),
        ("flow.yaml", "name: x\ninputs: {}\nnodes:\n  - {id: a, capability: s}\n  - {id: b, capability: s}\n"
         "\n  - {id: a, capability: t}\n"),
    ]  # fmt: skip
    shown = [line for line in blocks("text")[1].splitlines() if line]
    for (name, text), line in zip(mistakes, shown, strict=True):
        (tmp_path / name).write_text(text)
        with pytest.raises(WorkflowFileError) as failed:
            Workflow.load(tmp_path / name)
        assert f"error: {failed.value}".replace(str(tmp_path) + "/", "") == line


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_fits_the_json_schema_and_loads(example: Path) -> None:
    schema = Workflow.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    if example.suffix == ".toml":
        import tomllib

        data = tomllib.loads(example.read_text())
    else:
        import yaml

        data = yaml.safe_load(example.read_text())
    jsonschema.validate(data, schema)
    assert Workflow.load(example).nodes
    # The schema catches what an editor should flag as you type: a typo'd key, a missing one.
    broken = {**data, "nodes": [{**data["nodes"][0], "capabilty": "x"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_validate_inputs_turns_command_line_text_into_the_types_asked_for() -> None:
    flow = Workflow.from_dict(
        {
            "name": "typed",
            "inputs": {
                "count": {"type": "integer", "minimum": 1},
                "ratio": {"type": "number"},
                "loud": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "label": {"type": "string"},
                "mode": {"enum": ["fast", "slow"], "default": "fast"},
            },
            "nodes": [{"id": "a", "capability": "s"}],
        }
    )
    values = {"count": "3", "ratio": "0.5", "loud": "yes", "tags": '["a", "b"]', "label": "7"}
    assert flow.validate_inputs(values) == {
        "count": 3, "ratio": 0.5, "loud": True, "tags": ["a", "b"], "label": "7", "mode": "fast",
    }  # fmt: skip
    with pytest.raises(WorkflowInputError) as raised:
        flow.validate_inputs({**values, "count": "0", "loud": "maybe", "mode": "medium"})
    assert raised.value.fields == {
        "count": "0 is less than the minimum of 1 (expected integer)",
        "loud": "expected boolean, got 'maybe'",
        "mode": "'medium' is not one of ['fast', 'slow'] (expected one of 'fast', 'slow')",
    }
    empty = Workflow.from_dict({"name": "none", "inputs": {}, "nodes": [{"id": "a", "capability": "s"}]})
    with pytest.raises(WorkflowInputError, match=r"text: not an input of this workflow \(it takes none\)$"):
        empty.validate_inputs({"text": "x"})


def test_a_kept_definition_with_a_pydantic_input_schema_reads_back() -> None:
    """What a kept run stores (`CompiledWorkflow.definition()`: a pydantic model's field schemas) loads again."""
    flow = research_brief()
    data = {
        "name": flow.name,
        "inputs": dict(flow.input_schema["properties"]),
        "nodes": [
            {"id": n.id, "capability": n.capability, "after": list(n.after)} for n in flow.nodes.values()
        ],
    }
    again = Workflow.from_dict(data)
    assert again.nodes == flow.nodes
    with pytest.raises(WorkflowInputError, match="document: '' should be non-empty"):
        again.validate_inputs({"document": ""})


@pytest.mark.slow
def test_motet_run_fails_on_a_bad_file_or_input_in_one_line_before_the_chain(tmp_path: Path) -> None:
    """The user's two first-hour failures, as subprocesses: a typo in the file, a missing input. Each prints one
    error line and nothing else: no run id, no graph (nothing was compiled), no report, no model. Then the
    page's other commands: `motet workflow schema` and `motet workflow check`."""
    (tmp_path / "flow.toml").write_text(FIRST.replace('after = "summarize"', 'afterr = "summarize"'))
    (tmp_path / "good.toml").write_text(FIRST.replace(', default = "French"', ""))
    runs = {
        "flow.toml": "error: flow.toml:16: node 'translate': unknown key 'afterr' (did you mean 'after'?); a node "
        "takes id, capability, after, agent, max_price, inputs",
        "good.toml": "error: inputs of workflow 'summary-in-french': target_language: missing (expected string: "
        "The summary's language.)",
    }
    for name, expected in runs.items():
        done = subprocess.run(
            [sys.executable, "-m", "motet", "run", name, "--chain", "embedded", "-i", "text=hi"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ, "COLUMNS": "300", "MOTET_HOME": str(tmp_path / "home")},
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert lines == [expected], done.stderr  # not even a run id: no run was started
        assert done.stdout == ""
    schema = subprocess.run(
        [sys.executable, "-m", "motet", "workflow", "schema"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(schema.stdout) == Workflow.json_schema()
    check = subprocess.run(
        [sys.executable, "-m", "motet", "workflow", "check", "examples/research_brief.toml", "-i", "document=x"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    assert check.returncode == 0 and check.stdout == "ok\n", check.stderr
    assert "input document: string: A raw document: text or HTML." in check.stderr
    assert "node report: compose_report after summarize, keywords, sentiment" in check.stderr
