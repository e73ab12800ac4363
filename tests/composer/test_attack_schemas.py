"""Hostile card schemas: each is refused (or its checks bounded) in well under a second, the agent behind
it is skipped with its problem named, and the rest of the market keeps working."""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import pytest
from pydantic import BaseModel, JsonValue
from support.card_host import card_host

from motet.agents import AgentCard, CapabilitySpec, Service
from motet.agents._cards import Pricing
from motet.agents._schemas import MAX_CHECK_SECONDS, check_json_schema, first_mismatch
from motet.chain import Chain
from motet.composer import Payer, Workflow, registry_offers
from motet.composer._schemas import describe, fields_of, resolved
from motet.composer._types import compatible
from motet.errors import GraphError, InvalidAgentCard
from motet.registry import Registry

STAKE = 10**17
QUICK = 1.0
"""What "well under a second" is held to here, on a loaded test machine."""

CATASTROPHIC = "^(a|aa)+\\1$"  # a backreference: exponential in a backtracking engine, not a regular language
EVIL_BUT_REGULAR = "^(a+)+$"  # exponential in Python's re, linear in RE2


class Text(BaseModel):
    text: str


def _nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


def _exponential() -> dict[str, Any]:
    """A schema whose branches recur into each other: a backtracking check takes 2**depth steps."""
    branch = {"type": "array", "items": {"$ref": "#"}}
    return {"anyOf": [branch, dict(branch), {"type": "string"}]}


HOSTILE: dict[str, dict[str, Any]] = {
    "catastrophic regex": {
        "type": "object",
        "properties": {"text": {"type": "string", "pattern": CATASTROPHIC}},
    },
    "self reference": {"$ref": "#"},
    "self reference through allOf": {"allOf": [{"$ref": "#/$defs/a"}], "$defs": {"a": {"$ref": "#"}}},
    "deep nesting": _nested(40),
    "huge enum": {"enum": list(range(1_000))},
    "huge schema": {"type": "object", "properties": {f"f{i}": {"type": "string"} for i in range(2_000)}},
    "remote reference": {"$ref": "https://evil.example/schema.json"},
}


def _card_uri(name: str, signer: str, input_schema: dict[str, Any]) -> str:
    """A card's data: URI, written by hand so that its schema is not checked on the way out."""
    honest = AgentCard(
        name=name,
        description="",
        services=[Service(name="motet", endpoint="https://agent.example/invoke")],
        capabilities=[CapabilitySpec(name="summarize", input_schema={}, output_schema={})],
        pricing=Pricing(per_call=1),
        signer=signer,
    )
    data = json.loads(honest.to_json())
    data["capabilities"][0]["inputSchema"] = input_schema
    data["capabilities"][0]["outputSchema"] = {
        "type": "object",
        "properties": {"summary": {"type": "string"}},
    }
    return "data:application/json;base64," + base64.b64encode(json.dumps(data).encode()).decode()


def _honest_uri(signer: str) -> str:
    return _card_uri("honest", signer, Text.model_json_schema())


@pytest.mark.parametrize("attack", list(HOSTILE))
def test_hostile_schema_is_refused_quickly_naming_the_problem(attack: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r".+") as refused:
        check_json_schema(HOSTILE[attack])
    assert time.perf_counter() - started < QUICK
    assert not isinstance(refused.value, RecursionError)
    # Through a card, the same problem is an InvalidAgentCard naming the field.
    signer = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    with pytest.raises(InvalidAgentCard) as bad:
        AgentCard.from_uri(_card_uri("hostile", signer, HOSTILE[attack]))
    assert bad.value.field.startswith("capabilities.0.inputSchema")
    assert time.perf_counter() - started < QUICK


def test_self_referencing_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="refers to itself without descending into the value"):
        check_json_schema({"$ref": "#"})
    # A recursive model that descends into the value (a tree) is fine, and so is checking a value on it.
    tree: dict[str, JsonValue] = {
        "type": "object",
        "properties": {"children": {"type": "array", "items": {"$ref": "#"}}},
    }
    assert check_json_schema(tree) == tree
    assert first_mismatch(tree, {"children": [{"children": []}]}) is None
    # The composer's schema readers, given the raw schema (a user's workflow file), stay bounded.
    assert resolved({"$ref": "#"}) == {}
    assert compatible({"$ref": "#"}, {"$ref": "#"}) is None
    assert fields_of({"properties": {"a": {"$ref": "#"}}})["a"] == {
        "properties": {"a": {}}
    }  # cut where it recurs


