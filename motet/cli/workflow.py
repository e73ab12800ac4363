"""`motet workflow`: the JSON Schema of workflow files for editors, and a file checked without running it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from motet.cli._console import err, out
from motet.cli._options import InputsOption, parse_inputs

app = typer.Typer(
    help="Workflow files: their JSON Schema, and a check of one without running it.", no_args_is_help=True
)


@app.command()
def schema() -> None:
    """Print the JSON Schema of workflow files (TOML or YAML), for an editor's completion and checks.

    Save it beside your workflows (`motet workflow schema > workflow.schema.json`) and point your editor at
    it: `#:schema ./workflow.schema.json` on a TOML file's first line (Taplo, Even Better TOML), or
    `# yaml-language-server: $schema=./workflow.schema.json` on a YAML file's. docs/workflows.md describes
    the format."""
    from motet.composer import Workflow

    out.print(json.dumps(Workflow.json_schema(), indent=2))


@app.command()
def check(
    workflow: Annotated[
        Path, typer.Argument(help="A workflow file (.toml, .yaml).", exists=True, dir_okay=False)
    ],
    inputs: InputsOption = None,
) -> None:
    """Read a workflow file and check it (and the inputs given with -i) as `motet run` would, without a chain
    or a model: a problem is one line naming the file, the line and the node."""
    from motet.composer import Workflow

    flow = Workflow.load(workflow)
    if inputs:
        flow.validate_inputs(parse_inputs(inputs))
    properties = flow.input_schema.get("properties", {})
    required = set(flow.input_schema.get("required", ()))
    err.print(
        f"{workflow}: workflow {flow.name!r}, {len(flow.nodes)} node{'s' if len(flow.nodes) != 1 else ''}"
    )
    for name, spec in properties.items():
        optional = "" if name in required else f" (optional, default {json.dumps(spec.get('default'))})"
        kind = spec.get("type", "any value")
        about = f": {spec['description']}" if spec.get("description") else ""
        err.print(f"  input {name}: {kind if isinstance(kind, str) else ' or '.join(kind)}{about}{optional}")
    for node in flow.nodes.values():
        after = f" after {', '.join(node.after)}" if node.after else ""
        err.print(f"  node {node.id}: {node.capability}{after}")
    out.print("ok")
