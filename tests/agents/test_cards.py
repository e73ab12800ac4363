"""Agent cards: strict parsing with limits, ERC-8004 keys, data: URIs, fetching over real HTTP, A2A."""

from __future__ import annotations

import asyncio
import base64
import doctest
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest

from motet.agents import (
    AgentCard,
    CapabilitySpec,
    Pricing,
    Service,
    _a2a,
    _cards,
    _fetch,
    _schemas,
    a2a_card,
    fetch_card,
)
from motet.agents._a2a import A2A_EXTENSION_URI
from motet.agents._cards import MAX_CARD_BYTES, REGISTRATION_TYPE, ModelInfo
from motet.chain import NATIVE_ASSET, Chain
from motet.errors import AgentCallFailed, InvalidAgentCard, UnknownCapability
from motet.registry import MAX_CAPABILITIES, MAX_URI_BYTES, Registry, capability_hashes
from motet.runtimes import ModelRef

SIGNER = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
REGISTRY = "eip155:31337:0x5FbDB2315678afecb367f032d93F642f64180aa3"


def card_data(**overrides: Any) -> dict[str, Any]:
    """A realistic one-capability card as JSON data, with top-level keys replaced by `overrides`."""
    data: dict[str, Any] = {
        "type": REGISTRATION_TYPE,
        "name": "Summarizer",
        "description": "Summarizes English text into one paragraph, answering with JSON.",
        "image": "https://agents.example/summarizer.png",
        "services": [
            {"name": "motet", "endpoint": "https://agents.example/summarizer", "version": "1"},
            {"name": "A2A", "endpoint": "https://agents.example/summarizer/.well-known/agent-card.json"},
        ],
        "x402Support": True,
        "active": True,
        "registrations": [{"agentId": 1, "agentRegistry": REGISTRY}],
        "supportedTrust": ["reputation"],
        "capabilities": [capability_data()],
        "pricing": {"perCall": "1000000000000000", "per1kTokens": "20000000000000", "asset": NATIVE_ASSET},
        "model": {
            "runtime": "llama.cpp",
            "runtimeVersion": "0.3.36",
            "model": "SmolLM2-135M-Instruct",
            "sha256": "ab" * 32,
            "quantization": "Q4_1",
            "endpoint": "",
        },
        "signer": SIGNER,
    }
    data.update(overrides)
    return data


def capability_data(name: str = "text.summarize", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "description": "A one-paragraph summary of the text.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string", "maxLength": 20000}},
            "required": ["text"],
            "additionalProperties": False,
        },
        "outputSchema": {
            "type": "object",
            "properties": {"summary": {"type": "string"}},
            "required": ["summary"],
        },
        "examples": [{"input": {"text": "The cat sat on the mat."}, "output": {"summary": "A cat sat."}}],
    }
    data.update(overrides)
    return data


def card(**overrides: Any) -> AgentCard:
    return AgentCard.from_dict(card_data(**overrides))


def rejected(data: object) -> InvalidAgentCard:
    text = data if isinstance(data, str | bytes) else json.dumps(data)
    with pytest.raises(InvalidAgentCard) as caught:
        AgentCard.from_json(text)
    return caught.value


@pytest.mark.parametrize("module", [_cards, _a2a, _fetch, _schemas], ids=lambda module: module.__name__)
def test_docstring_examples_run(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


def test_json_round_trip() -> None:
    original = card()
    text = original.to_json()
    assert AgentCard.from_json(text) == original
    assert AgentCard.from_json(text.encode()) == original
    assert AgentCard.from_json(text).to_json() == text
    assert json.loads(text) == card_data()  # nothing added, dropped or renamed
    assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)  # compact


