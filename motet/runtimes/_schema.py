"""Output schemas: what callers pass as `schema=`, made into a JSON Schema plus a parser for the output.

A pydantic model class is converted with `model_json_schema()` and the output is validated against the
model. A JSON Schema dict is trusted to the runtime's constrained generation (llama.cpp turns it into a
grammar, so the output follows it token by token); its output is checked to be JSON, not re-validated,
because no JSON Schema validator is a dependency.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, JsonValue, TypeAdapter, ValidationError

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
    """The schema as compact JSON text: what grammars are built and cached from."""
    model: type[BaseModel] | None = None
    _adapter: TypeAdapter[Any] | None = field(default=None, repr=False, compare=False)

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
        return cls(json.loads(key), key)

    def parse(self, text: str, finish_reason: FinishReason) -> JsonValue:
        """The JSON value of `text`, validated against the pydantic model when there is one."""
        cut = " (the output was cut off at max_tokens: raise max_tokens)" if finish_reason == "length" else ""
        try:
            value: JsonValue = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidModelOutput(text, f"not JSON: {exc.msg} at character {exc.pos}{cut}") from exc
        if self._adapter is not None and self.model is not None:
            try:
                self._adapter.validate_json(text)
            except ValidationError as exc:
                error = exc.errors()[0]
                where = ".".join(str(part) for part in error["loc"]) or "the value"
                problem = f"does not match {self.model.__name__}: {where}: {error['msg']}{cut}"
                raise InvalidModelOutput(text, problem) from exc
        return value


def _canonical(schema: Mapping[str, Any], shown: object) -> str:
    # Key order is kept: grammars emit properties in the order the schema lists them.
    try:
        return json.dumps(schema, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidSchema(shown, f"not JSON-serialisable ({exc})") from exc
