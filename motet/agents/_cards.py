"""Agent cards: the registration file an agent's on-chain `agentURI` points to.

A card is ERC-8004's `registration-v1` JSON (`type`, `name`, `description`, `image`, `services`,
`x402Support`, `active`, `registrations`, `supportedTrust`) plus what motet needs to choose, call and pay an
agent: its `capabilities` (a name and an input and output JSON Schema each), its `pricing`, the `model`
that answers (so that calls are attributable to weights), and the `signer` of its receipts.

Cards come from strangers, so parsing is strict and bounded: unknown fields are rejected, every string and
list has a size limit, a body over `MAX_CARD_BYTES` is refused before it is parsed, and every problem is an
`InvalidAgentCard` whose `field` is the dotted JSON path of the first one (`capabilities.0.inputSchema`).
Amounts are integers in the asset's smallest unit, written as decimal strings in JSON (a JSON number loses
precision past 2**53 in JavaScript).

Example:
    >>> card = AgentCard(
    ...     name="Summarizer",
    ...     description="Summarizes English text.",
    ...     services=[Service(name="motet", endpoint="https://agent.example/")],
    ...     capabilities=[CapabilitySpec(
    ...         name="text.summarize",
    ...         description="A one-paragraph summary.",
    ...         input_schema={"type": "object", "properties": {"text": {"type": "string"}}},
    ...         output_schema={"type": "object", "properties": {"summary": {"type": "string"}}},
    ...     )],
    ...     pricing=Pricing(per_call=100, per_1k_tokens=20),
    ...     signer="0x7e5f4552091a69125d5dfcb7b8c2659029395bdf",
    ... )
    >>> card.signer
    '0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf'
    >>> AgentCard.from_uri(card.to_data_uri()) == card
    True
    >>> card.pricing.price(prompt_tokens=700, completion_tokens=301)
    121
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import re
import time
import urllib.parse
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from eth_utils.address import is_checksum_address, is_hex_address, to_checksum_address
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from motet.agents._schemas import MAX_CHECK_SECONDS, check_json_schema, first_mismatch
from motet.agents._verifiable import VerifiableProfile
from motet.chain import NATIVE_ASSET
from motet.errors import InvalidAgentCard, UnknownCapability
from motet.registry import MAX_CAPABILITIES, validate_capability_name
from motet.runtimes import ModelRef
from motet.units import UINT256_MAX

REGISTRATION_TYPE: Final = "https://eips.ethereum.org/EIPS/eip-8004#registration-v1"
"""The `type` of every ERC-8004 registration file."""

MAX_CARD_BYTES: Final = 64 * 1024
"""Largest card, in bytes of JSON; larger bodies are refused before they are parsed."""

_MAX_URL = 2048
_DECIMAL = re.compile(r"[0-9]{1,78}")
_SHA256 = r"^(?:[0-9a-f]{64}|unknown)$"


def _http_url(value: str) -> str:
    return _url(value, ("http", "https"))


def _optional_http_url(value: str) -> str:
    return value and _http_url(value)


def _image_url(value: str) -> str:
    return _url(value, ("http", "https", "ipfs"))


def _url(value: str, schemes: tuple[str, ...]) -> str:
    if len(value) > _MAX_URL:
        raise ValueError(f"the URL has {len(value)} characters, at most {_MAX_URL} are allowed")
    if any(char <= " " or char == "\x7f" for char in value):
        raise ValueError("the URL contains whitespace or control characters; percent-encode them")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        shown = " or ".join(f"{scheme}://" for scheme in schemes)
        raise ValueError(f"{value[:80]!r} is not an absolute {shown} URL")
    return value


@functools.lru_cache(maxsize=4096)
def _address(value: str) -> str:
    if not value.startswith("0x") or not is_hex_address(value):
        raise ValueError(f"{value[:80]!r} is not an address: 0x followed by 40 hex digits")
    digits = value[2:]
    # Mixed case claims an EIP-55 checksum; a wrong one is most likely a typo in the address.
    if digits not in (digits.lower(), digits.upper()) and not is_checksum_address(value):
        raise ValueError(
            f"{value!r} has a wrong EIP-55 checksum: check the address, or write it in lower case"
        )
    return to_checksum_address(value)


def _non_zero(value: str) -> str:
    if int(value, 16) == 0:
        raise ValueError("the zero address cannot sign receipts; give the agent's signing address")
    return value


def _amount(value: object) -> object:
    if isinstance(value, str):
        if _DECIMAL.fullmatch(value) is None:
            raise ValueError(f"{value[:80]!r} is not a decimal integer; write amounts like '1000' or 1000")
        return int(value)
    return value


def _capability_name(value: str) -> str:
    return validate_capability_name(value)


Address = Annotated[str, AfterValidator(_address)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Amount = Annotated[
    int,
    BeforeValidator(_amount),
    Field(ge=0, le=UINT256_MAX),
    PlainSerializer(str, return_type=str, when_used="json"),
]
JsonSchema = Annotated[dict[str, JsonValue], AfterValidator(check_json_schema)]
CapabilityName = Annotated[str, AfterValidator(_capability_name)]
Label = Annotated[str, Field(min_length=1, max_length=64)]


class _Strict(BaseModel):
    """Immutable, no unknown fields, no type coercion; Python names or JSON aliases in, aliases out."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class CapabilityExample(_Strict):
    """One sample call of a capability: an input and the output it gets."""

    input: JsonValue
    output: JsonValue