def test_data_uri_round_trip_base64_and_percent_encoded() -> None:
    original = card()
    uri = original.to_data_uri()
    assert uri.startswith("data:application/json;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]).decode() == original.to_json()
    assert AgentCard.from_uri(uri) == original
    percent = "data:application/json," + urllib.parse.quote(original.to_json())
    assert AgentCard.from_uri(percent) == original
    assert AgentCard.from_uri("data:," + urllib.parse.quote(original.to_json())) == original


def test_json_keys_are_erc8004_camel_case() -> None:
    data = json.loads(card().to_json())
    assert list(data) == [
        "type", "name", "description", "image", "services", "x402Support", "active", "registrations",
        "supportedTrust", "capabilities", "pricing", "model", "signer",
    ]  # fmt: skip
    assert data["type"] == "https://eips.ethereum.org/EIPS/eip-8004#registration-v1"
    assert list(data["capabilities"][0]) == ["name", "description", "inputSchema", "outputSchema", "examples"]
    assert data["registrations"] == [{"agentId": 1, "agentRegistry": REGISTRY}]
    assert list(data["pricing"]) == ["perCall", "per1kTokens", "asset"]
    assert list(data["model"]) == ["runtime", "runtimeVersion", "model", "sha256", "quantization", "endpoint"]


def test_python_construction_uses_snake_case_and_defaults() -> None:
    built = AgentCard(
        name="Summarizer",
        description="",
        services=[Service(name="motet", endpoint="http://127.0.0.1:8000")],
        capabilities=[CapabilitySpec(name="text.summarize", input_schema={}, output_schema={})],
        pricing=Pricing(per_call=5),
        signer=SIGNER.lower(),
    )
    data = json.loads(built.to_json())
    assert data["x402Support"] is True and data["active"] is True
    assert data["supportedTrust"] == ["reputation"] and data["registrations"] == []
    assert "image" not in data and "model" not in data and "version" not in data["services"][0]
    assert data["signer"] == SIGNER  # checksummed
    assert data["pricing"] == {"perCall": "5", "per1kTokens": "0", "asset": NATIVE_ASSET}
    assert AgentCard.from_json(built.to_json()) == built


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (card_data(colour="red"), "colour"),
        (card_data(x402_support=True), "x402_support"),  # JSON takes the ERC-8004 key only
        (
            card_data(services=[{"name": "motet", "endpoint": "https://a.example", "url": "x"}]),
            "services.0.url",
        ),
        (card_data(capabilities=[capability_data(input_schema={})]), "capabilities.0.input_schema"),
        (card_data(pricing={"perCall": "1", "currency": "ETH"}), "pricing.currency"),
    ],
)
def test_unknown_fields_are_rejected_by_name(data: dict[str, Any], field: str) -> None:
    error = rejected(data)
    assert error.field == field
    assert "unknown field" in error.problem


def test_oversized_body_is_rejected_before_parsing() -> None:
    body = b"{" + b" " * MAX_CARD_BYTES + b"not even json"
    error = rejected(body)
    assert error.field == "card"
    assert f"at most {MAX_CARD_BYTES}" in error.problem
    assert "JSON" not in error.problem
    valid_but_big = card_data(description="x" * 2000, capabilities=[capability_data(description="y" * 500)])
    valid_but_big["padding"] = " " * MAX_CARD_BYTES  # would also be an unknown field, but is never parsed
    assert rejected(valid_but_big).field == "card"


def test_built_card_over_the_limit_is_rejected() -> None:
    big_schema = {"enum": ["v" * 60 + str(i) for i in range(240)]}  # ~15 KiB, under the schema limit
    specs = [
        capability_data(f"cap{i}", inputSchema=big_schema, outputSchema=big_schema, examples=[])
        for i in range(3)
    ]
    with pytest.raises(InvalidAgentCard) as caught:
        AgentCard.from_dict(card_data(capabilities=specs))  # parsed already: the built card is measured
    assert caught.value.field == "card"
    assert "bytes of JSON, at most 65536" in caught.value.problem


def test_invalid_json_is_rejected() -> None:
    error = rejected('{"name": ')
    assert error.field == "card"
    assert error.problem.startswith("not valid JSON")
    assert rejected("[]").field == "card"


