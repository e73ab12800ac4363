"""Verifiable capabilities: everything needed to re-run a prompt capability, and what its receipt commits to.

A prompt capability defined with `Agent.prompt(..., verifiable=True)` publishes a `VerifiableProfile` in its
card entry (`"verifiable": {...}`): the exact model (the runtime's `ModelRef`, GGUF sha256 included), the
system instructions, the user template, the output JSON Schema the answer is constrained to, the token bound,
and greedy sampling with a fixed seed. Anyone holding the same weights can then rebuild the very messages the
agent sent (`messages()`) and re-run the call (`sampling()`).

The agent's receipt for such a call commits to that profile and to the raw generated text:
`modelRef = profile_hash(profile)` and `responseHash = response_hash(output, text)`. A receipt for a
non-verifiable capability keeps `modelRef = model_ref_hash(model_ref)` and `responseHash = content_hash(output)`
(`response_hash(output, None)`). Python-function capabilities are never verifiable: nothing published says
what they compute.

An extractive capability (`Agent.prompt(..., words_from="text")`) draws every string of its answer from the words
of one input field: its grammar depends on the input. The profile then says so (`"wordsFrom": "text"`), and the
agent and a checker both constrain the call to `schema_for(output_schema, words_from, input)`, the output schema
with each string restricted to `input_words(input[words_from])`.

Example:
    >>> from motet.runtimes import ModelRef
    >>> ref = ModelRef("llama.cpp", "0.3.36", "SmolLM2-135M-Instruct", "ab" * 32, "Q4_1")
    >>> profile = VerifiableProfile.bind(
    ...     ref,
    ...     instructions="Name the language.",
    ...     template="Text: {text}",
    ...     output_schema={"type": "object", "properties": {"language": {"type": "string"}}},
    ...     max_tokens=16,
    ... )
    >>> [m.content for m in profile.messages({"text": "bonjour"})]
    ['Name the language.', 'Text: bonjour']
    >>> profile.sampling()
    Sampling(max_tokens=16, temperature=0.0, seed=0, stop=())
    >>> VerifiableProfile.model_validate(profile.model_dump(by_alias=True)) == profile
    True
    >>> len(profile_hash(profile)), response_hash({"a": 1}, None) == content_hash({"a": 1})
    (32, True)
"""

from __future__ import annotations

import dataclasses
import json
import re
import string
from collections.abc import Mapping
from typing import Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

from motet.agents._schemas import check_json_schema
from motet.errors import InvalidAgentInput
from motet.payments import content_hash
from motet.runtimes import Message, ModelRef, Sampling

MAX_PROFILE_TEXT: Final = 16 * 1024
"""The longest `instructions` or `template` a profile may hold, in characters."""
MAX_PROFILE_TOKENS: Final = 8192
"""The largest `max_tokens` a verifiable profile may declare."""

_MODEL_FIELDS: Final = tuple(field.name for field in dataclasses.fields(ModelRef))

MAX_WORDS: Final = 300
"""The most words of an input an extractive answer chooses from (the first ones, in order of appearance)."""
MAX_WORD: Final = 40
"""The longest word, in characters, an extractive answer may choose."""
_WORD: Final = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
STOP_WORDS: Final = frozenset(
    """about after all also and any are been before but can could did does for from had has have her his how
    into its more most not now off only other our out over said she should than that the their them then there
    these they this those too under very was were what when where which while who why will with would you your
    """.split()  # noqa: SIM905
)
"""Words an extractive answer never chooses (compared lowercased): they say nothing about a text."""


def input_words(text: str) -> list[str]:
    """The words an extractive answer may choose from `text`, in order of first appearance, each once.

    A word is a run of letters and digits, with inner apostrophes or hyphens ("children's", "well-known"), of
    3 to `MAX_WORD` characters and not in `STOP_WORDS`; at most `MAX_WORDS` of them. A text without any such
    word gives its other words, and a text without words at all gives its first `MAX_WORD` characters, so that
    an answer can always be made of the input. This rule is part of the verifiable protocol: a checker derives
    the same words from the same input.

    Example:
        >>> input_words("The library's new wing: the wing opens at 9.")
        ["library's", 'new', 'wing', 'opens']
    """
    found = [word for word in _WORD.findall(text) if len(word) <= MAX_WORD]
    telling = [word for word in found if len(word) >= 3 and word.lower() not in STOP_WORDS]
    words = list(dict.fromkeys(telling or found))
    return words[:MAX_WORDS] if words else [text[:MAX_WORD]]


