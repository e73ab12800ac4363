"""The JSON Schemas of capabilities: checked once when a card is read, then used to check values.

A card's schemas come from strangers, so checking one is bounded before anything runs it: a schema is at
most `MAX_SCHEMA_BYTES` as compact JSON and `MAX_SCHEMA_DEPTH` levels deep, lists at most `MAX_ENUM_VALUES`
values in an `enum`, refers only inside itself (`#/...` pointers that resolve) and never to itself without
descending into the value (`{"$ref": "#"}` is refused), and its `pattern`s are run by RE2, a linear-time
engine: a pattern RE2 cannot compile (backreferences, lookaround) is refused, so no pattern can backtrack
for minutes. It must be a valid JSON Schema of a known draft (2020-12 when it names none); checking one is
cached, since a registry's cards repeat the same few schemas.

Checking a value against a checked schema is bounded too: a value nested deeper than `MAX_VALUE_DEPTH`, or
whose check takes longer than `MAX_CHECK_SECONDS` (a schema whose branches recur into each other can take
exponential time on a small value), is refused as a mismatch.

Example:
    >>> first_mismatch({"type": "object", "required": ["text"]}, {}).message
    "'text' is a required property"
    >>> check_json_schema({"$ref": "#"})
    Traceback (most recent call last):
    ...
    ValueError: the schema refers to itself without descending into the value: $ref '#' at the top level leads back to the top level
"""

from __future__ import annotations

import contextvars
import functools
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

import jsonschema.exceptions
import jsonschema.validators
import re2
from pydantic import JsonValue

MAX_SCHEMA_BYTES: Final = 16 * 1024
"""Largest input or output schema of one capability, in bytes of compact JSON."""
MAX_SCHEMA_DEPTH: Final = 64
"""Deepest nesting of objects and arrays in one schema."""
MAX_ENUM_VALUES: Final = 256
"""Most values one `enum` lists."""
MAX_VALUE_DEPTH: Final = 64
"""Deepest nesting of objects and arrays in a value checked against a schema."""
MAX_CHECK_SECONDS: Final = 0.25
"""Longest one value's check against a schema may take before the value is refused."""

_SAME_VALUE_SCHEMA: Final = ("not", "if", "then", "else")
_SAME_VALUE_LIST: Final = ("allOf", "anyOf", "oneOf")
_SAME_VALUE_MAP: Final = ("dependentSchemas", "dependencies")
"""Keywords whose subschemas apply to the value itself, not to a part of it: a cycle through them (and
`$ref`) never ends."""
_CHILD_SCHEMA: Final = (
    "additionalItems",
    "additionalProperties",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contains",
    "propertyNames",
    "contentSchema",
    "items",
)
_CHILD_LIST: Final = ("prefixItems", "items")
_CHILD_MAP: Final = ("properties", "patternProperties", "$defs", "definitions")