def with_capabilities(*specs: dict[str, Any]) -> dict[str, Any]:
    return card_data(capabilities=list(specs))


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        pytest.param(
            with_capabilities(capability_data(inputSchema={"enum": ["x" * 1000] * 17})),
            "capabilities.0.inputSchema", "at most 16384", id="oversized-schema",
        ),
        pytest.param(
            with_capabilities(capability_data(outputSchema={"type": "strng"})),
            "capabilities.0.outputSchema", "not a valid JSON Schema at type", id="invalid-schema",
        ),
        pytest.param(
            with_capabilities(capability_data(inputSchema={"$schema": "https://example.com/mine"})),
            "capabilities.0.inputSchema", "unknown $schema", id="unknown-dialect",
        ),
        pytest.param(
            with_capabilities(capability_data("Summarize!")),
            "capabilities.0.name", "lower-case dot-separated words", id="bad-capability-name",
        ),
        pytest.param(
            with_capabilities(capability_data(), capability_data()),
            "capabilities", "'text.summarize' is listed more than once", id="duplicate-capabilities",
        ),
        pytest.param(
            with_capabilities(*(capability_data(f"cap{i}") for i in range(MAX_CAPABILITIES + 1))),
            "capabilities", f"at most {MAX_CAPABILITIES}", id="more-than-the-registry-indexes",
        ),
        pytest.param(
            with_capabilities(*(capability_data(f"cap{i}") for i in range(33))),
            "capabilities", f"at most {MAX_CAPABILITIES}", id="33-capabilities",
        ),
        pytest.param(with_capabilities(), "capabilities", "at least 1", id="no-capabilities"),
        pytest.param(
            with_capabilities(capability_data(examples=[{"input": {"text": 3}, "output": {"summary": ""}}])),
            "capabilities.0.examples", "example 0 input does not match", id="example-off-schema",
        ),
        pytest.param(
            with_capabilities(capability_data(examples=[{"input": {"text": ""}, "output": {"summary": ""}}] * 6)),
            "capabilities.0.examples", "at most 5", id="six-examples",
        ),
        pytest.param(
            with_capabilities(capability_data(description="d" * 501)),
            "capabilities.0.description", "at most 500", id="long-capability-description",
        ),
        pytest.param(card_data(signer="0x1234"), "signer", "not an address", id="short-address"),
        pytest.param(
            card_data(signer=SIGNER.replace("E", "e", 1)), "signer", "wrong EIP-55 checksum", id="bad-checksum",
        ),
        pytest.param(card_data(signer="7e5f4552091a69125d5dfcb7b8c2659029395bdf"), "signer", "0x", id="no-0x"),
        pytest.param(card_data(signer=NATIVE_ASSET), "signer", "zero address", id="zero-signer"),
        pytest.param(
            card_data(pricing={"asset": "0xnothex"}), "pricing.asset", "not an address", id="bad-asset",
        ),
        pytest.param(
            card_data(registrations=[{"agentId": 1, "agentRegistry": "eip155:1:0x1234"}]),
            "registrations.0.agentRegistry", "should match pattern", id="bad-agent-registry",
        ),
        pytest.param(
            card_data(registrations=[{"agentId": -1, "agentRegistry": REGISTRY}]),
            "registrations.0.agentId", "greater than or equal to 0", id="negative-agent-id",
        ),
        pytest.param(
            card_data(services=[{"name": "motet", "endpoint": "ftp://agents.example/x"}]),
            "services.0.endpoint", "not an absolute http:// or https:// URL", id="ftp-endpoint",
        ),
        pytest.param(
            card_data(services=[{"name": "motet", "endpoint": "javascript:alert(1)"}]),
            "services.0.endpoint", "not an absolute", id="javascript-endpoint",
        ),
        pytest.param(
            card_data(services=[{"name": "motet", "endpoint": "https://a.example/ x"}]),
            "services.0.endpoint", "whitespace", id="space-in-endpoint",
        ),
        pytest.param(card_data(services=[]), "services", "at least 1", id="no-services"),
        pytest.param(card_data(image="file:///etc/passwd"), "image", "not an absolute", id="file-image"),
        pytest.param(card_data(name=""), "name", "at least 1", id="empty-name"),
        pytest.param(card_data(name="n" * 65), "name", "at most 64", id="long-name"),
        pytest.param(card_data(description="d" * 2001), "description", "at most 2000", id="long-description"),
        pytest.param(card_data(type="https://example.com/card"), "type", "Input should be", id="wrong-type"),
        pytest.param(card_data(x402Support="yes"), "x402Support", "valid boolean", id="string-bool"),
        pytest.param(card_data(pricing={"perCall": "-1"}), "pricing.perCall", "decimal integer", id="negative"),
        pytest.param(card_data(pricing={"perCall": -1}), "pricing.perCall", "greater than or equal", id="neg-int"),
        pytest.param(card_data(pricing={"perCall": 1.5}), "pricing.perCall", "valid integer", id="float-price"),
        pytest.param(card_data(pricing={"perCall": "1e18"}), "pricing.perCall", "decimal integer", id="exp-price"),
        pytest.param(
            card_data(pricing={"perCall": str(2**256)}), "pricing.perCall", "less than or equal", id="over-uint256",
        ),
        pytest.param(
            card_data(model={**card_data()["model"], "sha256": "xyz" + "ab" * 32}),
            "model.sha256", "should match pattern", id="bad-sha256",
        ),
        pytest.param(
            card_data(model={k: v for k, v in card_data()["model"].items() if k != "runtimeVersion"}),
            "model.runtimeVersion", "Field required", id="model-missing-field",
        ),
    ],
)  # fmt: skip
def test_card_problems_name_the_field(data: dict[str, Any], field: str, problem: str) -> None:
    error = rejected(data)
    assert (error.field, problem in error.problem) == (field, True), error.problem
    assert str(error).startswith(f"invalid agent card: {field}: ")