def restrict_to_words(schema: Mapping[str, Any], words: list[str]) -> dict[str, Any]:
    """`schema` with every string in it (a `"type": "string"` without `enum` or `const`) one of `words`.

    Example:
        >>> items = {"type": "array", "items": {"type": "string", "maxLength": 40}}
        >>> restrict_to_words({"type": "object", "properties": {"k": items}}, ["a", "b"])["properties"]["k"]
        {'type': 'array', 'items': {'type': 'string', 'maxLength': 40, 'enum': ['a', 'b']}}
    """

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, Mapping):
            return node
        out = {key: walk(value) for key, value in node.items()}
        if out.get("type") == "string" and "enum" not in out and "const" not in out:
            out["enum"] = list(words)
        return out

    restricted: dict[str, Any] = walk(schema)
    return restricted


def schema_for(
    output_schema: Mapping[str, Any],
    words_from: str | None,
    input: Mapping[str, Any],
    *,
    capability: str = "prompt",
) -> dict[str, Any]:
    """The schema one call's output is constrained to: `output_schema`, or for an extractive capability
    (`words_from` names an input field) every string in it restricted to `input_words(input[words_from])`.

    The agent and a checker both call this, so that they constrain a call to the same grammar. Raises
    `InvalidAgentInput` when the input has no text field `words_from`.

    Example:
        >>> schema = {"type": "object", "properties": {"w": {"type": "string"}}}
        >>> schema_for(schema, "text", {"text": "Libraries lend books."})["properties"]["w"]["enum"]
        ['Libraries', 'lend', 'books']
    """
    if words_from is None:
        return dict(output_schema)
    text = input.get(words_from)
    if not isinstance(text, str):
        raise InvalidAgentInput(
            capability, words_from, "missing or not text: the answer's words come from it"
        )
    return restrict_to_words(output_schema, input_words(text))


def render_messages(
    instructions: str, template: str | None, input: Mapping[str, Any], *, capability: str = "prompt"
) -> list[Message]:
    """The chat messages of a prompt capability for `input` (its fields as JSON values).

    The system message is `instructions`; the user message is `template.format(**input)`, or, without a
    template, the input as canonical JSON (sorted keys, no spaces, UTF-8 unescaped). `Agent.prompt`'s handler
    and `VerifiableProfile.messages` both call this, so what an agent sends and what a checker rebuilds can
    never differ. Raises `InvalidAgentInput` when the template names a field the input lacks.

    Example:
        >>> render_messages("Be brief.", None, {"b": 1, "a": "é"})[1].content
        '{"a":"é","b":1}'
    """
    if template is None:
        try:
            content = json.dumps(
                dict(input), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            )
        except (TypeError, ValueError) as exc:
            raise InvalidAgentInput(capability, "input", f"not JSON: {exc}") from exc
    else:
        try:
            content = template.format(**input)
        except KeyError as exc:
            raise InvalidAgentInput(capability, str(exc.args[0]), "missing: the template uses it") from exc
        except (IndexError, ValueError, AttributeError, TypeError) as exc:
            raise InvalidAgentInput(capability, "input", f"the template cannot render it: {exc}") from exc
    return [Message("system", instructions), Message("user", content)]


