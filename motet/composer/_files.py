"""Reading workflow files (TOML or YAML) with errors a person can act on: one line, naming the file, the line
and the node.

`read_document` parses a file and records where each key sits (`Locator`): tomllib and PyYAML give the line
of a syntax error, and a small scan of the text (TOML) or PyYAML's node marks (YAML) give the line of every
table and key, so that a later problem (an unknown key, a node that does not exist, a bad mapping) can name
its line too. `check_document` checks the parsed document against the file format, which
`workflow.schema.json` (shipped beside this module, for editors) describes, and then what a schema cannot say:
ids used twice, `after` and `inputs` naming nodes or inputs that do not exist, routes between unknown nodes,
input fields whose schema or default is not valid, prices that are not amounts. Every problem is a
`WorkflowFileError` whose message reads `FILE:LINE: node 'id': problem`, with the close match for a typo.
Nothing here touches a chain or a model: a file is checked before anything heavy starts.

Example:
    >>> data, where = parse_text("name = 'x'\\ninputs = {}\\n[[nodes]]\\nid = 'a'\\ncapabilty = 's'\\n", "flow.toml")
    >>> check_document(data, where)
    Traceback (most recent call last):
    ...
    motet.errors.WorkflowFileError: flow.toml:5: node 'a': unknown key 'capabilty' (did you mean 'capability'?); a node takes id, capability, after, agent, max_price, inputs
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema.exceptions
import jsonschema.validators

from motet.composer._schemas import describe, show
from motet.errors import InvalidAmount, WorkflowFileError
from motet.units import parse_amount

__all__ = ["SCHEMA_FILE", "Locator", "check_document", "file_schema", "parse_text", "read_document"]

SCHEMA_FILE = "workflow.schema.json"
"""The JSON Schema of workflow files, shipped in `motet.composer` (`motet workflow schema` prints it)."""

Path_ = tuple[str | int, ...]
"""Where a value sits in a document: keys and list indexes from the top."""

_RESERVED = ("input", "__start__", "__end__")
_WHAT = {(): "a workflow file", ("nodes",): "a node", ("routes",): "a route", ("inputs",): "an input field"}


@functools.cache
def file_schema() -> dict[str, Any]:
    """The JSON Schema of workflow files (draft 2020-12), as shipped in the package."""
    text = resources.files("motet.composer").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@dataclass
class Locator:
    """The file a document came from, and the line of each key in it (1-based)."""

    path: str
    lines: dict[Path_, int] = field(default_factory=dict)
    nodes: list[Any] = field(default_factory=list)
    """The document's `nodes` list, to name the node a problem is in."""

    def line(self, where: Path_) -> int | None:
        """The line of `where`, or of the nearest enclosing key whose line is known."""
        for end in range(len(where), 0, -1):
            line = self.lines.get(where[:end])
            if line is not None:
                return line
        return None

    def node_id(self, where: Path_) -> str | None:
        """The id of the node `where` is in, when it is in one that has an id."""
        if (
            len(where) >= 2
            and where[0] == "nodes"
            and isinstance(where[1], int)
            and where[1] < len(self.nodes)
        ):
            node = self.nodes[where[1]]
            if isinstance(node, Mapping) and isinstance(node.get("id"), str):
                return str(node["id"])
        return None

    def error(self, where: Path_, problem: str, *, node: str | None = None) -> WorkflowFileError:
        """A `WorkflowFileError` for a problem at `where` (its line and node found here)."""
        return WorkflowFileError(self.path, problem, line=self.line(where), node=node or self.node_id(where))