def check_json_schema(schema: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """`schema` if it is a JSON Schema within the bounds above; a `ValueError` saying why not (a pydantic
    field validator, so that the card names the field)."""
    problem = _depth_problem(schema)
    if problem is not None:
        raise ValueError(problem)
    text = json.dumps(schema, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    size = len(text.encode())
    if size > MAX_SCHEMA_BYTES:
        raise ValueError(
            f"the schema is {size} bytes as compact JSON, at most {MAX_SCHEMA_BYTES} are allowed; "
            f"move shared parts into $defs or simplify it"
        )
    problem = _schema_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return schema


def first_mismatch(
    schema: Mapping[str, Any], value: object, *, seconds: float = MAX_CHECK_SECONDS
) -> jsonschema.exceptions.ValidationError | None:
    """The most relevant way `value` breaks `schema` (a schema already checked), or None when it fits.

    A value too costly to check (nested past `MAX_VALUE_DEPTH`, or checked for longer than `seconds`) is a
    mismatch.
    """
    if _nesting(value) > MAX_VALUE_DEPTH:
        return jsonschema.exceptions.ValidationError(
            f"the value is nested more than {MAX_VALUE_DEPTH} levels deep; refused"
        )
    validator = _validator(schema)
    token = _clock.set(_Clock(time.monotonic() + seconds))
    try:
        return jsonschema.exceptions.best_match(validator.iter_errors(value))
    except _TooCostly:
        return jsonschema.exceptions.ValidationError(
            f"checking the value against the schema takes longer than {seconds:g} s; refused"
        )
    except RecursionError:
        return jsonschema.exceptions.ValidationError("the value is nested too deeply to check")
    finally:
        _clock.reset(token)


_VALIDATORS: dict[int, tuple[Mapping[str, Any], Any]] = {}
MAX_CACHED_VALIDATORS: Final = 1024


def _validator(schema: Mapping[str, Any]) -> Any:
    """The bounded validator of `schema`, made once per schema object (a card's schemas check every call's
    input and output: no new validator per call). Keyed by identity: the cache holds the schema, so its id
    is not reused while cached."""
    known = _VALIDATORS.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    if len(_VALIDATORS) >= MAX_CACHED_VALIDATORS:
        _VALIDATORS.pop(next(iter(_VALIDATORS)))  # the oldest
    validator = validator_class(schema)(schema)
    _VALIDATORS[id(schema)] = (schema, validator)
    return validator


def validator_class(schema: Mapping[str, Any]) -> Any:
    """The bounded validator of the draft `schema` names in `$schema` (2020-12 when it names none)."""
    dialect = schema.get("$schema")
    if dialect is None:
        return _bounded(jsonschema.validators.Draft202012Validator)
    validator = (
        jsonschema.validators.validator_for(schema, default=None) if isinstance(dialect, str) else None
    )
    if validator is None:
        raise ValueError(f"unknown $schema {dialect!r}: use a JSON Schema draft URI, or leave $schema out")
    return _bounded(validator)


# -- checking a schema ----------------------------------------------------------------------------------


def _depth_problem(schema: object) -> str | None:
    """Why `schema` nests too deeply, or None."""
    if _nesting(schema, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH:
        return f"the schema is nested more than {MAX_SCHEMA_DEPTH} levels deep; use $defs and $ref"
    return None


def _nesting(value: object, stop: int = MAX_VALUE_DEPTH) -> int:
    """How deep objects and arrays nest in `value`, counted up to `stop + 1`; iterative, so any depth is
    measured without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping | list):
            deepest = max(deepest, depth)
            if depth > stop:
                return depth
            stack.extend(
                (child, depth + 1) for child in (item.values() if isinstance(item, Mapping) else item)
            )
    return deepest


@functools.lru_cache(maxsize=1024)
def _schema_problem(text: str) -> str | None:
    """Why the schema (as sorted compact JSON) is not a bounded, valid JSON Schema, or None."""
    schema = json.loads(text)
    try:
        validator = validator_class(schema)
    except ValueError as exc:
        return str(exc)
    problem = _Walk(schema).problem()
    if problem is not None:
        return problem
    try:
        validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        where = "/".join(str(part) for part in exc.path) or "the top level"
        return f"not a valid JSON Schema at {where}: {exc.message}"
    return None


class _Walk:
    """Every subschema of one schema, reached by its keywords and its `$ref`s, checked for what would make
    checking values unbounded."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.edges: dict[str, list[tuple[str, str]]] = {}
        """Pointer → (pointer, how) of the subschemas that apply to the same value."""
        self.pattern_properties = False
        self.unevaluated_properties = False

    def problem(self) -> str | None:
        seen: set[str] = set()
        todo: list[tuple[str, Any]] = [("", self.root)]
        while todo:
            pointer, node = todo.pop()
            if pointer in seen:
                continue
            seen.add(pointer)
            if not isinstance(node, Mapping):
                continue
            problem = self._node(pointer, node, todo)
            if problem is not None:
                return problem
        if self.pattern_properties and self.unevaluated_properties:
            return "patternProperties together with unevaluatedProperties is not supported; use one of them"
        return self._cycle()

    def _node(self, pointer: str, node: Mapping[str, Any], todo: list[tuple[str, Any]]) -> str | None:
        where = _where(pointer)
        same = self.edges.setdefault(pointer, [])
        for key in ("$dynamicRef", "$recursiveRef"):
            if key in node:
                return f"{key} at {where} is not supported; use $ref to a #/$defs/... pointer"
        if pointer and isinstance(node.get("$id"), str):
            return f"$id at {where}: only the top level may set $id"
        ref = node.get("$ref")
        if ref is not None:
            if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
                return f"$ref {str(ref)[:80]!r} at {where}: only local references (#/...) are allowed"
            target_pointer = ref[1:]
            target = _resolve(self.root, target_pointer)
            if target is _MISSING:
                return f"$ref {ref[:80]!r} at {where} points to nothing in the schema"
            same.append((target_pointer, f"$ref {ref[:80]!r}"))
            todo.append((target_pointer, target))
        enum = node.get("enum")
        if isinstance(enum, list) and len(enum) > MAX_ENUM_VALUES:
            return f"enum at {where} lists {len(enum)} values, at most {MAX_ENUM_VALUES} are allowed"
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            problem = _pattern_problem(pattern)
            if problem is not None:
                return f"pattern at {where}: {problem}"
        if isinstance(node.get("patternProperties"), Mapping):
            self.pattern_properties = True
            for key in node["patternProperties"]:
                problem = _pattern_problem(str(key))
                if problem is not None:
                    return f"patternProperties at {where}: {problem}"
        if "unevaluatedProperties" in node:
            self.unevaluated_properties = True
        for key, child, applies_to_same in _children(node):
            child_pointer = f"{pointer}/{key}"
            if applies_to_same:
                same.append((child_pointer, key))
            todo.append((child_pointer, child))
        return None

    def _cycle(self) -> str | None:
        """A loop of same-value subschemas: checking any value against it would never end."""
        state: dict[str, int] = {}  # 1: on the path, 2: done
        for start in self.edges:
            if start in state:
                continue
            path: list[tuple[str, Iterator[tuple[str, str]]]] = [(start, iter(self.edges[start]))]
            state[start] = 1
            while path:
                pointer, edges = path[-1]
                step = next(edges, None)
                if step is None:
                    state[pointer] = 2
                    path.pop()
                    continue
                target, how = step
                if state.get(target) == 1:
                    return (
                        f"the schema refers to itself without descending into the value: {how} at "
                        f"{_where(pointer)} leads back to {_where(target)}"
                    )
                if target not in state:
                    state[target] = 1
                    path.append((target, iter(self.edges.get(target, ()))))
        return None


def _children(node: Mapping[str, Any]) -> Iterable[tuple[str, Any, bool]]:
    """`(path below node, subschema, applies to the same value)` for each subschema keyword of `node`."""
    for key in _SAME_VALUE_SCHEMA:
        if key in node:
            yield key, node[key], True
    for key in _SAME_VALUE_LIST:
        if isinstance(node.get(key), list):
            for index, item in enumerate(node[key]):
                yield f"{key}/{index}", item, True
    for key in _SAME_VALUE_MAP:
        if isinstance(node.get(key), Mapping):
            for name, item in node[key].items():
                yield f"{key}/{_escape(str(name))}", item, True
    for key in _CHILD_SCHEMA:
        if isinstance(node.get(key), Mapping):
            yield key, node[key], False
    for key in _CHILD_LIST:
        if isinstance(node.get(key), list):
            for index, item in enumerate(node[key]):
                yield f"{key}/{index}", item, False
    for key in _CHILD_MAP:
        if isinstance(node.get(key), Mapping):
            for name, item in node[key].items():
                yield f"{key}/{_escape(str(name))}", item, False


_MISSING: Final = object()


def _resolve(root: Any, pointer: str) -> Any:
    target = root
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(target, Mapping) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return _MISSING
    return target


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _where(pointer: str) -> str:
    return f"#{pointer}" if pointer else "the top level"


# -- checking values, bounded ---------------------------------------------------------------------------


class _Clock:
    """The deadline of one value's check; the clock is read every `_EVERY` keyword checks."""

    __slots__ = ("deadline", "steps")
    _EVERY: Final = 64

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.steps = 0

    def tick(self) -> None:
        self.steps += 1
        if self.steps % self._EVERY == 0 and time.monotonic() > self.deadline:
            raise _TooCostly


_clock: contextvars.ContextVar[_Clock | None] = contextvars.ContextVar("motet_schema_clock", default=None)


class _TooCostly(Exception):
    """Raised inside a check that passed `MAX_CHECK_SECONDS`."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False
    return options


_RE2_OPTIONS: Final = _options()


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> Any:
    """`pattern` compiled by RE2; raises `re2.error` for one RE2 cannot run."""
    return re2.compile(pattern, _RE2_OPTIONS)


def _pattern_problem(pattern: str) -> str | None:
    try:
        _regex(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return (
            f"{pattern[:80]!r} is not a regular expression RE2 runs ({reason}); patterns may not use "
            f"backreferences or lookaround"
        )
    return None


def _search(pattern: str, text: str) -> bool:
    return _regex(pattern).search(text) is not None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield jsonschema.exceptions.ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, extra: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [
        key
        for key in instance
        if key not in properties and not any(_search(pattern, key) for pattern in patterns)
    ]
    if validator.is_type(extra, "object"):
        for key in extras:
            yield from validator.descend(instance[key], extra, path=key)
    elif not extra and extras:
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            listed = ", ".join(repr(key) for key in sorted(extras))
            shown = ", ".join(repr(pattern) for pattern in sorted(patterns))
            yield jsonschema.exceptions.ValidationError(
                f"{listed} {verb} not match any of the regexes: {shown}"
            )
        else:
            verb = "was" if len(extras) == 1 else "were"
            listed = ", ".join(repr(key) for key in extras)
            yield jsonschema.exceptions.ValidationError(
                f"Additional properties are not allowed ({listed} {verb} unexpected)"
            )


_REGEX_KEYWORDS: Final[dict[str, Callable[..., Iterator[Any]]]] = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
}


def _counted(keyword: Callable[..., Any]) -> Callable[..., Iterator[Any]]:
    def check(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
        clock = _clock.get()
        if clock is not None:
            clock.tick()
        errors = keyword(validator, value, instance, schema)
        if errors:
            yield from errors

    return check


@functools.cache
def _bounded(base: Any) -> Any:
    """`base` (a jsonschema validator class) with RE2 patterns and every keyword check counted."""
    keywords = {name: _counted(_REGEX_KEYWORDS.get(name, check)) for name, check in base.VALIDATORS.items()}
    return jsonschema.validators.extend(base, keywords)