def test_catastrophic_regex_is_run_in_linear_time() -> None:
    schema: dict[str, JsonValue] = {"type": "string", "pattern": EVIL_BUT_REGULAR}
    assert check_json_schema(schema) == schema  # RE2 runs it: it is a regular language
    started = time.perf_counter()
    mismatch = first_mismatch(schema, "a" * 50_000 + "!")
    assert time.perf_counter() - started < 0.1
    assert mismatch is not None and "does not match" in mismatch.message


def test_a_value_whose_check_explodes_is_refused_within_the_bound() -> None:
    schema = _exponential()
    assert check_json_schema(schema) == schema  # each branch descends into the value: not a loop
    value: list[Any] = [1]
    for _ in range(40):
        value = [value]
    started = time.perf_counter()
    mismatch = first_mismatch(schema, value)
    elapsed = time.perf_counter() - started
    assert mismatch is not None and "takes longer than" in mismatch.message
    assert elapsed < MAX_CHECK_SECONDS + 0.5
    deep: list[Any] = []
    for _ in range(10_000):
        deep = [deep]
    mismatch = first_mismatch({"type": "array", "items": {"$ref": "#"}}, deep)
    assert mismatch is not None and "nested more than" in mismatch.message


def test_exponential_references_stay_bounded_in_the_composer() -> None:
    defs = {
        f"d{i}": {
            "anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}],
            "properties": {"x": {"$ref": f"#/$defs/d{i + 1}"}},
        }
        for i in range(2_000)
    }
    schema = {"$defs": defs, "$ref": "#/$defs/d0"}
    started = time.perf_counter()
    describe(resolved(schema))
    compatible(schema, {"type": "object", "properties": {"x": {"type": "string"}}})
    fields_of(schema)
    assert time.perf_counter() - started < QUICK


async def test_catastrophic_regex_card_is_skipped_quickly(
    chain: Chain, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(chain)
    hostile_ids = {}
    async with card_host() as host:
        for index, (attack, schema) in enumerate(HOSTILE.items(), start=1):
            account = chain.accounts[index]
            uri = _card_uri(f"hostile-{index}", account.address, schema)
            host.pages[f"/{index}.json"] = base64.b64decode(uri.partition(",")[2])
            hostile_ids[attack] = registry.register(
                host.url(f"/{index}.json"), ["summarize"], 0, owner=account, stake=STAKE
            )
        honest_account = chain.accounts[9]
        honest = registry.register(
            _honest_uri(honest_account.address), ["summarize"], 5, owner=honest_account, stake=STAKE
        )
        await _market_skips_them(chain, registry, honest, hostile_ids, caplog)


async def _market_skips_them(
    chain: Chain,
    registry: Registry,
    honest: int,
    hostile_ids: dict[str, int],
    caplog: pytest.LogCaptureFixture,
) -> None:

    caplog.set_level(logging.WARNING, logger="motet.composer")
    started = time.perf_counter()
    flow = Workflow("brief", inputs=Text).add("summarize", "summarize")
    runnable = await flow.compile(registry, payer=Payer(chain), budget=10**18)
    assert [offer.agent_id for offer in runnable.candidates["summarize"]] == [honest]
    _planned, found = await Workflow.from_goal("summarize", inputs=Text, registry=registry)
    assert [step.offer.agent_id for step in found.steps] == [honest]
    offers = await registry_offers(registry)
    assert [offer.agent_id for offer in offers] == [honest]
    # Three passes over eight cards fetched over HTTP from a loaded machine: the bound is generous; each
    # hostile card's own check is held to QUICK above.
    assert time.perf_counter() - started < 20 * QUICK
    skipped = "\n".join(record.getMessage() for record in caplog.records)
    for agent_id in hostile_ids.values():
        assert f"agent {agent_id}" in skipped
    assert "RE2" in skipped and "refers to itself" in skipped and "nested more than" in skipped

    # Pinned to a hostile agent, compile names its problem.
    pinned = Workflow("pinned", inputs=Text).add(
        "summarize", "summarize", agent=hostile_ids["self reference"]
    )
    with pytest.raises(GraphError, match="refers to itself"):
        await pinned.compile(registry, payer=Payer(chain), budget=10**18)


def test_a_card_whose_examples_explode_its_schema_is_refused_within_one_bound() -> None:
    value: list[Any] = [1]
    for _ in range(40):
        value = [value]
    signer = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    data = json.loads(base64.b64decode(_card_uri("hostile", signer, _exponential()).partition(",")[2]))
    data["capabilities"][0]["examples"] = [{"input": value, "output": {"summary": "x"}}] * 5
    started = time.perf_counter()
    with pytest.raises(InvalidAgentCard, match="takes longer than"):
        AgentCard.from_dict(data)
    assert time.perf_counter() - started < MAX_CHECK_SECONDS + 0.5  # one bound, not one per example
