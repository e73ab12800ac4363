"""Trust: checking paid answers by re-running them, disputes and slashing on chain, reputation from payers.

A verifiable capability publishes everything needed to re-run it (model, prompt, schema, greedy sampling) and
its agent signs a receipt that commits to that profile and to the raw text it generated. A caller re-checks a
share of its paid calls (`check`), disputes a cheat on chain with a bond (`Disputes`), staked validators
re-run it and vote (`Validator`), and a confirmed cheat is slashed. Only callers who paid can give feedback
(`Reputation`). `motet.trust.economics` publishes the numbers and the simulation that justifies them.
See docs/trust.md.
"""

from __future__ import annotations

from motet.trust._check import NEAR_TIE, Checker, CheckResult
from motet.trust._disputes import Disputes, DisputeState, ValidationRecord
from motet.trust._evidence import Evidence
from motet.trust._facts import TrustFacts, changed_agents, trust_facts, trust_facts_many
from motet.trust._reputation import Reputation, ReputationSummary
from motet.trust._validator import Validator, ValidatorEvent
from motet.trust._verdict import Verdict
from motet.trust._verifier import VERIFY, VerifyOutput, verifier_agent

__all__ = [
    "NEAR_TIE",
    "VERIFY",
    "CheckResult",
    "Checker",
    "DisputeState",
    "Disputes",
    "Evidence",
    "Reputation",
    "ReputationSummary",
    "TrustFacts",
    "ValidationRecord",
    "Validator",
    "ValidatorEvent",
    "Verdict",
    "VerifyOutput",
    "changed_agents",
    "trust_facts",
    "trust_facts_many",
    "verifier_agent",
]
