"""The JSON Schemas of capabilities: checked once when a card is read, then used to check values.

A card's schemas come from strangers, so a schema is bounded (`MAX_SCHEMA_BYTES` as compact JSON), must be
a valid JSON Schema of a known draft (2020-12 when it names none), and checking one is cached: a registry's
cards repeat the same few schemas, and checking one takes milliseconds.

Example:
    >>> first_mismatch({"type": "object", "required": ["text"]}, {}).message
    "'text' is a required property"
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any, Final

import jsonschema.exceptions
import jsonschema.validators
from pydantic import JsonValue

MAX_SCHEMA_BYTES: Final = 16 * 1024
"""Largest input or output schema of one capability, in bytes of compact JSON."""


def check_json_schema(schema: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """`schema` if it is a JSON Schema within `MAX_SCHEMA_BYTES`; a `ValueError` saying why not (a pydantic
    field validator, so that the card names the field)."""
    try:
        text = json.dumps(schema, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    except RecursionError:
        raise ValueError("the schema is nested too deeply") from None
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


def first_mismatch(schema: Mapping[str, Any], value: object) -> jsonschema.exceptions.ValidationError | None:
    """The most relevant way `value` breaks `schema` (a schema already checked), or None when it fits."""
    validator = validator_class(schema)(schema)
    return jsonschema.exceptions.best_match(validator.iter_errors(value))


@functools.lru_cache(maxsize=1024)
def _schema_problem(text: str) -> str | None:
    """Why the schema (as sorted compact JSON) is not a valid JSON Schema, or None."""
    schema = json.loads(text)
    try:
        validator = validator_class(schema)
    except ValueError as exc:
        return str(exc)
    try:
        validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        where = "/".join(str(part) for part in exc.path) or "the top level"
        return f"not a valid JSON Schema at {where}: {exc.message}"
    return None


def validator_class(schema: Mapping[str, Any]) -> Any:
    """The validator of the draft `schema` names in `$schema` (2020-12 when it names none)."""
    dialect = schema.get("$schema")
    if dialect is None:
        return jsonschema.validators.Draft202012Validator
    validator = (
        jsonschema.validators.validator_for(schema, default=None) if isinstance(dialect, str) else None
    )
    if validator is None:
        raise ValueError(f"unknown $schema {dialect!r}: use a JSON Schema draft URI, or leave $schema out")
    return validator
