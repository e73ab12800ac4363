"""A workflow's inputs as a form generated from its input schema: one field per input, by type, required ones
marked, each with the schema's description; errors shown under the form and on the fields they name."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import JsonValue
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, Switch, TextArea

LONG_TEXT = 200
"""A string input whose `maxLength` is above this (or unset) gets a text area rather than a one-line field."""


class InputForm(VerticalScroll):
    """One field per property of `schema` (a JSON Schema object), filled from `values`.

    Field widgets by type: `boolean` a switch, `enum` a pick list, `integer`/`number` a numeric field, `string`
    a one-line field (a text area when it may be long), an array of strings a comma-separated field, anything
    else JSON in a text area. `values()` reads them back (empty fields left out), typed as far as the
    widget knows; `Workflow.validate_inputs` has the last word.
    """

    def __init__(
        self, schema: Mapping[str, Any], values: Mapping[str, JsonValue], *, id: str = "form"
    ) -> None:
        super().__init__(id=id)
        self.schema = dict(schema)
        self.properties: dict[str, dict[str, Any]] = dict(schema.get("properties", {}))
        self.required: set[str] = set(schema.get("required", ()))
        self.initial = dict(values)

    def compose(self) -> ComposeResult:
        yield Static("", id="form-errors", classes="form-errors", markup=False)
        if not self.properties:
            yield Static("This workflow takes no inputs.", classes="form-empty")
        for name, prop in self.properties.items():
            yield Label(self._label(name, prop), classes="form-label", markup=False)
            yield self._field(name, prop, self.initial.get(name, prop.get("default")))

    def _label(self, name: str, prop: Mapping[str, Any]) -> str:
        kind = _kind(prop)
        mark = " *" if name in self.required else " (optional)"
        about = str(prop.get("description") or prop.get("title") or "").strip()
        return f"{name}{mark} · {kind}" + (f" — {about}" if about and about != name else "")

    def _field(self, name: str, prop: Mapping[str, Any], value: JsonValue) -> Widget:
        field_id = f"field-{name}"
        kind = _kind(prop)
        if "enum" in prop:
            options = [(str(choice), choice) for choice in prop["enum"]]
            return Select(
                options,
                value=value if value in prop["enum"] else Select.BLANK,
                allow_blank=name not in self.required or value not in prop["enum"],
                id=field_id,
                classes="form-field",
            )
        if kind == "boolean":
            return Switch(value=bool(value), id=field_id, classes="form-field")
        if kind == "integer" or kind == "number":
            return Input(
                "" if value is None else str(value),
                type="integer" if kind == "integer" else "number",
                id=field_id,
                classes="form-field",
            )
        if kind == "string" and int(prop.get("maxLength", LONG_TEXT + 1)) <= LONG_TEXT:
            return Input("" if value is None else str(value), id=field_id, classes="form-field")
        if kind == "string":
            return TextArea("" if value is None else str(value), id=field_id, classes="form-field long")
        if kind == "list of string":
            text = ", ".join(str(item) for item in value) if isinstance(value, list) else ""
            return Input(text, placeholder="comma-separated", id=field_id, classes="form-field")
        text = "" if value is None else json.dumps(value, indent=1)
        return TextArea(text, id=field_id, classes="form-field long json")

    def values(self) -> dict[str, Any]:
        """The form as a mapping of input name → value; empty fields are left out, JSON fields parsed
        (a field that is not JSON is passed on as its text, for validation to name)."""
        out: dict[str, Any] = {}
        for name, prop in self.properties.items():
            widget = self.query_one(f"#field-{name}")
            value: Any
            if isinstance(widget, Switch):
                value = widget.value
            elif isinstance(widget, Select):
                if widget.value is Select.BLANK:
                    continue
                value = widget.value
            elif isinstance(widget, TextArea | Input):
                text = widget.text if isinstance(widget, TextArea) else widget.value
                if not text.strip():  # left empty: missing (a required one is then named by the check)
                    continue
                value = text
                if widget.has_class("json"):
                    try:
                        value = json.loads(text)
                    except json.JSONDecodeError:
                        value = text
                elif _kind(prop) == "list of string":
                    value = [part.strip() for part in text.split(",") if part.strip()]
            else:  # pragma: no cover - every field is one of the above
                continue
            out[name] = value
        return out

    def show_errors(self, message: str, fields: Mapping[str, str]) -> None:
        """Say what is wrong at the top of the form, and mark each field named in `fields` (name → problem)."""
        self.query_one("#form-errors", Static).update(message)
        self.set_class(bool(message), "has-errors")
        for name in self.properties:
            self.query_one(f"#field-{name}").set_class(name in fields, "-invalid")
        if message:
            self.scroll_home(animate=False)


def _kind(prop: Mapping[str, Any]) -> str:
    """The type a person reads: `string`, `integer`, `list of string`, …"""
    kind = prop.get("type")
    if kind is None and "anyOf" in prop:  # pydantic's Optional[X]
        kinds = [p.get("type") for p in prop["anyOf"] if p.get("type") != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if kind == "array":
        items = prop.get("items", {})
        return f"list of {items.get('type', 'values')}"
    return str(kind) if isinstance(kind, str) else "JSON"
