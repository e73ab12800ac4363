"""Type-checking the data that flows between capabilities, on their JSON Schemas.

A capability's input and output are JSON Schemas as pydantic's `model_json_schema()` writes them: an object
whose `properties` are the fields, nested models under `$defs` and pointed to with `$ref`. An edge from one
node to another carries output fields into input fields of the same name (or as `inputs=` maps them), and
it type-checks when every value the output schema allows is one the input schema accepts.

The check is about types, not bounds: a `maxLength`, `minimum` or `pattern` of the input is enforced when
the call runs, never here. Where a schema says nothing about a value's type (`{}`, a field typed `Any`, a
free-form dict), the value is given the benefit of the doubt, and again checked when the call runs.

Example:
    >>> from pydantic import BaseModel
    >>> class Summary(BaseModel):
    ...     summary: str
    >>> class Count(BaseModel):
    ...     text: str
    ...     limit: int
    >>> check_inputs(
    ...     "count",
    ...     Count.model_json_schema(),
    ...     {"input": {"limit": {"type": "integer"}}, "extract": fields_of(Summary.model_json_schema())},
    ...     {"text": "extract.summary"},
    ... )
    {'text': 'extract.summary', 'limit': 'input.limit'}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from motet.composer._schemas import (
    JsonSchema,
    as_schema,
    describe,
    fields_of,
    json_equal,
    json_type,
    overlay,
    required_of,
    resolved,
    show,
    top_level,
    types_of,
    untyped,
    values_of,
    without_key,
)
from motet.errors import GraphError

__all__ = ["check_inputs", "compatible"]

_MAX_COMPARISONS: Final = 5_000
"""Sub-schema pairs one `compatible()` compares before it gives the rest the benefit of the doubt."""
_CONSTRAINING: Final = frozenset(
    {"type", "enum", "const", "anyOf", "oneOf", "allOf", "properties", "required", "items", "prefixItems"}
)
"""Keywords that limit a value's type or shape; a schema with none of them accepts any value."""
_MAX_VALUE_PAIRS: Final = 100_000
"""`enum` values compared one by one between two schemas; past this the values are checked at run time."""
_ITEMS: Final = "[]"


def compatible(provided: JsonSchema, required: JsonSchema) -> str | None:
    """`None` when every value `provided` allows fits `required`, else a short reason why not.

    Integers fit numbers; `anyOf`/`oneOf` branches of `provided` must each fit, and one branch of `required`
    must fit; an `enum`/`const` must be a subset of a required `enum`; arrays compare their items and
    objects their fields. Bounds (`maxLength`, `maxItems`, `minimum`...) are left to run time. `$ref`s are
    resolved against each schema's own `$defs`.

    Example:
        >>> compatible({"type": "integer"}, {"type": "number"}) is None
        True
        >>> compatible({"type": "string"}, {"type": "integer"})
        'integer expected, string given'
        >>> compatible({"type": "array", "items": {"type": "string"}},
        ...            {"type": "array", "items": {"type": "integer"}})
        'items: integer expected, string given'
        >>> compatible({"enum": ["a", "z"]}, {"anyOf": [{"enum": ["a", "b"]}, {"type": "null"}]})
        "one of 'a', 'b' expected, 'z' possible"
    """
    budget = [_MAX_COMPARISONS]
    mismatch = _check(resolved(provided), resolved(required), budget)
    return None if mismatch is None else mismatch.text()


