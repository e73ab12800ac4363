"""Reading the JSON Schemas of capabilities as pydantic's `model_json_schema()` writes them.

An object schema's `properties` are its fields; nested models sit under `$defs` (or `definitions`) and are
pointed to with `$ref`. `fields_of` and `required_of` read a schema's top-level fields with every `$ref`
inlined, cutting a recursive model where it recurs and giving up (leaving `{}`) on a schema that
references its defs exponentially or nests past `_MAX_DEPTH`; the other functions read one keyword or
describe a schema in words, for `motet.composer._types`' messages. Schemas come from strangers' cards and
users' workflow files, so every walk here is bounded in work and depth: none can recurse without end.

Example:
    >>> fields_of({"properties": {"n": {"$ref": "#/$defs/N"}}, "$defs": {"N": {"type": "integer"}}})
    {'n': {'type': 'integer'}}
    >>> describe({"anyOf": [{"type": "string"}, {"type": "null"}]})
    'string or null'
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

JsonSchema = Mapping[str, Any]
"""A JSON Schema, as a mapping read and never changed."""

_MAX_EXPANSIONS: Final = 2_000
"""`$ref`s inlined per schema; past this (a hostile schema that references its defs exponentially), the rest
are left as `{}` and their values checked at run time."""
_MAX_DEPTH: Final = 32
"""Objects and arrays nested in an inlined schema; deeper parts are left as `{}` and checked at run time."""
_MAX_DESCRIBED: Final = 200
"""Sub-schemas one `describe()` reads; past this the rest is `...`."""
_DATA_KEYWORDS: Final = frozenset({"enum", "const", "default", "examples", "example"})
"""Keywords whose values are JSON data, not schemas: a `$ref` key in them is not a reference."""


def fields_of(schema: JsonSchema) -> dict[str, dict[str, Any]]:
    """The top-level object properties of `schema`, each with its `$ref`s inlined from `$defs`/`definitions`.

    A reference that leads back into itself (a recursive model) is cut where it recurs and left as `{}`.
    The returned schemas may share sub-dicts: read them, do not change them.

    Example:
        >>> schema = {  # what pydantic writes for `class Outer(BaseModel): inner: Inner; label: str = ""`
        ...     "$defs": {"Inner": {"properties": {"n": {"type": "integer"}}, "type": "object"}},
        ...     "properties": {"inner": {"$ref": "#/$defs/Inner"}, "label": {"type": "string"}},
        ...     "required": ["inner"],
        ...     "type": "object",
        ... }
        >>> fields_of(schema)["inner"]
        {'properties': {'n': {'type': 'integer'}}, 'type': 'object'}
    """
    top = top_level(schema)
    properties = top.get("properties")
    if not isinstance(properties, Mapping):
        return {}
    return {str(name): as_schema(sub) for name, sub in properties.items()}


def required_of(schema: JsonSchema) -> set[str]:
    """The names of the fields `schema` requires at its top level.

    Example:
        >>> required_of({"type": "object", "properties": {"a": {}, "b": {}}, "required": ["a"]})
        {'a'}
    """
    required = top_level(schema).get("required")
    if not isinstance(required, list):
        return set()
    return {name for name in required if isinstance(name, str)}


def top_level(schema: JsonSchema) -> dict[str, Any]:
    """`schema` resolved, with the properties and required fields of its top-level `allOf` parts merged in."""
    top = resolved(schema)
    parts = top.get("allOf")
    if isinstance(parts, list):
        for part in parts:
            top = overlay(top, part)
        if isinstance(top.get("properties"), Mapping):
            properties: dict[str, Any] = {}
            required: list[Any] = []
            for part in [top, *(as_schema(part) for part in parts)]:
                if isinstance(part.get("properties"), Mapping):
                    properties.update(part["properties"])
                required.extend(part.get("required") or ())
            top = {**top, "properties": properties, "required": required}
    return top


def resolved(schema: JsonSchema) -> dict[str, Any]:
    """`schema` with its `$ref`s inlined, `$defs` dropped."""
    inliner = _Inliner(schema)
    return as_schema(inliner.walk(schema, (), 0))


class _Inliner:
    """Inlines the `$ref`s of one root schema, each target walked once, recursion cut, expansions capped."""

    def __init__(self, root: JsonSchema) -> None:
        self.root = root
        self.expansions = 0
        self.done: dict[tuple[str, int], dict[str, Any]] = {}
        """Inlined targets by (reference, depth): a target walked at one depth is reused only there, so that
        no reuse nests past `_MAX_DEPTH`."""
        self.cuts: list[str] = []
        self.walked: dict[tuple[int, int], Any] = {}
        """Walked values by `id()`: they live as long as `root`, which holds them, so ids stay unique."""

    def walk(self, value: Any, stack: tuple[str, ...], depth: int) -> Any:
        if not isinstance(value, list | Mapping):
            return value
        if depth > _MAX_DEPTH:
            return {}  # too deep to compare at compile time: checked at run time
        # Inlined schemas share sub-dicts; walking each once keeps an inlined schema's walk linear too.
        if not stack and (id(value), depth) in self.walked:
            return self.walked[id(value), depth]
        out: Any
        if isinstance(value, list):
            out = [self.walk(item, stack, depth + 1) for item in value]
        else:
            ref = value.get("$ref")
            out = dict(self.target(ref, stack, depth)) if isinstance(ref, str) else {}
            for key, sub in value.items():
                if key not in ("$ref", "$defs", "definitions"):
                    out[key] = sub if key in _DATA_KEYWORDS else self.walk(sub, stack, depth + 1)
        if not stack:
            self.walked[id(value), depth] = out
        return out

    def target(self, ref: str, stack: tuple[str, ...], depth: int) -> dict[str, Any]:
        if (ref, depth) in self.done:
            return self.done[ref, depth]
        if ref in stack:
            self.cuts.append(ref)
            return {}  # the recursion is cut here; what goes deeper is checked at run time
        if not ref.startswith("#") or self.expansions >= _MAX_EXPANSIONS or len(stack) >= _MAX_DEPTH:
            # A remote reference, a schema too costly to inline, or a chain of references too long to
            # follow: checked at run time.
            return {}
        self.expansions += 1
        target: Any = self.root
        for raw in ref[1:].split("/")[1:]:
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                return {}
        mark = len(self.cuts)
        result = as_schema(self.walk(target, (*stack, ref), depth))
        # Cut only at itself or below, it reads the same from anywhere: reuse it, so that defs shared
        # many times over are inlined once.
        if not set(self.cuts[mark:]) & set(stack):
            self.done[ref, depth] = result
        return result


def as_schema(value: Any) -> dict[str, Any]:
    """`value` as a schema: a copy of it if it is a mapping, else `{}` (accepts anything)."""
    return dict(value) if isinstance(value, Mapping) else {}


def overlay(base: JsonSchema, branch: Any) -> dict[str, Any]:
    """`base` with the keywords of `branch` (an `anyOf`/`oneOf`/`allOf` member) laid over it."""
    return {**base, **as_schema(branch)}


def without_key(schema: JsonSchema, key: str) -> dict[str, Any]:
    """`schema` less the keyword `key`."""
    return {name: value for name, value in schema.items() if name != key}


def types_of(schema: JsonSchema) -> list[str] | None:
    """The JSON types `schema`'s `type` keyword names; `None` when it has none."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [item for item in kind if isinstance(item, str)]
    return None


