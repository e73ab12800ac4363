"""Evidence of a paid verifiable call: it round-trips through its data: URI, `problem()` names each way it
does not hold together, `from_uri` refuses hostile documents naming the field, and Python-function
capabilities have no evidence (never verifiable by re-execution, never slashable)."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import pytest
from pydantic import BaseModel, JsonValue
from support.agents import FUNCTION_MODEL, echo_agent

from motet.agents import Agent, PaidInvocation, VerifiableProfile, profile_hash, response_hash
from motet.errors import InvalidEvidence
from motet.payments import ReceiptDomain, ReceiptSigner, request_hash
from motet.runtimes import ModelRef, Usage
from motet.trust import Evidence
from motet.trust._evidence import MAX_EVIDENCE_BYTES

REF = ModelRef("llama.cpp", "0.3.36", "SmolLM2-135M-Instruct", "ab" * 32, "Q4_1")
DOMAIN = ReceiptDomain(chain_id=1337, contract="0x" + "22" * 20)
AGENT = ReceiptSigner("0x" + "01" * 32, DOMAIN)
PROFILE = VerifiableProfile.bind(
    REF,
    instructions="Give the topic.",
    template="Text: {text}",
    output_schema={"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]},
    max_tokens=24,
)
INPUT = {"text": "cats purr"}
OUTPUT: dict[str, JsonValue] = {"topic": "cats"}
TEXT = '{"topic": "cats"}'


def evidence(**changes: Any) -> Evidence:
    """Honest evidence of call 3 on channel 9, signed by AGENT, with `changes` applied after signing."""
    receipt = AGENT.sign(
        request_hash("label", INPUT, channel_id=9, seq=3),
        response_hash(OUTPUT, TEXT),
        price=10**15,
        channel_id=9,
        seq=3,
        model_ref=profile_hash(PROFILE),
    )
    honest = Evidence(42, "label", INPUT, OUTPUT, TEXT, PROFILE, receipt)
    return dataclasses.replace(honest, **changes)


def test_honest_evidence_holds_together_and_round_trips_through_its_uri() -> None:
    honest = evidence()
    assert honest.problem() is None
    uri = honest.to_uri()
    assert uri.startswith("data:application/json;base64,")
    assert Evidence.from_uri(uri, DOMAIN) == honest
    assert Evidence.from_uri(uri, None) == honest  # in the domain the receipt names
    assert (honest.model_sha256, honest.model_id) == ("ab" * 32, bytes.fromhex("ab" * 32))
    assert honest.signer() == AGENT.address


def test_problem_names_each_mismatch() -> None:
    other_profile = PROFILE.model_copy(update={"max_tokens": 25})
    cases = {
        "request hash": evidence(input={"text": "dogs bark"}),
        "response hash": evidence(output={"topic": "dogs"}, text='{"topic": "dogs"}'),
        "model reference": evidence(profile=other_profile),
        "does not parse to the output": evidence(output={"topic": "cats", "x": 1}),
        "not JSON": evidence(text="cats"),
        "the text is not JSON": evidence(text="[" * 200_000 + "]" * 200_000),  # nesting bounded, no crash
    }
    for named, bad in cases.items():
        problem = bad.problem()
        assert problem is not None and named in problem, (named, problem)
    # Another channel or call number is another request.
    assert "request hash" in (evidence(capability="label2").problem() or "")
    # A changed input the template cannot render: the request hash and the prompt are both named.
    problem = evidence(input={"body": "x"}).problem() or ""
    assert "request hash" in problem and "cannot render a prompt" in problem and "text: missing" in problem
    # Every mismatch at once, each named.
    assert evidence(profile=other_profile, text="x").problem() == (
        "the receipt's response hash is not this output and text; the receipt's model reference is not this "
        "profile; the text is not JSON"
    )


def test_the_receipt_domain_is_checked() -> None:
    uri = evidence().to_uri()
    with pytest.raises(InvalidEvidence, match=r"receipt.*chain 1337"):
        Evidence.from_uri(uri, ReceiptDomain(chain_id=1, contract="0x" + "22" * 20))


def document() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.b64decode(evidence().to_uri().split(",", 1)[1]))
    return data


def uri_of(data: object) -> str:
    return "data:application/json;base64," + base64.b64encode(json.dumps(data).encode()).decode()


DEEP = "data:application/json;base64," + base64.b64encode(b"[" * 100_000 + b"]" * 100_000).decode()


@pytest.mark.parametrize(
    ("uri", "named"),
    [
        ("https://evil.example/evidence.json", "not a data:application/json;base64"),
        ("data:application/json;base64,!!!!", "not base64"),
        ("data:application/json;base64," + base64.b64encode(b"{nope").decode(), "not base64 of a JSON"),
        ("data:application/json;base64," + "A" * (MAX_EVIDENCE_BYTES * 2), "more than 262,144 bytes"),
        (uri_of([1, 2]), "not a JSON object"),
        (DEEP, "nested too deeply"),
    ],
    ids=["https", "bad-base64", "bad-json", "too-big", "array", "deep"],
)
def test_from_uri_refuses_malformed_uris(uri: str, named: str) -> None:
    with pytest.raises(InvalidEvidence, match=named):
        Evidence.from_uri(uri, DOMAIN)


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("version", 2, "'version'"),
        ("version", True, "'version'"),
        ("agentId", -1, "'agentId'"),
        ("agentId", "42", "'agentId'"),
        ("agentId", 2**256, "'agentId'"),
        ("capability", 7, "'capability'"),
        ("capability", "Not A Name!", "'capability'"),
        ("input", [], "'input'"),
        ("output", "cats", "'output'"),
        ("text", {"topic": "cats"}, "'text'"),
        ("profile", {"model": {}}, "'profile.model'"),
        ("profile", "x", "'profile'"),
        ("receipt", {"chainId": 1337}, "'receipt'"),
        ("receipt", None, "'receipt'"),
        ("extra", 1, "'extra': unknown field"),
    ],
)
def test_from_uri_refuses_wrong_fields_naming_them(field: str, value: object, named: str) -> None:
    data = document()
    data[field] = value
    with pytest.raises(InvalidEvidence, match=named):
        Evidence.from_uri(uri_of(data), DOMAIN)


def test_from_uri_refuses_a_greedy_profile_lie_and_missing_fields() -> None:
    data = document()
    data["profile"]["temperature"] = 0.8
    with pytest.raises(InvalidEvidence, match=r"'profile': .*greedy"):
        Evidence.from_uri(uri_of(data), DOMAIN)
    data = document()
    del data["text"]
    with pytest.raises(InvalidEvidence, match="'text': missing"):
        Evidence.from_uri(uri_of(data), DOMAIN)


def test_python_capabilities_have_no_evidence() -> None:
    agent, _ = echo_agent()
    spec = agent.card("http://a.example", signer=AGENT.address).capability("echo")
    receipt = evidence().receipt
    call = PaidInvocation(
        "echo", {"echo": "hi", "calls": 1}, Usage(0, 0), FUNCTION_MODEL, 0.1, 1, 1, 1, receipt
    )
    with pytest.raises(InvalidEvidence, match=r"not verifiable by re-execution.*never slashable"):
        Evidence.from_call(42, spec, {"text": "hi"}, call)


class Question(BaseModel):
    text: str


class Topic(BaseModel):
    topic: str


def test_from_call_keeps_the_call_as_paid() -> None:
    agent = Agent("labeller")
    agent.prompt(
        "label",
        input=Question,
        output=Topic,
        instructions="Give the topic.",
        template="Text: {text}",
        max_tokens=24,
        verifiable=True,
    )
    spec = agent.card("http://a.example", signer=AGENT.address, model_ref=REF).capability("label")
    honest = evidence()
    assert spec.verifiable is not None and spec.verifiable.output_schema == Topic.model_json_schema()
    # The profile of this card differs from PROFILE (its schema is the model's): evidence binds the card's.
    call = PaidInvocation("label", OUTPUT, Usage(20, 5), REF, 0.1, 1, 1, 3, honest.receipt, text=TEXT)
    made = Evidence.from_call(42, spec, Question(text="cats purr"), call)
    assert (made.input, made.output, made.text, made.profile) == (INPUT, OUTPUT, TEXT, spec.verifiable)
    assert "model reference" in (made.problem() or "")  # the receipt was signed for PROFILE, not the card's
    with pytest.raises(InvalidEvidence, match="carries no text"):
        Evidence.from_call(42, spec, INPUT, dataclasses.replace(call, text=None))
    with pytest.raises(InvalidEvidence, match="not of 'label'"):
        Evidence.from_call(42, spec, INPUT, dataclasses.replace(call, capability="other"))
