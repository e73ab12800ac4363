"""Checking a run's inputs before anything is paid: the workflow's inputs by name and type, each node's input
against the input schema of the capability it calls.

`check_values` reads a workflow's input schema (what `Workflow(inputs=...)` or a file's `[inputs]` declares):
every required field must be given, every given field must be declared (unless the schema allows extra
ones), and every value must fit its field's schema. Text typed on a command line (`-i count=3`) is turned into
the integer, number, boolean, array or object its field asks for, when the field does not take text itself.
A field left out that declares a `default` gets it. Every bad field is named in one `WorkflowInputError`,
with what it expects.

`check_node_input` checks the input a node is about to send against the capability's input schema as each
candidate agent's card publishes it. An input that fits none of them would be refused by every one, so it
fails the run at once, before anything is paid: it is never a reason to try the next agent. (A candidate whose
card asks for another shape than the input has is not called; the others are tried in order as usual.)

Example:
    >>> schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    >>> check_values(schema, {"n": "3"}, what="inputs of workflow 'w'")
    {'n': 3}
    >>> check_values(schema, {"m": 1}, what="inputs of workflow 'w'")
    Traceback (most recent call last):
    ...
    motet.errors.WorkflowInputError: inputs of workflow 'w': m: not an input of this workflow (it takes n); n: missing (expected integer)
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema.exceptions
import jsonschema.validators

from motet.composer._offer import Offer
from motet.composer._schemas import JsonSchema, describe, fields_of, required_of, show, top_level, types_of
from motet.errors import WorkflowInputError

__all__ = ["check_node_input", "check_values", "expected"]

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def check_values(schema: JsonSchema, values: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    """`values` checked against the object schema `schema`, command-line text coerced to the type its field
    asks for and absent fields given their declared `default`; raises `WorkflowInputError` naming every
    missing, unknown or mistyped field and what it expects."""
    fields = fields_of(schema)
    top = top_level(schema)
    extra = top.get("additionalProperties")
    declared = isinstance(top.get("properties"), Mapping)  # `inputs = {}` declares none: any input is unknown
    open_ended = not declared or extra is True or isinstance(extra, Mapping)
    problems: dict[str, str] = {}
    checked: dict[str, Any] = {}
    for name, value in values.items():
        field = fields.get(name)
        if field is None:
            if open_ended:
                checked[name] = value
                continue
            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems[name] = f"not an input of this workflow ({hint}it takes {', '.join(fields) or 'none'})"
            continue
        value = _coerced(value, field)
        problem = _mismatch(field, value)
        if problem is not None:
            problems[name] = problem
        else:
            checked[name] = value
    required = required_of(schema)
    for name, field in fields.items():
        if name in values:
            continue
        if name in required:
            problems[name] = f"missing (expected {expected(field)})"
        elif field.get("default") is not None:
            checked[name] = field["default"]
    if problems:
        ordered = {name: problems[name] for name in [*values, *fields] if name in problems}
        raise WorkflowInputError(what, ordered)
    return checked


def check_node_input(
    node: str, candidates: Sequence[Offer], value: Mapping[str, Any], feeds: Mapping[str, str]
) -> set[int]:
    """The agent ids of the `candidates` whose capability's input schema (as their cards publish it) takes
    `value`, the input node `node` is about to send; the others are not called. When none takes it, raise
    `WorkflowInputError`: the run fails before anything is paid, naming the node, the field, what it expects
    and where the field comes from (`feeds`: field → `"source.field"`). An input that does not fit is never
    a reason to try another agent; an agent whose card asks for another shape is simply not one to call."""
    usable: set[int] = set()
    first: tuple[Offer, tuple[str, str]] | None = None
    for offer in candidates:
        mismatch = offer.capability.input_mismatch(dict(value))
        if mismatch is None:
            usable.add(offer.agent_id)
        elif first is None:
            first = offer, mismatch
    if usable or first is None:
        return usable
    offer, (where, problem) = first
    name = where.partition(".")[0]
    field = fields_of(offer.capability.input_schema).get(name, {})
    source = feeds.get(name)
    fed = f"; it is fed by {source}" if source else "; nothing in the workflow feeds it: map it with inputs="
    if problem == "missing":
        problem = f"missing (expected {expected(field)}){fed}"
        if source and source.startswith("input."):
            problem += ", which the run was not given"
    else:
        problem = f"{problem} (expected {expected(field)}){fed}"
    raise WorkflowInputError(
        f"node {node!r} cannot call {offer.capability.name!r} ({offer.label}): its input does not fit the "
        "capability's input schema, so no agent is called or paid",
        {where: problem},
        node=node,
    )


def expected(field: JsonSchema) -> str:
    """What a field takes, in words: its type (`describe`), then its description when it has one."""
    text = describe(field)
    description = field.get("description")
    if isinstance(description, str) and description.strip():
        text += f": {description.strip()}"
    return text


def _coerced(value: Any, field: JsonSchema) -> Any:
    """`value` as the type `field` asks for, when it is text and the field does not take text."""
    if not isinstance(value, str):
        return value
    kinds = _kinds(field)
    if not kinds or "string" in kinds:
        return value
    text = value.strip()
    if "integer" in kinds:
        try:
            return int(text)
        except ValueError:
            pass
    if "number" in kinds or "integer" in kinds:
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            if "number" in kinds:
                return number
            if number.is_integer():
                return int(number)
    if "boolean" in kinds and text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    if "null" in kinds and text.lower() in ("null", "none", ""):
        return None
    if {"array", "object"} & kinds:
        try:
            parsed = json.loads(text)
        except ValueError:
            return value
        if (isinstance(parsed, list) and "array" in kinds) or (
            isinstance(parsed, dict) and "object" in kinds
        ):
            return parsed
    return value


def _kinds(field: JsonSchema) -> set[str]:
    """The JSON types a field's value may have, read from `type` and its `anyOf`/`oneOf` branches."""
    kinds = set(types_of(field) or ())
    for key in ("anyOf", "oneOf"):
        branches = field.get(key)
        if isinstance(branches, list):
            for branch in branches:
                if isinstance(branch, Mapping):
                    kinds |= _kinds(branch)
    if "enum" in field and isinstance(field["enum"], list):
        kinds |= {"string" for item in field["enum"] if isinstance(item, str)}
    return kinds


def _mismatch(field: JsonSchema, value: Any) -> str | None:
    """How `value` breaks `field` (a workflow's own input schema, with its `$ref`s inlined), or None."""
    try:
        validator = jsonschema.validators.validator_for(
            field, default=jsonschema.validators.Draft202012Validator
        )
        error = jsonschema.exceptions.best_match(validator(field).iter_errors(value))
    except RecursionError:
        return f"nested too deeply to check (expected {expected(field)})"
    if error is None:
        return None
    if error.validator == "type" and not error.absolute_path:
        return f"expected {expected(field)}, got {show(value)}"
    where = ".".join(str(part) for part in error.absolute_path)
    return f"{where + ': ' if where else ''}{error.message} (expected {expected(field)})"