def values_of(schema: JsonSchema) -> Sequence[Any] | None:
    """The values a `const` or `enum` allows; `None` when there is neither."""
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    return enum if isinstance(enum, list) else None


def untyped(schema: JsonSchema) -> bool:
    """Whether `schema` says nothing about the type of its values."""
    return not {"type", "anyOf", "oneOf", "allOf", "properties", "items"} & schema.keys()


def json_type(value: Any) -> str:
    """The JSON type of a JSON value, a whole float counting as an integer (JSON does not tell them apart)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def json_equal(left: Any, right: Any) -> bool:
    """Whether two JSON values are equal as JSON: `true` is not `1`."""
    return json_type(left) == json_type(right) and bool(left == right)


def show(value: Any) -> str:
    """A JSON value as a message shows it: strings quoted as in Python, the rest as JSON."""
    return repr(value) if isinstance(value, str) else json.dumps(value)


def describe(schema: JsonSchema) -> str:
    """`schema` in a few words for a message: `"string or null"`, `"one of 'a', 'b'"`, `"array of integer"`."""
    return _describe(schema, [_MAX_DESCRIBED])


def _describe(schema: JsonSchema, budget: list[int]) -> str:
    budget[0] -= 1
    if budget[0] < 0:
        return "..."
    values = values_of(schema)
    if values is not None:
        shown = [show(value) for value in values[:5]] + (["..."] if len(values) > 5 else [])
        return shown[0] if len(shown) == 1 else "one of " + ", ".join(shown)
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list):
            base = without_key(schema, key)
            described = [_describe(overlay(base, branch), budget) for branch in branches]
            return " or ".join(dict.fromkeys(described))
    kinds = types_of(schema)
    if kinds is None:
        if "properties" in schema:
            kinds = ["object"]
        elif "items" in schema:
            kinds = ["array"]
        else:
            return "any value"
    items = schema.get("items")
    described = [
        f"array of {_describe(items, budget)}"
        if kind == "array" and isinstance(items, Mapping) and items
        else kind
        for kind in kinds
    ]
    return " or ".join(described)