class CapabilitySpec(_Strict):
    """One thing an agent can do: a name the registry indexes, and the JSON Schemas of its input and output.

    The examples must match the schemas.

    Example:
        >>> spec = CapabilitySpec(name="translate", input_schema={"type": "object"}, output_schema={})
        >>> sorted(spec.model_dump(mode="json"))
        ['description', 'examples', 'inputSchema', 'name', 'outputSchema']
    """

    name: CapabilityName
    description: str = Field(default="", max_length=500)
    input_schema: JsonSchema = Field(alias="inputSchema")
    output_schema: JsonSchema = Field(alias="outputSchema")
    examples: list[CapabilityExample] = Field(default_factory=list, max_length=5)
    max_tokens: int | None = Field(
        default=None, alias="maxTokens", ge=1, le=10**9, exclude_if=lambda value: value is None
    )
    """The most tokens (read and written) one call is charged for: what bounds a per-token price's worst
    case. A payer refuses an answer that reports more; an agent priced per token without it is not chosen."""
    verifiable: VerifiableProfile | None = Field(default=None, exclude_if=lambda value: value is None)
    """For a verifiable prompt capability, everything needed to re-run it; its receipts commit to it. Its
    `outputSchema` is the capability's, and its model the card's `model`."""

    @field_validator("verifiable")
    @classmethod
    def _profile_matches(
        cls, profile: VerifiableProfile | None, info: ValidationInfo
    ) -> VerifiableProfile | None:
        schema = info.data.get("output_schema")
        if profile is not None and schema is not None and profile.output_schema != schema:
            raise ValueError(
                "the profile's outputSchema differs from the capability's: publish the same schema"
            )
        return profile

    @field_validator("examples")
    @classmethod
    def _examples_match_schemas(
        cls, examples: list[CapabilityExample], info: ValidationInfo
    ) -> list[CapabilityExample]:
        schemas = {side: info.data.get(f"{side}_schema") for side in ("input", "output")}
        # One time bound for all the examples: a hostile schema cannot cost one bound per example.
        deadline = time.monotonic() + MAX_CHECK_SECONDS
        for index, example in enumerate(examples):
            for side, value in (("input", example.input), ("output", example.output)):
                schema = schemas[side]
                if schema is None:  # the schema itself was invalid, and that error is the one reported
                    continue
                error = first_mismatch(schema, value, seconds=max(deadline - time.monotonic(), 0.0))
                if error is not None:
                    raise ValueError(
                        f"example {index} {side} does not match the {side} schema: {error.message}"
                    )
        return examples

    def input_mismatch(self, value: object) -> tuple[str, str] | None:
        """Where `value` breaks this capability's input schema and how, or None when it fits: what the agent
        would refuse (HTTP 422), found before calling or paying it. The place is the dotted path of the field
        (`"input"` for the whole value); a required field that is absent is `(name, "missing")`.

        Example:
            >>> spec = CapabilitySpec(
            ...     name="translate", output_schema={},
            ...     input_schema={"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
            ... )
            >>> spec.input_mismatch({})
            ('text', 'missing')
            >>> spec.input_mismatch({"text": 3})
            ('text', "3 is not of type 'string'")
        """
        error = first_mismatch(self.input_schema, value)
        if error is None:
            return None
        path = ".".join(str(part) for part in error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            absent = [name for name in error.validator_value if name not in error.instance]
            if absent:
                return (f"{path}.{absent[0]}" if path else str(absent[0])), "missing"
        return path or "input", error.message


class Pricing(_Strict):
    """What one call costs, in the smallest unit of `asset` (`NATIVE_ASSET`: the chain's own coin).

    Example:
        >>> Pricing.model_validate_json('{"perCall": "1000", "per1kTokens": 3}').model_dump_json()
        '{"perCall":"1000","per1kTokens":"3","asset":"0x0000000000000000000000000000000000000000"}'
    """

    per_call: Amount = Field(default=0, alias="perCall")
    per_1k_tokens: Amount = Field(default=0, alias="per1kTokens")
    asset: Address = NATIVE_ASSET

    def price(self, prompt_tokens: int, completion_tokens: int) -> int:
        """`per_call` plus `per_1k_tokens` for every thousand tokens read and written, rounded up.

        Example:
            >>> Pricing(per_call=10, per_1k_tokens=1000).price(prompt_tokens=1, completion_tokens=0)
            11
        """
        if prompt_tokens < 0 or completion_tokens < 0:
            raise ValueError(f"token counts are never negative, got {prompt_tokens} and {completion_tokens}")
        tokens = prompt_tokens + completion_tokens
        return self.per_call + -(-self.per_1k_tokens * tokens // 1000)


class Service(_Strict):
    """A way to reach the agent (ERC-8004 `services`): `motet` for its `/invoke` server, `A2A`, `MCP`, `web`…"""

    name: Label
    endpoint: HttpUrl
    version: str | None = Field(
        default=None, min_length=1, max_length=32, exclude_if=lambda value: value is None
    )


class Registration(_Strict):
    """Where the agent is registered (ERC-8004 `registrations`): its id in the registry at a CAIP-10 address."""

    agent_id: int = Field(alias="agentId", ge=0, le=UINT256_MAX)
    agent_registry: str = Field(alias="agentRegistry", pattern=r"^eip155:[0-9]{1,20}:0x[0-9a-fA-F]{40}$")


class ModelInfo(_Strict):
    """The model that answers the agent's calls: `ModelRef`'s fields, in camelCase."""

    runtime: Label
    runtime_version: str = Field(alias="runtimeVersion", min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=256)
    sha256: str = Field(pattern=_SHA256)
    quantization: Label
    endpoint: Annotated[str, AfterValidator(_optional_http_url)] = ""

    @classmethod
    def of(cls, ref: ModelRef) -> ModelInfo:
        """The card's description of a runtime's `ModelRef`."""
        return cls(**dataclasses.asdict(ref))


class AgentCard(_Strict):
    """An agent's registration file: ERC-8004 `registration-v1` plus capabilities, pricing, model and signer.

    Construct it with the Python names (`x402_support=`); JSON uses ERC-8004's camelCase (`x402Support`).
    See the module docstring for a full example.
    """

    type: Literal["https://eips.ethereum.org/EIPS/eip-8004#registration-v1"] = REGISTRATION_TYPE
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(max_length=2000)
    image: Annotated[str, AfterValidator(_image_url)] | None = Field(
        default=None, exclude_if=lambda value: value is None
    )
    services: list[Service] = Field(min_length=1, max_length=8)
    x402_support: bool = Field(default=True, alias="x402Support")
    active: bool = True
    registrations: list[Registration] = Field(default_factory=list, max_length=8)
    supported_trust: list[Label] = Field(
        default_factory=lambda: ["reputation"], alias="supportedTrust", max_length=8
    )
    capabilities: list[CapabilitySpec] = Field(min_length=1, max_length=MAX_CAPABILITIES)
    pricing: Pricing
    model: ModelInfo | None = Field(default=None, exclude_if=lambda value: value is None)
    signer: Annotated[Address, AfterValidator(_non_zero)]

    @field_validator("capabilities")
    @classmethod
    def _unique_capabilities(cls, capabilities: list[CapabilitySpec]) -> list[CapabilitySpec]:
        seen: set[str] = set()
        for spec in capabilities:
            if spec.name in seen:
                raise ValueError(
                    f"capability {spec.name!r} is listed more than once; list each capability once"
                )
            seen.add(spec.name)
        return capabilities

    @model_validator(mode="after")
    def _verifiable_on_card_model(self) -> AgentCard:
        for index, spec in enumerate(self.capabilities):
            if spec.verifiable is None:
                continue
            if self.model is None or self.model_ref() != spec.verifiable.model_ref():
                raise ValueError(
                    f"capabilities.{index}.verifiable names another model than the card's model: a verifiable "
                    "capability runs on the model the card publishes"
                )
        return self

    @model_validator(mode="after")
    def _fits(self) -> AgentCard:
        size = len(self.to_json().encode())
        if size > MAX_CARD_BYTES:
            raise ValueError(f"the card is {size} bytes of JSON, at most {MAX_CARD_BYTES} are allowed")
        return self

    def to_json(self) -> str:
        """The card as compact JSON with ERC-8004's camelCase keys."""
        return self.model_dump_json(by_alias=True)

    def to_data_uri(self) -> str:
        """The card as a `data:application/json;base64,...` URI, to register on chain as the `agentURI`."""
        return "data:application/json;base64," + base64.b64encode(self.to_json().encode()).decode("ascii")

    @classmethod
    def from_json(cls, text: str | bytes) -> AgentCard:
        """Parse and check a card; any problem is an `InvalidAgentCard` naming the first bad field.

        Example:
            >>> AgentCard.from_json('{"name": "x",}')
            Traceback (most recent call last):
            ...
            motet.errors.InvalidAgentCard: invalid agent card: card: not valid JSON: trailing comma at line 1 column 14
        """
        body = text.encode() if isinstance(text, str) else text
        if len(body) > MAX_CARD_BYTES:
            raise InvalidAgentCard(
                "card", f"the body is {len(body)} bytes, at most {MAX_CARD_BYTES} are allowed"
            )
        try:
            return cls.model_validate_json(body, by_alias=True, by_name=False)
        except ValidationError as exc:
            raise _card_error(exc) from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentCard:
        """Check an already parsed card (camelCase keys); any problem is an `InvalidAgentCard`."""
        try:
            return cls.model_validate(dict(data), by_alias=True, by_name=False)
        except ValidationError as exc:
            raise _card_error(exc) from None

    @classmethod
    def from_uri(cls, uri: str) -> AgentCard:
        """Read a card from a `data:` URI, base64 (`data:application/json;base64,...`) or percent-encoded.

        Example:
            >>> AgentCard.from_uri("data:,%7B%7D")
            Traceback (most recent call last):
            ...
            motet.errors.InvalidAgentCard: invalid agent card: name: Field required
        """
        return _card_from_data_uri(uri)

    def capability(self, name: str) -> CapabilitySpec:
        """The capability called `name`; raises `UnknownCapability` listing the ones there are."""
        for spec in self.capabilities:
            if spec.name == name:
                return spec
        raise UnknownCapability(name, [spec.name for spec in self.capabilities])

    def endpoint(self, service_name: str = "motet") -> str:
        """The endpoint of the first service called `service_name`."""
        for service in self.services:
            if service.name == service_name:
                return service.endpoint
        names = [service.name for service in self.services]
        raise InvalidAgentCard("services", f"no service named {service_name!r}; the card lists {names}")

    def model_ref(self) -> ModelRef | None:
        """The model this card says answers its calls, as a runtime's `ModelRef`; `None` when it does not say."""
        if self.model is None:
            return None
        info = self.model
        return ModelRef(
            info.runtime, info.runtime_version, info.model, info.sha256, info.quantization, info.endpoint
        )


def _data_uri_body(uri: str) -> bytes:
    if not uri.startswith("data:") or "," not in uri:
        raise InvalidAgentCard("uri", f"{uri[:80]!r} is not a data: URI; fetch http(s) cards with fetch_card")
    header, payload = uri[5:].split(",", 1)
    media_type, *params = header.split(";")
    base64_encoded = bool(params) and params[-1].lower() == "base64"
    if media_type.strip().lower() not in ("", "application/json"):
        raise InvalidAgentCard("uri", f"the data: URI holds {media_type!r}; a card is application/json")
    # A byte takes 4/3 characters in base64 and 1 to 3 percent-encoded: a longer payload is too big.
    if len(payload) > (MAX_CARD_BYTES * 4 // 3 + 4 if base64_encoded else MAX_CARD_BYTES * 3):
        raise InvalidAgentCard("card", f"the data: URI holds more than {MAX_CARD_BYTES} bytes")
    if not base64_encoded:
        return urllib.parse.unquote_to_bytes(payload)
    try:
        return base64.b64decode(urllib.parse.unquote(payload), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidAgentCard("uri", f"the data: URI is not valid base64: {exc}") from None


def _card_error(exc: ValidationError) -> InvalidAgentCard:
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or "card"
    kind = first["type"]
    error = first.get("ctx", {}).get("error")
    if kind == "value_error" and error is not None:
        problem = str(error)
    elif kind == "extra_forbidden":
        problem = "unknown field; remove it"
    elif kind == "json_invalid":
        problem = "not valid JSON: " + first["msg"].removeprefix("Invalid JSON: ")
    else:
        problem = first["msg"]
    return InvalidAgentCard(field, problem)


@functools.lru_cache(maxsize=1024)
def _card_from_data_uri(uri: str) -> AgentCard:
    """A `data:` URI always holds the same card, and cards are immutable: parse each once."""
    return AgentCard.from_json(_data_uri_body(uri))
