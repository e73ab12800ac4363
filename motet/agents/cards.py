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

import asyncio
import base64
import binascii
import functools
import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import httpx
import jsonschema.exceptions
import jsonschema.validators
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

from motet.chain import NATIVE_TOKEN
from motet.errors import AgentCallFailed, InvalidAgentCard, UnknownCapability
from motet.registry import MAX_CAPABILITIES, validate_capability_name
from motet.runtimes._protocol import ModelRef

__all__ = [
    "A2A_EXTENSION_URI",
    "MAX_CARD_BYTES",
    "MAX_SCHEMA_BYTES",
    "REGISTRATION_TYPE",
    "AgentCard",
    "CapabilityExample",
    "CapabilitySpec",
    "ModelInfo",
    "Pricing",
    "Registration",
    "Service",
    "a2a_card",
    "fetch_card",
]

REGISTRATION_TYPE: Final = "https://eips.ethereum.org/EIPS/eip-8004#registration-v1"
"""The `type` of every ERC-8004 registration file."""

MAX_CARD_BYTES: Final = 64 * 1024
"""Largest card, in bytes of JSON; larger bodies are refused before they are parsed."""

MAX_SCHEMA_BYTES: Final = 16 * 1024
"""Largest input or output schema of one capability, in bytes of compact JSON."""

A2A_EXTENSION_URI: Final = "urn:motet:a2a:capabilities:v1"
"""The A2A extension under which `a2a_card` publishes capability schemas, pricing and the receipt signer."""

_MAX_URL = 2048
_UINT256_MAX = 2**256 - 1
_DECIMAL = re.compile(r"[0-9]{1,78}")
# identity: a compressed body could expand far past max_bytes from a single chunk.
_HEADERS = {"Accept": "application/json", "Accept-Encoding": "identity"}
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


def _json_schema(schema: dict[str, JsonValue]) -> dict[str, JsonValue]:
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


@functools.lru_cache(maxsize=1024)
def _schema_problem(text: str) -> str | None:
    """Why the schema (as sorted compact JSON) is not a valid JSON Schema, or None. Cached: a registry's
    cards repeat the same few schemas, and checking one takes milliseconds."""
    schema = json.loads(text)
    try:
        validator = _validator_class(schema)
    except ValueError as exc:
        return str(exc)
    try:
        validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        where = "/".join(str(part) for part in exc.path) or "the top level"
        return f"not a valid JSON Schema at {where}: {exc.message}"
    return None


def _validator_class(schema: Mapping[str, Any]) -> Any:
    dialect = schema.get("$schema")
    if dialect is None:
        return jsonschema.validators.Draft202012Validator
    validator = (
        jsonschema.validators.validator_for(schema, default=None) if isinstance(dialect, str) else None
    )
    if validator is None:
        raise ValueError(f"unknown $schema {dialect!r}: use a JSON Schema draft URI, or leave $schema out")
    return validator