def check_inputs(
    node: str,
    input_schema: JsonSchema,
    sources: Mapping[str, Mapping[str, JsonSchema]],
    mapping: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Which `"source.field"` feeds each input field of `node`; raises `GraphError` for a field left unfed.

    `sources` maps each source (a predecessor node, or `"input"` for the workflow's inputs) to its fields,
    as `fields_of` its output schema gives them, in the order the sources run. An explicit `mapping`
    (`{"text": "extract.summary"}`) comes first. Any other input field is fed from a source with a field of
    the same name; when several have one, the last one in `sources`' order whose field fits wins, so a later
    step's output takes over from an earlier one's (and from the workflow's inputs). An optional field no
    source has is left out. `GraphError.where` is `"source -> node"` for an edge whose types do not fit, and
    `node` for a field nothing provides or a mapping that names nothing.

    Example:
        >>> check_inputs("summarize", {"properties": {"text": {"type": "string"}}, "required": ["text"]},
        ...              {"input": {"topic": {"type": "string"}}, "extract": {"summary": {"type": "string"}}})
        Traceback (most recent call last):
        ...
        motet.errors.GraphError: summarize: input field 'text' of node 'summarize' is not provided by input or extract: map it with inputs={'text': 'extract.summary'}
    """
    targets = fields_of(input_schema)
    required = required_of(input_schema)
    declared = isinstance(top_level(input_schema).get("properties"), Mapping)
    fed: dict[str, str] = {}
    for field, ref in (mapping or {}).items():
        if declared and field not in targets:
            raise GraphError(
                node,
                f"inputs maps {field!r}, but node {node!r} has no input field {field!r}: "
                f"it takes {_names(targets)}",
            )
        source, name = _split_ref(node, field, ref, sources)
        _check_edge(source, node, name, field, sources[source][name], targets.get(field, {}))
        fed[field] = f"{source}.{name}"
    for field, target in targets.items():
        if field in fed:
            continue
        having = [source for source in sources if field in sources[source]]
        fitting = [source for source in having if compatible(sources[source][field], target) is None]
        if fitting:
            fed[field] = f"{fitting[-1]}.{field}"
        elif having:
            _check_edge(having[-1], node, field, field, sources[having[-1]][field], target)
        elif field in required:
            raise GraphError(node, _unfed(node, field, target, sources))
    order = {field: index for index, field in enumerate(targets)}
    return dict(sorted(fed.items(), key=lambda item: order.get(item[0], len(order))))


@dataclass(frozen=True)
class _Mismatch:
    path: tuple[str, ...]
    message: str
    close: bool = False
    """The types agreed and something narrower did not: this says more than "A or B expected"."""

    def under(self, part: str) -> _Mismatch:
        return _Mismatch((part, *self.path), self.message, close=True)

    def text(self) -> str:
        where = ""
        for part in self.path:
            if part == _ITEMS:
                where = where + part if where else "items"
            else:
                where = f"{where}.{part}" if where else part
        return f"{where}: {self.message}" if where else self.message


def _check(provided: JsonSchema, required: JsonSchema, budget: list[int]) -> _Mismatch | None:
    budget[0] -= 1
    if budget[0] < 0 or not _CONSTRAINING & required.keys():
        return None
    for key in ("anyOf", "oneOf"):
        branches = provided.get(key)
        if isinstance(branches, list):
            base = without_key(provided, key)
            for branch in branches:
                mismatch = _check(overlay(base, branch), required, budget)
                if mismatch is not None:
                    return mismatch
            return None
    parts = provided.get("allOf")
    if isinstance(parts, list):
        # A value that fits every part fits their union of constraints; merging is a sound approximation.
        merged = without_key(provided, "allOf")
        for part in parts:
            merged = overlay(merged, part)
        return _check(merged, required, budget)
    parts = required.get("allOf")
    if isinstance(parts, list):
        base = without_key(required, "allOf")
        for part in [base, *(as_schema(part) for part in parts)]:
            mismatch = _check(provided, part, budget)
            if mismatch is not None:
                return mismatch
        return None
    for key in ("anyOf", "oneOf"):
        branches = required.get(key)
        if isinstance(branches, list):
            return _check_branches(provided, required, without_key(required, key), branches, budget)
    return _check_plain(provided, required, budget)


def _check_branches(
    provided: JsonSchema, required: JsonSchema, base: JsonSchema, branches: list[Any], budget: list[int]
) -> _Mismatch | None:
    mismatches = []
    for branch in branches:
        mismatch = _check(provided, overlay(base, branch), budget)
        if mismatch is None:
            return None
        mismatches.append(mismatch)
    close = [mismatch for mismatch in mismatches if mismatch.close]
    if close:
        return close[0]
    return _Mismatch((), f"{describe(required)} expected, {describe(provided)} given")


def _check_plain(provided: JsonSchema, required: JsonSchema, budget: list[int]) -> _Mismatch | None:
    values = values_of(provided)
    allowed = values_of(required)
    if allowed is not None:
        if values is not None and len(values) * len(allowed) > _MAX_VALUE_PAIRS:
            return None  # too many to compare here: each value is checked when the call runs
        if values is None:
            if untyped(provided):
                return None
            return _Mismatch((), f"{describe(required)} expected, {describe(provided)} given")
        for value in values:
            if not any(json_equal(value, option) for option in allowed):
                return _Mismatch((), f"{describe(required)} expected, {show(value)} possible", close=True)
    wanted = types_of(required)
    given = [json_type(value) for value in values] if values is not None else types_of(provided)
    if wanted is not None and given is not None:
        for kind in given:
            if kind not in wanted and not (kind == "integer" and "number" in wanted):
                return _Mismatch((), f"{describe(required)} expected, {describe(provided)} given")
    if values is not None:
        return None
    kinds = set(given or ())
    if "array" in kinds or (not kinds and "items" in provided):
        mismatch = _check_items(provided, required, budget)
        if mismatch is not None:
            return mismatch
    if "object" in kinds or (not kinds and "properties" in provided):
        return _check_object(provided, required, budget)
    return None


def _check_items(provided: JsonSchema, required: JsonSchema, budget: list[int]) -> _Mismatch | None:
    wanted = required.get("items")
    if not isinstance(wanted, Mapping):
        return None
    given: list[Any] = []
    if isinstance(provided.get("prefixItems"), list):
        given.extend(provided["prefixItems"])
    if isinstance(provided.get("items"), Mapping):
        given.append(provided["items"])
    for item in given:
        mismatch = _check(as_schema(item), wanted, budget)
        if mismatch is not None:
            return mismatch.under(_ITEMS)
    return None


def _check_object(provided: JsonSchema, required: JsonSchema, budget: list[int]) -> _Mismatch | None:
    given = provided.get("properties")
    wanted = required.get("properties")
    wanted = wanted if isinstance(wanted, Mapping) else {}
    extra = required.get("additionalProperties", True)
    if not isinstance(given, Mapping):
        # A free-form dict: its keys are unknown until run time; its values can still be compared.
        values = provided.get("additionalProperties")
        if isinstance(values, Mapping) and isinstance(extra, Mapping):
            mismatch = _check(values, extra, budget)
            return None if mismatch is None else mismatch.under("values")
        return None
    # pydantic leaves fields with defaults out of `required`, yet always dumps them: presence counts.
    for name in required.get("required") or ():
        if name not in given:
            return _Mismatch((), f"field {name!r} expected, not given")
    for name, schema in given.items():
        if name in wanted:
            mismatch = _check(as_schema(schema), as_schema(wanted[name]), budget)
        elif extra is False:
            return _Mismatch((), f"field {name!r} given, not allowed", close=True)
        elif isinstance(extra, Mapping):
            mismatch = _check(as_schema(schema), extra, budget)
        else:
            mismatch = None
        if mismatch is not None:
            return mismatch.under(str(name))
    return None


def _check_edge(source: str, node: str, name: str, field: str, given: JsonSchema, wanted: JsonSchema) -> None:
    reason = compatible(given, wanted)
    if reason is not None:
        raise GraphError(
            f"{source} -> {node}",
            f"output field {name!r} of {source!r} does not fit input field {field!r} of {node!r}: {reason}",
        )


def _split_ref(
    node: str, field: str, ref: str, sources: Mapping[str, Mapping[str, JsonSchema]]
) -> tuple[str, str]:
    # Capability names may hold dots ("text.summarize"), so match known sources rather than split.
    matching = [source for source in sources if ref.startswith(f"{source}.")]
    if not matching:
        raise GraphError(
            node,
            f"inputs maps {field!r} to {ref!r}, which names no source of node {node!r}: write "
            f"'source.field' with a source among {_names(sources)}",
        )
    source = max(matching, key=len)
    name = ref[len(source) + 1 :]
    if name not in sources[source]:
        raise GraphError(
            f"{source} -> {node}",
            f"inputs maps {field!r} to {ref!r}, but {source!r} has no output field {name!r}: "
            f"it has {_names(sources[source])}",
        )
    return source, name


def _unfed(node: str, field: str, target: JsonSchema, sources: Mapping[str, Mapping[str, JsonSchema]]) -> str:
    if not sources:
        return f"input field {field!r} of node {node!r} is required, and nothing feeds the node"
    problem = f"input field {field!r} of node {node!r} is not provided by {_or(list(sources))}"
    for source in reversed(list(sources)):
        for name, schema in sources[source].items():
            if compatible(schema, target) is None:
                return f"{problem}: map it with inputs={{{field!r}: '{source}.{name}'}}"
    return (
        f"{problem}, and no field of theirs fits ({describe(resolved(target))}): add a node that "
        f"produces it, or pass it as an input"
    )


def _names(names: Mapping[str, Any]) -> str:
    return ", ".join(repr(name) for name in names) or "nothing"


def _or(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
