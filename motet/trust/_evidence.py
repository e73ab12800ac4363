"""Evidence: everything a checker or a validator needs about one paid call of a verifiable capability.

A payer keeps, for a call it may want to check or dispute, the agent's id, the capability, the input it sent,
the output and raw text it got, the capability's `VerifiableProfile` (from the agent's card) and the agent's
signed receipt. `problem()` says whether they hold together: the receipt must commit to this request, this
output and text, and this profile, and the text must be the output as JSON. A checker then re-runs the
profile's model on the input (`motet.trust.Checker`), and a dispute carries the evidence as a `data:` URI
(`to_uri`, read back with `from_uri`, which treats it as hostile input).

Python-function capabilities are never verifiable by re-execution, so no evidence exists for them and they
are never slashable: `from_call` refuses them.

Example:
    >>> from motet.agents import VerifiableProfile, profile_hash, response_hash
    >>> from motet.payments import ReceiptDomain, ReceiptSigner, request_hash
    >>> from motet.runtimes import ModelRef
    >>> ref = ModelRef("llama.cpp", "0.3.36", "SmolLM2-135M-Instruct", "ab" * 32, "Q4_1")
    >>> profile = VerifiableProfile.bind(
    ...     ref, instructions="Say hi.", template=None, output_schema={"type": "object"}, max_tokens=8)
    >>> domain = ReceiptDomain(chain_id=1, contract="0x" + "11" * 20)
    >>> receipt = ReceiptSigner("0x" + "01" * 32, domain).sign(
    ...     request_hash("greet", {"name": "Ada"}, channel_id=7, seq=1),
    ...     response_hash({"hi": "Ada"}, '{"hi": "Ada"}'),
    ...     price=5, channel_id=7, seq=1, model_ref=profile_hash(profile))
    >>> evidence = Evidence(3, "greet", {"name": "Ada"}, {"hi": "Ada"}, '{"hi": "Ada"}', profile, receipt)
    >>> evidence.problem() is None
    True
    >>> Evidence.from_uri(evidence.to_uri(), domain) == evidence
    True
    >>> evidence.model_sha256 == "ab" * 32
    True
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from motet._json import loads
from motet.agents import CapabilitySpec, PaidInvocation, VerifiableProfile, profile_hash, response_hash
from motet.errors import InvalidCapabilityName, InvalidEvidence, InvalidReceipt
from motet.payments import Receipt, ReceiptDomain, canonical_json, recover_receipt_signer, request_hash
from motet.registry import validate_capability_name
from motet.units import UINT256_MAX

MAX_EVIDENCE_BYTES: Final = 256 * 1024
"""The largest evidence document, in bytes of JSON; a larger `data:` URI is refused before it is decoded."""

EVIDENCE_VERSION: Final = 1
_PREFIX: Final = "data:application/json;base64,"
_FIELDS: Final = frozenset(
    {"version", "agentId", "capability", "input", "output", "text", "profile", "receipt"}
)


@dataclass(frozen=True)
class Evidence:
    """One paid call of a verifiable capability, as its payer holds it: request, answer, profile, receipt."""

    agent_id: int
    capability: str
    input: dict[str, Any]
    output: dict[str, Any]
    text: str
    """The raw text the agent generated (its output, as JSON)."""
    profile: VerifiableProfile
    receipt: Receipt

    @property
    def model_sha256(self) -> str:
        """The hex sha256 of the weights the profile names: the model a checker must run."""
        return self.profile.model["sha256"]

    @property
    def model_id(self) -> bytes:
        """The on-chain model id of this call: the weights' sha256 as 32 bytes."""
        return bytes.fromhex(self.model_sha256)

    def signer(self) -> str:
        """The address that signed the receipt (compare it with the agent's payout address)."""
        return recover_receipt_signer(self.receipt)

    def problem(self) -> str | None:
        """Why this evidence does not hold together, naming each mismatch; None when it does.

        The receipt's request hash must be this capability, input, channel and call number; its response hash
        `response_hash(output, text)`; its model reference `profile_hash(profile)`; the text must parse to the
        output; and the profile must render a prompt for the input. The signer is not checked here (see
        `signer()`): the validation contract checks it against the agent's payout address.
        """
        problems: list[str] = []
        receipt = self.receipt
        try:
            if (
                request_hash(self.capability, self.input, receipt.channel_id, receipt.seq)
                != receipt.request_hash
            ):
                problems.append(
                    "the receipt's request hash is not this capability, input, channel and call number"
                )
            if response_hash(self.output, self.text) != receipt.response_hash:
                problems.append("the receipt's response hash is not this output and text")
        except (TypeError, ValueError, RecursionError) as exc:
            problems.append(f"the input or output cannot be hashed: {exc}")
        if profile_hash(self.profile) != receipt.model_ref:
            problems.append("the receipt's model reference is not this profile")
        try:
            parsed = _strict(self.text)
            if canonical_json(parsed) != canonical_json(self.output):
                problems.append("the text does not parse to the output")
        except (TypeError, ValueError, RecursionError):
            problems.append("the text is not JSON")
        try:
            self.profile.messages(self.input, capability=self.capability)
        except ValueError as exc:
            problems.append(f"the profile cannot render a prompt for the input ({exc})")
        return "; ".join(problems) if problems else None

    def to_json(self) -> dict[str, Any]:
        """The evidence as a JSON document (the receipt in its wire form)."""
        return {
            "version": EVIDENCE_VERSION,
            "agentId": self.agent_id,
            "capability": self.capability,
            "input": self.input,
            "output": self.output,
            "text": self.text,
            "profile": self.profile.to_json(),
            "receipt": self.receipt.to_dict(),
        }

    def to_uri(self) -> str:
        """The evidence as a `data:application/json;base64,...` URI, for a dispute's `evidence_uri`."""
        body = canonical_json(self.to_json())
        if len(body) > MAX_EVIDENCE_BYTES:
            raise InvalidEvidence(
                f"the evidence is {len(body):,} bytes of JSON, at most {MAX_EVIDENCE_BYTES:,} fit in a URI"
            )
        return _PREFIX + base64.b64encode(body).decode("ascii")

    @classmethod
    def from_uri(cls, uri: str, domain: ReceiptDomain | None) -> Evidence:
        """Read evidence from the `data:` URI `to_uri` writes, its receipt expected in `domain` (None: in the
        domain the receipt names, for a checker that only re-runs the call).

        The URI comes from strangers (a dispute on chain): its size is bounded before it is decoded, and
        anything malformed raises `InvalidEvidence` naming the field. The evidence's consistency is not checked
        here: call `problem()`.
        """
        if not isinstance(uri, str) or not uri.startswith(_PREFIX):
            shown = uri[:40] if isinstance(uri, str) else type(uri).__name__
            raise InvalidEvidence(f"evidence: {shown!r} is not a {_PREFIX}... URI")
        payload = uri[len(_PREFIX) :]
        if len(payload) > (MAX_EVIDENCE_BYTES + 2) // 3 * 4:
            raise InvalidEvidence(f"evidence: the URI holds more than {MAX_EVIDENCE_BYTES:,} bytes")
        try:
            body = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidEvidence(f"evidence: not base64 of a JSON document: {exc}") from None
        try:
            document = _strict(body)
        except ValueError as exc:
            if "recursion" in str(exc).lower():
                raise InvalidEvidence("evidence: the JSON is nested too deeply") from None
            raise InvalidEvidence(f"evidence: not base64 of a JSON document: {exc}") from None
        return cls.from_json(document, domain)

    @classmethod
    def from_json(cls, document: object, domain: ReceiptDomain | None) -> Evidence:
        """Evidence from its JSON document (as `to_json` writes it); raises `InvalidEvidence` naming the field."""
        if not isinstance(document, dict):
            raise InvalidEvidence("evidence: the document is not a JSON object")
        unknown = sorted(set(document) - _FIELDS)
        if unknown:
            raise InvalidEvidence(f"evidence field {unknown[0]!r}: unknown field; remove it")
        missing = sorted(_FIELDS - set(document))
        if missing:
            raise InvalidEvidence(f"evidence field {missing[0]!r}: missing")
        if document["version"] != EVIDENCE_VERSION or isinstance(document["version"], bool):
            raise InvalidEvidence(
                f"evidence field 'version': {document['version']!r}, this reader reads version 1"
            )
        agent_id = document["agentId"]
        if not isinstance(agent_id, int) or isinstance(agent_id, bool) or not 0 <= agent_id <= UINT256_MAX:
            raise InvalidEvidence(
                "evidence field 'agentId': not an agent id (an integer from 0 to 2**256 - 1)"
            )
        capability = document["capability"]
        if not isinstance(capability, str):
            raise InvalidEvidence("evidence field 'capability': not a string")
        try:
            validate_capability_name(capability)
        except InvalidCapabilityName as exc:
            raise InvalidEvidence(f"evidence field 'capability': {exc}") from None
        for name in ("input", "output"):
            if not isinstance(document[name], dict):
                raise InvalidEvidence(f"evidence field {name!r}: not a JSON object")
        if not isinstance(document["text"], str):
            raise InvalidEvidence("evidence field 'text': not a string")
        try:
            profile = VerifiableProfile.model_validate(document["profile"], by_alias=True, by_name=False)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in ("profile", *error["loc"]))
            raise InvalidEvidence(f"evidence field {where!r}: {error['msg']}") from None
        try:
            receipt = Receipt.from_dict(document["receipt"], domain or _receipt_domain(document["receipt"]))
        except InvalidReceipt as exc:
            raise InvalidEvidence(f"evidence field 'receipt': {exc}") from None
        return cls(
            agent_id, capability, document["input"], document["output"], document["text"], profile, receipt
        )

    @classmethod
    def from_call(
        cls, agent_id: int, spec: CapabilitySpec, input: Mapping[str, Any] | BaseModel, call: PaidInvocation
    ) -> Evidence:
        """The evidence of a paid call of the capability `spec` (from the agent's card) with `input`.

        Raises `InvalidEvidence` when the capability is not verifiable by re-execution (a Python function, or a
        prompt capability not declared verifiable: never slashable), or when the call carries no text.
        """
        if spec.verifiable is None:
            raise InvalidEvidence(
                f"capability {spec.name!r} is not verifiable by re-execution: its card publishes no profile, so "
                "its answers cannot be checked or disputed (and it is never slashable)"
            )
        if call.capability != spec.name:
            raise InvalidEvidence(f"the call is of {call.capability!r}, not of {spec.name!r}")
        if call.text is None:
            raise InvalidEvidence(
                f"the call of {spec.name!r} carries no text: it was not answered as verifiable"
            )
        value = input.model_dump(mode="json") if isinstance(input, BaseModel) else dict(input)
        return cls(agent_id, spec.name, value, dict(call.output), call.text, spec.verifiable, call.receipt)


def _receipt_domain(data: object) -> ReceiptDomain:
    """The domain a receipt's wire form names; `InvalidReceipt` when it names none."""
    if not isinstance(data, dict):
        raise InvalidReceipt("the receipt is not a JSON object")
    chain_id, contract = data.get("chainId"), data.get("contract")
    if not isinstance(chain_id, int) or isinstance(chain_id, bool) or not isinstance(contract, str):
        raise InvalidReceipt("the receipt does not name its chainId and contract")
    return ReceiptDomain(chain_id, contract)


def _strict(data: str | bytes) -> Any:
    """Hostile JSON read as the agent read it (so hashes match), its nesting bounded, NaN and infinity refused."""
    return loads(data, allow_inf_nan=False)