def test_from_dict_rejects_like_from_json() -> None:
    with pytest.raises(InvalidAgentCard) as caught:
        AgentCard.from_dict(card_data(signer="0x1234"))
    assert caught.value.field == "signer"


@pytest.mark.parametrize(
    ("uri", "field"),
    [
        ("https://agents.example/card.json", "uri"),
        ("data:text/html,<b>hi</b>", "uri"),
        ("data:application/json;base64,not*base64", "uri"),
        ("data:application/json;base64," + "A" * (MAX_CARD_BYTES * 2), "card"),
        ("data:,%7B%22name%22%3A", "card"),
    ],
)
def test_bad_data_uris_are_rejected(uri: str, field: str) -> None:
    with pytest.raises(InvalidAgentCard) as caught:
        AgentCard.from_uri(uri)
    assert caught.value.field == field


def test_realistic_data_uri_fits_the_registry_limit() -> None:
    uri = card().to_data_uri()
    print(f"one-capability card: {len(card().to_json())} bytes of JSON, {len(uri)} bytes as a data: URI")
    assert len(uri.encode()) < MAX_URI_BYTES == 8192


def test_registered_data_uri_reads_back_from_the_chain(chain: Chain) -> None:
    original = card()
    registry = Registry(chain)
    names = [spec.name for spec in original.capabilities]
    agent_id = registry.register(original.to_data_uri(), names, price=original.pricing.per_call)
    record = registry.get(agent_id)
    assert AgentCard.from_uri(record.agent_uri) == original
    assert list(record.capability_hashes) == capability_hashes(names)