def read_document(path: str | Path) -> tuple[Any, Locator]:
    """Parse a `.toml`, `.yaml` or `.yml` workflow file; raises `WorkflowFileError` naming the file and line
    of a syntax error, or a file that cannot be read."""
    shown = str(path)
    path = Path(path)
    if path.suffix not in (".toml", ".yaml", ".yml"):
        raise WorkflowFileError(shown, "a workflow file is .toml, .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowFileError(shown, f"cannot read it: {exc}") from None
    return parse_text(text, shown)


def parse_text(text: str, path: str) -> tuple[Any, Locator]:
    """Parse a workflow file's text (TOML when `path` ends in .toml, else YAML) and locate its keys."""
    if path.endswith(".toml"):
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            found = re.search(r"\(at line (\d+), column (\d+)\)$", message)
            if found is None:
                raise WorkflowFileError(path, f"not valid TOML: {message}") from None
            problem = message[: found.start()].strip()
            raise WorkflowFileError(
                path, f"not valid TOML: {problem} (column {found[2]})", line=int(found[1])
            ) from None
        where = Locator(path, _toml_lines(text))
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            line = mark.line + 1 if mark is not None else None
            column = f" (column {mark.column + 1})" if mark is not None else ""
            raise WorkflowFileError(path, f"not valid YAML: {problem}{column}", line=line) from None
        where = Locator(path, _yaml_lines(root))
    if isinstance(data, Mapping) and isinstance(data.get("nodes"), list):
        where.nodes = data["nodes"]
    return data, where


def check_document(data: Any, where: Locator) -> None:
    """Raise `WorkflowFileError` for the first problem in a parsed workflow document, in the order of the
    file: its form (`workflow.schema.json`), then ids, references, input schemas and prices."""
    if not isinstance(data, Mapping):
        raise where.error((), "a workflow file is a table with name, inputs, nodes and, optionally, routes")
    if isinstance(data.get("routes"), list):  # YAML may read a case value as a number or a boolean
        for route in data["routes"]:
            if isinstance(route, dict) and isinstance(route.get("cases"), Mapping):
                route["cases"] = {_case(key): value for key, value in route["cases"].items()}
    _check_form(data, where)
    _check_inputs(data["inputs"], where)
    _check_nodes(data, where)
    _check_routes(data, where)


def _case(key: object) -> str:
    """A route case's value as the route compares it: the output field's value as Python writes it (`str`)."""
    return str(key)


# -- form ---------------------------------------------------------------------------------------------------


def _check_form(data: Mapping[str, Any], where: Locator) -> None:
    schema = file_schema()
    validator = jsonschema.validators.Draft202012Validator(schema)
    errors = list(validator.iter_errors(data))
    if not errors:
        return
    located = [(_error_path(error), error) for error in errors]
    # A typo'd key also leaves the key it meant missing: name the typo.
    path, error = min(
        located,
        key=lambda item: (item[1].validator == "required", where.line(item[0]) or 1 << 30, -len(item[0])),
    )
    raise where.error(path, _problem(error, path))


def _error_path(error: jsonschema.exceptions.ValidationError) -> Path_:
    """Where the problem is: the offending key itself for an unknown key, else the value's place."""
    path: Path_ = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        extra = _extras(error)
        if extra:
            return (*path, extra[0])
    return path


def _extras(error: jsonschema.exceptions.ValidationError) -> list[str]:
    known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
    return [str(key) for key in error.instance if key not in known]


def _problem(error: jsonschema.exceptions.ValidationError, path: Path_) -> str:
    container = tuple(part for part in error.absolute_path if isinstance(part, str))
    what = _WHAT.get(container[:1], "this table") if container != ("inputs",) else "an input field"
    if len(container) == 2 and container[0] == "inputs":
        what = "an input field"
    label = _label(tuple(error.absolute_path))
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        known = list(error.schema.get("properties", {}))
        extra = str(path[-1])
        close = difflib.get_close_matches(extra, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        if what == "an input field":
            return f"unknown key {extra!r}{hint}; an input field is a JSON Schema: type, description, default, enum, ..."
        return f"unknown key {extra!r}{hint}; {what} takes {', '.join(known)}"
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = [name for name in error.validator_value if name not in error.instance]
        names = list(error.validator_value)
        needs = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
        return f"missing key {missing[0]!r}; {what} needs {needs}"
    if error.validator == "minItems" and path == ("nodes",):
        return "no nodes: add at least one [[nodes]] table with an id and a capability"
    if error.validator == "not" and path[-1:] == ("id",):
        return f"the id {show(error.instance)} is reserved: choose another than {', '.join(_RESERVED)}"
    if error.validator == "pattern" and path[-1:] == ("id",):
        return f"the id {show(error.instance)} holds '#', which node ids may not"
    if error.validator == "pattern" and len(path) == 4 and path[2] == "inputs":
        return (
            f"inputs maps {str(path[3])!r} to {show(error.instance)}: write 'source.field', where source is "
            "input or a node named in after"
        )
    if path[-1:] == ("type",) and path[:1] == ("inputs",):
        types = file_schema()["$defs"]["type"]["enum"]
        close = difflib.get_close_matches(str(error.instance), types, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{label} is {show(error.instance)}, not a JSON type ({hint}types: {', '.join(types)})"
    if error.validator in ("type", "anyOf"):
        return f"{label} is {show(error.instance)}: expected {describe(error.schema)}"
    return f"{label}: {error.message}"


def _label(path: Path_) -> str:
    """A value's place in words: `after`, `inputs.document.type`, `nodes` (list indexes left out)."""
    inside = path[2:] if path[:1] in (("nodes",), ("routes",)) else path  # the node is named beside it
    return ".".join(str(part) for part in inside if isinstance(part, str)) or "the file"


# -- meaning ------------------------------------------------------------------------------------------------


def _check_inputs(inputs: Mapping[str, Any], where: Locator) -> None:
    for name, spec in inputs.items():
        validator = jsonschema.validators.Draft202012Validator
        try:
            validator.check_schema(spec)
        except jsonschema.exceptions.SchemaError as exc:
            raise where.error(
                ("inputs", name), f"input {name!r}: not a valid schema: {exc.message}"
            ) from None
        if "default" in spec:
            error = jsonschema.exceptions.best_match(validator(spec).iter_errors(spec["default"]))
            if error is not None:
                raise where.error(
                    ("inputs", name, "default"),
                    f"input {name!r}: the default {show(spec['default'])} does not fit: {error.message}",
                )


def _check_nodes(data: Mapping[str, Any], where: Locator) -> None:
    nodes: Sequence[Mapping[str, Any]] = data["nodes"]
    first: dict[str, int] = {}
    for index, node in enumerate(nodes):
        node_id = node["id"]
        if node_id in first:
            line = where.line(("nodes", first[node_id]))
            at = f" (first at line {line})" if line is not None else ""
            raise where.error(("nodes", index, "id"), f"the id {node_id!r} is used by two nodes{at}")
        first[node_id] = index
    ids = list(first)
    inputs = list(data["inputs"])
    for index, node in enumerate(nodes):
        after = [node["after"]] if isinstance(node.get("after"), str) else list(node.get("after", ()))
        for before in after:
            if before not in first:
                raise where.error(
                    ("nodes", index, "after"),
                    f"after names {before!r}, which is no node here {_known(before, ids)}",
                )
            if before == node["id"]:
                raise where.error(("nodes", index, "after"), "a node cannot come after itself")
        for target, ref in dict(node.get("inputs") or {}).items():
            _check_ref(where, ("nodes", index, "inputs", target), target, ref, after, ids, inputs)
        price = node.get("max_price")
        if isinstance(price, str):
            try:
                parse_amount(price)
            except InvalidAmount as exc:
                raise where.error(("nodes", index, "max_price"), f"max_price {exc}") from None


def _check_ref(
    where: Locator, at: Path_, target: str, ref: str, after: list[str], ids: list[str], inputs: list[str]
) -> None:
    """A node's `inputs` entry names a source it reads (the workflow's inputs or a node in its `after`)."""
    # Node ids may hold dots: match the known sources rather than split.
    sources = ["input", *after]
    matching = [source for source in sources if ref.startswith(f"{source}.")]
    if matching:
        source = max(matching, key=len)
        name = ref[len(source) + 1 :]
        if source == "input" and name not in inputs:
            raise where.error(
                at, f"inputs maps {target!r} to {ref!r}, but the workflow has no input {name!r} "
                f"{_known(name, inputs, 'inputs')}",
            )  # fmt: skip
        return
    named = [node for node in ids if ref.startswith(f"{node}.")]
    if named:
        node = max(named, key=len)
        raise where.error(
            at, f"inputs maps {target!r} to {ref!r}, but {node!r} is not in this node's after: a node reads "
            f"only the workflow's inputs and the nodes it comes after; add {node!r} to after",
        )  # fmt: skip
    source = ref.partition(".")[0]
    raise where.error(
        at, f"inputs maps {target!r} to {ref!r}: {source!r} is neither input nor a node "
        f"{_known(source, [*sources, *ids], 'sources')}",
    )  # fmt: skip


def _check_routes(data: Mapping[str, Any], where: Locator) -> None:
    ids = [node["id"] for node in data["nodes"]]
    for index, route in enumerate(data.get("routes", ())):
        at: Path_ = ("routes", index)
        if route["source"] not in ids:
            raise where.error(
                (*at, "source"),
                f"a route starts at {route['source']!r}, which is no node here {_known(route['source'], ids)}",
            )
        named: list[tuple[Path_, Any]] = [
            (("cases", value), target) for value, target in route["cases"].items()
        ]
        if "default" in route:
            named.append((("default",), route["default"]))
        for key, target in named:
            if target not in ids:
                raise where.error(
                    (*at, *key),
                    f"route from {route['source']!r} goes to {target!r}, which is no node here {_known(target, ids)}",
                )


def _known(name: str, known: Sequence[str], what: str = "nodes") -> str:
    """`(did you mean 'x'? nodes: a, b)`: the close match of a typo'd name, and the names there are."""
    close = difflib.get_close_matches(name, list(dict.fromkeys(known)), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"({hint}{what}: {', '.join(dict.fromkeys(known)) or 'none'})"


# -- lines --------------------------------------------------------------------------------------------------

_HEADER = re.compile(r"""^\s*(\[\[?)\s*([A-Za-z0-9_\-."' ]+?)\s*\]\]?\s*(#.*)?$""")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)


def _toml_lines(text: str) -> dict[Path_, int]:
    """The line of each table, array-of-tables entry and key of a TOML text, found by a scan of its lines
    (enough to point at a problem; values spanning lines are skipped over, not parsed)."""
    lines: dict[Path_, int] = {}
    counts: dict[tuple[str, ...], int] = {}
    table: Path_ = ()
    in_string: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if in_string is not None:
            if raw.count(in_string) % 2 == 1:
                in_string = None
            continue
        header = _HEADER.match(raw)
        if header is not None:
            keys = _split_key(header[2])
            resolved = _resolve(keys, counts)
            if header[1] == "[[":
                counts[tuple(keys)] = counts.get(tuple(keys), -1) + 1
                resolved = (*_resolve(keys[:-1], counts), keys[-1], counts[tuple(keys)])
                lines.setdefault(resolved[:-1], number)
            table = resolved
            lines.setdefault(table, number)
            continue
        key = _KEY.match(raw)
        if key is not None:
            parts = _split_key(key[1])
            for end in range(1, len(parts) + 1):
                lines.setdefault((*table, *parts[:end]), number)
            rest = raw[key.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_string = quote
    return lines


def _split_key(text: str) -> list[str]:
    return [part.strip().strip("\"'") for part in re.findall(r"""(?:"[^"]*"|'[^']*'|[^.]+)""", text)]


def _resolve(keys: list[str], counts: Mapping[tuple[str, ...], int]) -> Path_:
    """A dotted table name as a path: each array of tables in it stands for its last entry."""
    path: list[str | int] = []
    for end in range(1, len(keys) + 1):
        path.append(keys[end - 1])
        if tuple(keys[:end]) in counts:
            path.append(counts[tuple(keys[:end])])
    return tuple(path)


def _yaml_lines(root: Any) -> dict[Path_, int]:
    """The line of each key and list item of a composed YAML document."""
    import yaml

    lines: dict[Path_, int] = {}
    stack: list[tuple[Any, Path_]] = [(root, ())] if root is not None else []
    while stack:
        node, path = stack.pop()
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
                lines.setdefault((*path, name), key.start_mark.line + 1)
                stack.append((value, (*path, name)))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                stack.append((item, (*path, index)))
    return lines