def template_problem(template: str) -> str | None:
    """Why `template` is not a plain template (only `{field}` placeholders), or None when it is.

    A verifiable template has no attribute or index access, conversion or format spec: rendering it must not
    depend on Python's formatting of anything but the field's value, and must stay cheap for any input.

    Example:
        >>> template_problem("Text: {text}") is None
        True
        >>> template_problem("{text:>99999999}")
        'placeholder {text:>99999999} has a conversion or format spec: write plain {field} placeholders'
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"not a str.format template: {exc}"
    for _, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        if not field_name.isidentifier():
            return f"placeholder {{{field_name}}} is not a plain field name: write {{field}}"
        if spec or conversion:
            shown = field_name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            return (
                f"placeholder {{{shown}}} has a conversion or format spec: write plain {{field}} placeholders"
            )
    return None


class VerifiableProfile(BaseModel):
    """Everything needed to re-run one verifiable prompt capability, as its card publishes it.

    JSON keys are camelCase (`outputSchema`, `maxTokens`); `model` holds `ModelRef`'s fields as they are
    (`runtime`, `runtime_version`, `model`, `sha256`, `quantization`, `endpoint`). A profile is always
    greedy (`temperature` 0): sampling at random could not be re-run. Parsing is strict and bounded, since
    profiles come from strangers' cards and evidence.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
    )

    model: dict[str, str]
    """`dataclasses.asdict(ModelRef)`: the runtime, its version, the model name, the weights' sha256, the
    quantization and the endpoint (empty for an in-process model)."""
    instructions: str = Field(max_length=MAX_PROFILE_TEXT)
    """The system message."""
    template: str | None = Field(max_length=MAX_PROFILE_TEXT)
    """`str.format` over the input's fields (plain `{field}` placeholders); None: the input as canonical JSON."""
    output_schema: dict[str, JsonValue]
    """The JSON Schema the output is constrained to (by grammar) and checked against."""
    max_tokens: int = Field(ge=1, le=MAX_PROFILE_TOKENS)
    temperature: float = 0.0
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    words_from: str | None = Field(default=None, max_length=64)
    """For an extractive capability, the input field every string of the answer is a word of (`schema_for`);
    absent from the JSON when None, so that other profiles read and hash as before."""

    @model_serializer(mode="wrap")
    def _drop_absent_words_from(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.words_from is None:
            data.pop("wordsFrom", None)
            data.pop("words_from", None)
        return data

    @field_validator("words_from")
    @classmethod
    def _field_name(cls, words_from: str | None) -> str | None:
        if words_from is not None and not words_from.isidentifier():
            raise ValueError(f"wordsFrom {words_from!r} is not an input field name")
        return words_from

    @field_validator("model")
    @classmethod
    def _model_ref_fields(cls, model: dict[str, str]) -> dict[str, str]:
        if tuple(sorted(model)) != tuple(sorted(_MODEL_FIELDS)):
            raise ValueError(
                f"the model must have exactly the fields {list(_MODEL_FIELDS)}, got {sorted(model)}"
            )
        for key, value in model.items():
            if len(value) > 2048:
                raise ValueError(f"model.{key} is {len(value)} characters, at most 2048 are allowed")
        sha256 = model["sha256"]
        if len(sha256) != 64 or any(char not in "0123456789abcdef" for char in sha256):
            raise ValueError(
                "model.sha256 must be the weights' sha256 (64 lowercase hex digits): a model whose weights "
                "are unknown cannot be re-run"
            )
        return model

    @field_validator("template")
    @classmethod
    def _plain_template(cls, template: str | None) -> str | None:
        if template is not None and (problem := template_problem(template)) is not None:
            raise ValueError(problem)
        return template

    @field_validator("output_schema")
    @classmethod
    def _schema(cls, schema: dict[str, JsonValue]) -> dict[str, JsonValue]:
        return check_json_schema(schema)

    @model_validator(mode="after")
    def _greedy(self) -> VerifiableProfile:
        if self.temperature != 0:
            raise ValueError(
                f"temperature is {self.temperature}: a verifiable profile is greedy (temperature 0), since "
                "a sampled answer cannot be re-run"
            )
        return self

    @classmethod
    def bind(
        cls,
        model_ref: ModelRef,
        *,
        instructions: str,
        template: str | None,
        output_schema: Mapping[str, Any],
        max_tokens: int,
        words_from: str | None = None,
    ) -> VerifiableProfile:
        """The profile of a prompt capability run on `model_ref`."""
        return cls(
            model=dataclasses.asdict(model_ref),
            instructions=instructions,
            template=template,
            output_schema=dict(output_schema),
            max_tokens=max_tokens,
            words_from=words_from,
        )

    def model_ref(self) -> ModelRef:
        """The model as a runtime's `ModelRef`."""
        return ModelRef(**self.model)

    def messages(self, input: Mapping[str, Any], *, capability: str = "prompt") -> list[Message]:
        """Exactly the messages the agent sends for `input` (the request's input, as JSON values)."""
        return render_messages(self.instructions, self.template, input, capability=capability)

    def call_schema(self, input: Mapping[str, Any], *, capability: str = "prompt") -> dict[str, Any]:
        """Exactly the schema the agent constrains the call for `input` to (`schema_for`)."""
        return schema_for(self.output_schema, self.words_from, input, capability=capability)

    def sampling(self) -> Sampling:
        """Exactly the sampling the agent uses: greedy, seeded, bounded by `max_tokens`."""
        return Sampling(max_tokens=self.max_tokens, temperature=self.temperature, seed=self.seed)

    def to_json(self) -> dict[str, Any]:
        """The profile as its card entry writes it (camelCase keys)."""
        return self.model_dump(by_alias=True, mode="json")


def profile_hash(profile: VerifiableProfile) -> bytes:
    """The `modelRef` of a verifiable capability's receipt: `content_hash` of the profile's JSON (camelCase).

    Example:
        >>> from motet.runtimes import ModelRef
        >>> ref = ModelRef("llama.cpp", "0.3.36", "SmolLM2-135M-Instruct", "ab" * 32, "Q4_1")
        >>> one = VerifiableProfile.bind(ref, instructions="a", template=None, output_schema={}, max_tokens=8)
        >>> profile_hash(one) == profile_hash(one.model_copy(update={"max_tokens": 9}))
        False
    """
    return content_hash(profile.model_dump(by_alias=True, mode="json"))


def response_hash(output: Mapping[str, Any], text: str | None) -> bytes:
    """The `responseHash` of a receipt: `content_hash(output)`, or with the raw generated `text` of a
    verifiable capability, `content_hash({"output": output, "text": text})`.

    Example:
        >>> response_hash({"a": 1}, '{"a": 1}') == content_hash({"output": {"a": 1}, "text": '{"a": 1}'})
        True
    """
    if text is None:
        return content_hash(output)
    return content_hash({"output": output, "text": text})