@pytest.mark.parametrize(
    ("per_call", "per_1k", "prompt", "completion", "expected"),
    [
        (10, 0, 500, 500, 10),
        (10, 1000, 0, 0, 10),
        (10, 1000, 1, 0, 11),  # 1 token at 1 per token
        (0, 3, 600, 400, 3),  # exactly 1000 tokens
        (0, 3, 600, 401, 4),  # 3.003 rounds up
        (0, 1, 1, 0, 1),  # a thousandth of a unit still costs one
        (7, 10**30, 1, 0, 7 + 10**27),  # exact: no float anywhere
    ],
)
def test_price_rounds_up(per_call: int, per_1k: int, prompt: int, completion: int, expected: int) -> None:
    pricing = Pricing(per_call=per_call, per_1k_tokens=per_1k)
    assert pricing.price(prompt_tokens=prompt, completion_tokens=completion) == expected


def test_pricing_amounts_are_decimal_strings_in_json() -> None:
    big = 2**200 + 1
    pricing = Pricing.model_validate_json(json.dumps({"perCall": str(big), "per1kTokens": 5}))
    assert (pricing.per_call, pricing.per_1k_tokens) == (big, 5)
    assert json.loads(pricing.model_dump_json()) == {
        "perCall": str(big),
        "per1kTokens": "5",
        "asset": NATIVE_ASSET,
    }
    with pytest.raises(ValueError, match="never negative"):
        pricing.price(prompt_tokens=-1, completion_tokens=0)


def test_capability_endpoint_and_model_ref() -> None:
    loaded = card()
    assert loaded.capability("text.summarize").input_schema["required"] == ["text"]
    with pytest.raises(UnknownCapability) as caught:
        loaded.capability("translate")
    assert caught.value.available == ["text.summarize"]
    assert loaded.endpoint() == "https://agents.example/summarizer"
    assert loaded.endpoint("A2A").endswith("/agent-card.json")
    with pytest.raises(InvalidAgentCard, match="no service named 'MCP'"):
        loaded.endpoint("MCP")
    ref = ModelRef("llama.cpp", "0.3.36", "SmolLM2-135M-Instruct", "ab" * 32, "Q4_1")
    assert loaded.model_ref() == ref
    assert ModelInfo.of(ref) == loaded.model
    assert card(model=None).model_ref() is None


def test_a2a_card_has_one_skill_per_capability() -> None:
    example = {"input": {"text": "Bonjour"}, "output": {"text": "Hello"}}
    translate = capability_data("text.translate", examples=[example])
    translate["outputSchema"] = {"type": "object"}
    loaded = card(capabilities=[capability_data(), translate])
    a2a = a2a_card(loaded, "https://agents.example/summarizer")
    assert a2a["protocolVersion"] == "0.3.0"
    assert a2a["url"] == "https://agents.example/summarizer"
    assert a2a["preferredTransport"] == "HTTP+JSON"
    assert a2a["iconUrl"] == loaded.image
    assert [skill["id"] for skill in a2a["skills"]] == ["text.summarize", "text.translate"]
    skill = a2a["skills"][1]
    assert skill["tags"] == ["text", "translate"]
    assert [json.loads(text) for text in skill["examples"]] == [{"text": "Bonjour"}]
    assert skill["inputModes"] == skill["outputModes"] == ["application/json"]
    (extension,) = a2a["capabilities"]["extensions"]
    assert extension["uri"] == A2A_EXTENSION_URI
    assert extension["params"]["capabilities"]["text.translate"]["outputSchema"] == {"type": "object"}
    assert extension["params"]["pricing"]["perCall"] == "1000000000000000"
    json.dumps(a2a)  # all of it is JSON


# --- fetch_card over real HTTP on 127.0.0.1 -------------------------------------------------------------


