"""A paid verifier agent: checks evidence of a verifiable call for callers that cannot run the model.

`verifier_agent(checker, price=...)` is an ordinary `Agent` with one Python-function capability, `verify`:
its input is `{"evidence": "data:application/json;base64,..."}` (what `Evidence.to_uri` writes), its output the
verdict of re-running the declared model on the declared profile (`Checker.check_evidence`). Evidence that
does not parse, does not hold together (`Evidence.problem`), or names a model this verifier does not run is
refused with `422` before any work, so it is never charged for. The verifier's own capability is a Python
function, hence not itself verifiable by re-execution (and never slashable): a caller that doubts a verifier
checks locally or asks another one.

Example (serve it like any agent):

    checker = Checker([LlamaCppRuntime()])
    server = AgentServer(verifier_agent(checker, price=10**14), chain=chain, account=account)
"""

from __future__ import annotations

import math
from typing import Literal, cast

from pydantic import BaseModel, Field, PrivateAttr, model_validator

from motet.agents import Agent, CallContext, Capability
from motet.errors import InvalidEvidence
from motet.payments import ReceiptDomain
from motet.trust._check import Checker
from motet.trust._evidence import MAX_EVIDENCE_BYTES, Evidence

VERIFY: Literal["verify"] = "verify"
"""The capability name of a verifier agent."""


Label = Literal["consistent", "cheat", "inconclusive"]


class VerifyOutput(BaseModel):
    """A verifier's verdict on one paid call."""

    verdict: Label
    detail: str
    """A sentence: where and why."""
    model: str
    """The sha256 of the weights re-run."""
    tokens: int
    """Answer tokens checked."""
    ties: int
    """Honest near-tie divergences followed."""
    position: int | None = None
    """Token index of the decisive divergence (a cheat)."""
    margin: float | None = None
    """The logit margin there (None when not finite or no cheat)."""


def verifier_agent(
    checker: Checker,
    *,
    price: int,
    name: str = "verifier",
    domain: ReceiptDomain | None = None,
) -> Agent:
    """An agent that sells checks: capability `verify`, `price` per call, run on `checker`'s models.

    `domain` restricts the receipts it checks to one chain and channels contract (default: any; the check
    re-runs the call and does not depend on where it was paid).
    """

    class VerifyInput(BaseModel):
        """Evidence of one paid call of a verifiable capability, as `Evidence.to_uri()` writes it."""

        evidence: str = Field(max_length=MAX_EVIDENCE_BYTES * 4 // 3 + 64)
        _parsed: Evidence | None = PrivateAttr(default=None)

        @model_validator(mode="after")
        def _holds_together(self) -> VerifyInput:
            try:
                parsed = Evidence.from_uri(self.evidence, domain)
            except InvalidEvidence as exc:
                raise ValueError(str(exc)) from None
            problem = parsed.problem()
            if problem is not None:
                raise ValueError(f"the evidence does not hold together: {problem}")
            if not checker.can_check(parsed.model_sha256):
                raise ValueError(
                    f"this verifier does not run the model {parsed.model_sha256[:16]}…: it runs "
                    f"{[sha[:16] for sha in checker.models]}; ask a verifier that declares it"
                )
            self._parsed = parsed
            return self

        def parsed(self) -> Evidence:
            return self._parsed if self._parsed is not None else Evidence.from_uri(self.evidence, domain)

    agent = Agent(
        name,
        description="Re-runs a verifiable capability's declared model on a paid call's evidence and says whether "
        "the answer is the model's (consistent), is not (cheat), or cannot be told (inconclusive).",
        price=price,
    )

    async def verify(request: BaseModel, ctx: CallContext) -> VerifyOutput:
        assert isinstance(request, VerifyInput)
        evidence = request.parsed()
        result = await checker.check_evidence(evidence)
        margin = result.margin if result.margin is not None and math.isfinite(result.margin) else None
        return VerifyOutput(
            verdict=cast(Label, result.verdict.label),
            detail=result.detail,
            model=evidence.model_sha256,
            tokens=result.tokens,
            ties=result.ties,
            position=result.position,
            margin=margin,
        )

    agent.add(
        Capability(
            name=VERIFY,
            description="Check a paid call's evidence by re-running its declared model: consistent, cheat or "
            "inconclusive.",
            input=VerifyInput,
            output=VerifyOutput,
            handler=verify,
            max_tokens=1,
        )
    )
    return agent
