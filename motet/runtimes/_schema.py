"""Output schemas: what callers pass as `schema=`, made into a JSON Schema plus a parser for the output.

A pydantic model class is converted with `model_json_schema()` and the output is validated against the
model. A JSON Schema dict is checked to be a valid schema up front and the output is validated against it
with `jsonschema`: llama.cpp's grammar follows a schema token by token, but a remote endpoint may ignore it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import jsonschema
import jsonschema.exceptions
import jsonschema.protocols
import jsonschema.validators
from pydantic import BaseModel, JsonValue, TypeAdapter, ValidationError

from motet._json import loads
from motet.errors import InvalidModelOutput, InvalidSchema
from motet.runtimes._protocol import FinishReason, Schema


@dataclass(frozen=True)
class OutputSchema:
    """A schema ready to constrain and check one call's output.

    Example:
        >>> schema = OutputSchema.of({"type": "object", "properties": {"n": {"type": "integer"}}})
        >>> schema.parse('{"n": 3}', "stop")
        {'n': 3}
    """

    json_schema: dict[str, Any]
    key: str
    """The schema as compact JSON text."""
    model: type[BaseModel] | None = None
    _adapter: TypeAdapter[Any] | None = field(default=None, repr=False, compare=False)
    _validator: jsonschema.protocols.Validator | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, schema: Schema | None) -> OutputSchema | None:
        """Convert what a caller passed; raises `InvalidSchema` for anything that is not a schema."""
        if schema is None:
            return None
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            key = _canonical(schema.model_json_schema(), schema)
            return cls(json.loads(key), key, schema, TypeAdapter(schema))
        if not isinstance(schema, Mapping):
            raise InvalidSchema(schema, "pass a JSON Schema dict or a pydantic model class")
        key = _canonical(schema, schema)
        json_schema = json.loads(key)
        validator = _validator_class(json_schema)
        try:
            validator.check_schema(json_schema)
        except jsonschema.SchemaError as exc:
            where = "/".join(str(part) for part in exc.path) or "the top level"
            raise InvalidSchema(schema, f"not a valid JSON Schema at {where}: {exc.message}") from exc
        return cls(json_schema, key, _validator=validator(json_schema))

    @property
    def grammar_key(self) -> str:
        """The schema a grammar is built from, as compact JSON: `key` less length bounds too large to unroll.

        llama.cpp unrolls `maxLength`/`maxItems` into one nested rule per repetition, and a few thousand of
        them overflow its stack when sampling. Bounds above `GRAMMAR_MAX_REPEAT` are left to validation
        (`parse()` still enforces them) and to `max_tokens`.
        """
        return json.dumps(_without_large_bounds(self.json_schema), separators=(",", ":"))

    def parse(self, text: str, finish_reason: FinishReason) -> JsonValue:
        """The JSON value of `text`, validated against the pydantic model when there is one."""
        cut_off = finish_reason == "length"
        cut = (
            " (generation stopped at the call's max_tokens: pass a larger Sampling(max_tokens=...))"
            if cut_off
            else ""
        )
        try:
            value: JsonValue = loads(text)
        except json.JSONDecodeError as exc:  # str(exc): "<msg>: line 1 column 8 (char 7)"
            raise InvalidModelOutput(text, f"not JSON: {exc}{cut}", cut_off=cut_off) from exc
        except ValueError as exc:  # nested too deep to read safely
            raise InvalidModelOutput(text, f"not JSON motet reads: {exc}{cut}", cut_off=cut_off) from exc
        if self._adapter is not None and self.model is not None:
            try:
                self._adapter.validate_json(text)
            except ValidationError as exc:
                error = exc.errors()[0]
                where = ".".join(str(part) for part in error["loc"]) or "the value"
                problem = f"does not match {self.model.__name__}: {where}: {error['msg']}{cut}"
                raise InvalidModelOutput(text, problem, cut_off=cut_off) from exc
        elif self._validator is not None:
            error = jsonschema.exceptions.best_match(self._validator.iter_errors(value))
            if error is not None:
                where = ".".join(str(part) for part in error.absolute_path) or "the value"
                raise InvalidModelOutput(
                    text, f"does not match the schema: {where}: {error.message}{cut}", cut_off=cut_off
                )
        return value


def _validator_class(schema: dict[str, Any]) -> type[jsonschema.protocols.Validator]:
    return cast(type["jsonschema.protocols.Validator"], jsonschema.validators.validator_for(schema))


GRAMMAR_MAX_REPEAT = 500
"""The largest `maxLength` or `maxItems` a llama.cpp grammar is built with."""


def _without_large_bounds(node: Any, *, names: bool = False) -> Any:
    """`node` without large length bounds; `names` is True for maps of names to schemas (`properties`...)."""
    if isinstance(node, list):
        return [_without_large_bounds(item) for item in node]
    if not isinstance(node, dict):
        return node
    kept = {}
    for key, value in node.items():
        large = isinstance(value, int) and value > GRAMMAR_MAX_REPEAT
        if not names and key in ("maxLength", "maxItems") and large:
            continue
        holds_names = not names and key in ("properties", "patternProperties", "$defs", "definitions")
        kept[key] = _without_large_bounds(value, names=holds_names)
    return kept


def _canonical(schema: Mapping[str, Any], shown: object) -> str:
    # Key order is kept: grammars emit properties in the order the schema lists them.
    try:
        return json.dumps(schema, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidSchema(shown, f"not JSON-serialisable ({exc})") from exc