@dataclass
class CardServer:
    base_url: str
    endless_bytes_sent: int = 0
    endless_closed: asyncio.Event = field(default_factory=asyncio.Event)


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture
async def card_server() -> AsyncIterator[CardServer]:
    body = card().to_json().encode()
    server_state = CardServer("")

    async def endless(writer: asyncio.StreamWriter) -> None:
        writer.write(_head("200 OK", {"Content-Type": "application/json"}))
        try:
            for _ in range(100_000):  # 6 GiB: a bound on a broken client, never reached
                writer.write(b" " * 65536)
                await writer.drain()
                server_state.endless_bytes_sent += 65536
        except ConnectionError:
            pass
        finally:
            server_state.endless_closed.set()

    async def trickle(writer: asyncio.StreamWriter) -> None:
        writer.write(_head("200 OK", {"Content-Type": "application/json"}) + b"{")
        for _ in range(600):  # 30 s, far past the client's timeout
            await asyncio.sleep(0.05)
            writer.write(b" ")
            await writer.drain()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        path = request.split(b" ")[1].decode()
        try:
            if path == "/card.json":
                writer.write(_head("200 OK", {"Content-Length": str(len(body))}) + body)
            elif path == "/redirect":
                writer.write(_head("302 Found", {"Location": "/card.json", "Content-Length": "0"}))
            elif path == "/not-json":
                writer.write(_head("200 OK", {"Content-Length": "5"}) + b"hello")
            elif path == "/declared-huge":
                writer.write(_head("200 OK", {"Content-Length": str(10**9)}) + b"{")
            elif path == "/endless":
                await endless(writer)
            elif path == "/trickle":
                await trickle(writer)
            else:
                writer.write(_head("404 Not Found", {"Content-Length": "9"}) + b"not found")
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server_state.base_url = f"http://127.0.0.1:{port}"
    async with server:
        yield server_state


async def test_fetch_card_over_http(card_server: CardServer) -> None:
    fetched = await fetch_card(f"{card_server.base_url}/card.json", allow_private=True)
    assert fetched == card()
    assert await fetch_card(f"{card_server.base_url}/redirect", allow_private=True) == fetched


async def test_fetch_card_reads_data_uris() -> None:
    assert await fetch_card(card().to_data_uri()) == card()


async def test_fetch_card_stops_an_endless_body_at_max_bytes(card_server: CardServer) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidAgentCard) as caught:
        await fetch_card(f"{card_server.base_url}/endless", max_bytes=100_000, allow_private=True)
    assert caught.value.field == "card"
    assert "larger than 100000 bytes" in caught.value.problem
    assert time.monotonic() - started < 2
    await asyncio.wait_for(card_server.endless_closed.wait(), 5)  # the client hung up
    # What the server managed to send before noticing: the limit plus socket buffers, not the 6 GiB.
    assert card_server.endless_bytes_sent < 64 * 2**20


async def test_fetch_card_trusts_no_declared_length_over_the_limit(card_server: CardServer) -> None:
    with pytest.raises(InvalidAgentCard, match="larger than"):
        await fetch_card(f"{card_server.base_url}/declared-huge", allow_private=True)


async def test_fetch_card_gives_up_on_a_trickle(card_server: CardServer) -> None:
    started = time.monotonic()
    with pytest.raises(AgentCallFailed, match=r"did not arrive within 0\.5 s"):
        await fetch_card(f"{card_server.base_url}/trickle", timeout=0.5, allow_private=True)
    assert time.monotonic() - started < 2


async def test_fetch_card_http_error_and_bad_bodies(card_server: CardServer) -> None:
    with pytest.raises(AgentCallFailed) as caught:
        await fetch_card(f"{card_server.base_url}/missing", allow_private=True)
    assert caught.value.status == 404
    assert "HTTP 404" in str(caught.value)
    with pytest.raises(InvalidAgentCard) as invalid:
        await fetch_card(f"{card_server.base_url}/not-json", allow_private=True)
    assert invalid.value.problem.startswith("not valid JSON")


async def test_fetch_card_unreachable_and_unsupported() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # the port is now closed: connecting is refused
    with pytest.raises(AgentCallFailed, match="could not fetch the card") as caught:
        await fetch_card(f"http://127.0.0.1:{port}/card.json", allow_private=True)
    assert caught.value.status is None
    with pytest.raises(InvalidAgentCard) as unsupported:
        await fetch_card("ipfs://bafy/card.json")
    assert unsupported.value.field == "uri"