Address = Annotated[str, AfterValidator(_address)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Amount = Annotated[
    int,
    BeforeValidator(_amount),
    Field(ge=0, le=_UINT256_MAX),
    PlainSerializer(str, return_type=str, when_used="json"),
]
JsonSchema = Annotated[dict[str, JsonValue], AfterValidator(_json_schema)]
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

    @field_validator("examples")
    @classmethod
    def _examples_match_schemas(
        cls, examples: list[CapabilityExample], info: ValidationInfo
    ) -> list[CapabilityExample]:
        schemas = {side: info.data.get(f"{side}_schema") for side in ("input", "output")}
        for index, example in enumerate(examples):
            for side, value in (("input", example.input), ("output", example.output)):
                schema = schemas[side]
                if schema is None:  # the schema itself was invalid, and that error is the one reported
                    continue
                error = jsonschema.exceptions.best_match(_validator_class(schema)(schema).iter_errors(value))
                if error is not None:
                    raise ValueError(
                        f"example {index} {side} does not match the {side} schema: {error.message}"
                    )
        return examples


class Pricing(_Strict):
    """What one call costs, in the smallest unit of `asset` (`NATIVE_TOKEN`: the chain's own coin).

    Example:
        >>> Pricing.model_validate_json('{"perCall": "1000", "per1kTokens": 3}').model_dump_json()
        '{"perCall":"1000","per1kTokens":"3","asset":"0x0000000000000000000000000000000000000000"}'
    """

    per_call: Amount = Field(default=0, alias="perCall")
    per_1k_tokens: Amount = Field(default=0, alias="per1kTokens")
    asset: Address = NATIVE_TOKEN

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

    agent_id: int = Field(alias="agentId", ge=0, le=_UINT256_MAX)
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
        return cls(
            runtime=ref.runtime,
            runtime_version=ref.runtime_version,
            model=ref.model,
            sha256=ref.sha256,
            quantization=ref.quantization,
            endpoint=ref.endpoint,
        )


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


async def fetch_card(uri: str, *, timeout: float = 10.0, max_bytes: int = MAX_CARD_BYTES) -> AgentCard:
    """Read a card from a `data:` URI or an http(s) URL.

    The body is streamed and dropped past `max_bytes` (`InvalidAgentCard`); the whole fetch, redirects
    included, must finish within `timeout` seconds. A network failure or an HTTP error status is
    `AgentCallFailed`.

    Example:
        >>> import asyncio
        >>> asyncio.run(fetch_card("data:,%7B%22name%22%3A%201%7D"))
        Traceback (most recent call last):
        ...
        motet.errors.InvalidAgentCard: invalid agent card: name: Input should be a valid string
    """
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme == "data":
        return AgentCard.from_uri(uri)
    if scheme not in ("http", "https"):
        raise InvalidAgentCard("uri", f"{uri[:80]!r} is not a data:, http:// or https:// URI")
    try:
        async with asyncio.timeout(timeout):
            body = await _download(uri, timeout, max_bytes)
    except TimeoutError:
        raise AgentCallFailed(uri, f"the card did not arrive within {timeout:g} s") from None
    except httpx.InvalidURL as exc:
        raise InvalidAgentCard("uri", f"{uri[:80]!r} is not a valid URL: {exc}") from None
    except httpx.HTTPError as exc:
        raise AgentCallFailed(uri, f"could not fetch the card: {str(exc) or type(exc).__name__}") from None
    return AgentCard.from_json(body)


async def _download(uri: str, timeout: float, max_bytes: int) -> bytes:
    too_big = f"the card is larger than {max_bytes} bytes; refusing to read more"
    async with (
        httpx.AsyncClient(timeout=timeout, follow_redirects=True, max_redirects=3) as client,
        client.stream("GET", uri, headers=_HEADERS) as response,
    ):
        if response.status_code != 200:
            raise AgentCallFailed(
                uri, f"HTTP {response.status_code} instead of the card", response.status_code
            )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise InvalidAgentCard("card", too_big)
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise InvalidAgentCard("card", too_big)
        return bytes(body)


def a2a_card(card: AgentCard, url: str, *, version: str = "1.0.0", streaming: bool = True) -> dict[str, Any]:
    """The agent as an A2A `AgentCard` (protocol 0.3.0), for `/.well-known/agent-card.json`.

    `url` is the agent server's base URL. The transport is motet's plain JSON over HTTP (`POST /invoke`),
    declared as `HTTP+JSON`; it is not A2A's JSON-RPC. Each capability is one skill, whose `examples` are its
    example inputs as JSON text. The schemas, pricing and receipt signer, which A2A has no fields for, travel
    in the `capabilities.extensions` entry with the URI `A2A_EXTENSION_URI`.

    Example:
        >>> card = AgentCard(
        ...     name="Summarizer",
        ...     description="Summarizes English text.",
        ...     services=[Service(name="motet", endpoint="https://agent.example/")],
        ...     capabilities=[CapabilitySpec(name="text.summarize", input_schema={}, output_schema={})],
        ...     pricing=Pricing(per_call=100),
        ...     signer="0x" + "11" * 20,
        ... )
        >>> [skill["id"] for skill in a2a_card(card, "https://agent.example")["skills"]]
        ['text.summarize']
    """
    modes = ["application/json"]
    result: dict[str, Any] = {
        "protocolVersion": "0.3.0",
        "name": card.name,
        "description": card.description,
        "url": url,
        "preferredTransport": "HTTP+JSON",
        "version": version,
        "capabilities": {
            "streaming": streaming,
            "pushNotifications": False,
            "extensions": [
                {
                    "uri": A2A_EXTENSION_URI,
                    "description": "motet capability schemas, per-call pricing and the receipt signer",
                    "required": False,
                    "params": {
                        "capabilities": {
                            spec.name: {"inputSchema": spec.input_schema, "outputSchema": spec.output_schema}
                            for spec in card.capabilities
                        },
                        "pricing": card.pricing.model_dump(mode="json"),
                        "signer": card.signer,
                    },
                }
            ],
        },
        "defaultInputModes": modes,
        "defaultOutputModes": modes,
        "skills": [
            {
                "id": spec.name,
                "name": spec.name,
                "description": spec.description or spec.name,
                "tags": spec.name.split("."),
                "examples": [json.dumps(example.input, separators=(",", ":")) for example in spec.examples],
                "inputModes": modes,
                "outputModes": modes,
            }
            for spec in card.capabilities
        ],
    }
    if card.image is not None:
        result["iconUrl"] = card.image
    return result


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
