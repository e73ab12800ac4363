"""The public surface, locked: each public module's `__all__` is written out here, so a change to what users
import is a deliberate edit of this file (and of the docs), never an accident of a refactor."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PUBLIC: dict[str, list[str]] = {
    "motet": [
        "Agent",
        "AgentClient",
        "AgentRecord",
        "AgentServer",
        "Chain",
        "Invocation",
        "LlamaCppRuntime",
        "MotetError",
        "OpenAIEndpointRuntime",
        "PaidInvocation",
        "Payer",
        "Registry",
        "RunReport",
        "Sampling",
        "Settings",
        "Wei",
        "Workflow",
        "builtin_agent",
    ],
    "motet.agents": [
        "Agent",
        "AgentCard",
        "AgentClient",
        "AgentServer",
        "BUILTINS",
        "CallContext",
        "Capability",
        "CapabilitySpec",
        "ConnectionPool",
        "Invocation",
        "PaidInvocation",
        "Pricing",
        "Service",
        "VerifiableProfile",
        "a2a_card",
        "builtin_agent",
        "check_public_url",
        "fetch_card",
        "load_agent",
        "private_endpoints_allowed",
        "profile_hash",
        "response_hash",
    ],
    "motet.agents.builtins": [
        "Answer",
        "BUILTINS",
        "BuiltinCapability",
        "Critique",
        "Keywords",
        "MAX_TEXT",
        "Question",
        "Sentiment",
        "Summary",
        "Text",
        "Translation",
        "TranslationRequest",
        "builtin_agent",
    ],
    "motet.chain": [
        "CONTRACTS_VERSION",
        "Chain",
        "ChainKind",
        "DEPLOYMENT_PROXY",
        "NATIVE_ASSET",
        "Wei",
        "deterministic_addresses",
    ],
    "motet.composer": [
        "AgentPayment",
        "Budget",
        "CallPaid",
        "CallRecord",
        "CheckDone",
        "CompiledWorkflow",
        "DisputeOpened",
        "Event",
        "Failover",
        "Node",
        "NodeDone",
        "NodeReport",
        "NodeSkipped",
        "NodeStarted",
        "Offer",
        "Path",
        "Payer",
        "Plan",
        "PlanStep",
        "Policy",
        "Ranked",
        "ReceiptChecked",
        "Reservation",
        "Route",
        "RunDone",
        "RunLog",
        "RunRecord",
        "RunReport",
        "Selection",
        "Settled",
        "SimulatedCrash",
        "TextDelta",
        "Workflow",
        "plan",
        "registry_offers",
    ],
    "motet.demo": [
        "AGENTS",
        "Brief",
        "CheatOutcome",
        "CheatingRuntime",
        "DOCUMENT",
        "DemoAgent",
        "Document",
        "Market",
        "Report",
        "cheating_runtime",
        "local_market",
        "market_agents",
        "model_agent",
        "report_table",
        "research_brief",
        "run_cheater",
        "run_demo",
        "run_story",
        "watch",
    ],
    "motet.errors": [
        "AccountError",
        "AgentCallFailed",
        "AgentConnectionLost",
        "AgentError",
        "AgentLimitExceeded",
        "AgentNotFound",
        "AgentOutputMismatch",
        "AgentTimeout",
        "BudgetExceeded",
        "ChainConnectionError",
        "ChainError",
        "ChannelFundsExhausted",
        "ChannelNotFound",
        "ChannelNotSettleable",
        "CheckUnavailable",
        "ComposeError",
        "ContextOverflow",
        "ContractBuildError",
        "DisputeError",
        "DuplicateCapability",
        "EndpointError",
        "EndpointHTTPError",
        "EndpointLimitExceeded",
        "EndpointProtocolError",
        "EndpointTimeout",
        "EndpointUnreachable",
        "GraphError",
        "InsufficientFunds",
        "InvalidAgentCard",
        "InvalidAgentDefinition",
        "InvalidAgentInput",
        "InvalidAmount",
        "InvalidCallSignature",
        "InvalidCapabilityName",
        "InvalidComposeArgument",
        "InvalidDelegation",
        "InvalidEvidence",
        "InvalidModelOutput",
        "InvalidReceipt",
        "InvalidRegistryArgument",
        "InvalidRuntimeArgument",
        "InvalidSampling",
        "InvalidSchema",
        "InvalidVoucher",
        "ModelNotFound",
        "ModelRuntimeError",
        "MotetError",
        "NoPlan",
        "NodeFailed",
        "NotAgentOwner",
        "OrderRefused",
        "PaymentError",
        "PaymentRequired",
        "RegistryError",
        "RunNotFound",
        "SettlementPending",
        "TransactionReverted",
        "TrustError",
        "UnknownCapability",
        "VoucherNotAboveHighest",
        "WorkflowFileError",
        "WorkflowInputError",
    ],
    "motet.gateway": [
        "Gateway",
        "OrderRefused",
    ],
    "motet.payments": [
        "ANY_CAPABILITY",
        "Amount",
        "CALL_TYPE",
        "Call",
        "CallSigner",
        "ChannelClient",
        "ChannelDomain",
        "ChannelState",
        "DELEGATION_TYPE",
        "Delegation",
        "DelegationClient",
        "DelegationState",
        "Ledger",
        "RECEIPT_TYPE",
        "Receipt",
        "ReceiptDomain",
        "ReceiptSigner",
        "ReceiptVerifier",
        "Redemption",
        "Rejection",
        "TASK_ORDER_TYPE",
        "TaskOrder",
        "VOUCHER_TYPE",
        "Voucher",
        "VoucherSigner",
        "VoucherVerifier",
        "canonical_json",
        "content_hash",
        "eip712_fields",
        "model_ref_hash",
        "parse_signature",
        "recover_call_signer",
        "recover_receipt_signer",
        "recover_signer",
        "request_hash",
        "sign_typed",
        "verify_receipt",
    ],
    "motet.registry": [
        "AgentRecord",
        "MAX_CAPABILITIES",
        "MAX_CAPABILITY_NAME",
        "MAX_URI_BYTES",
        "NATIVE_ASSET",
        "Registry",
        "capability_hash",
        "capability_hashes",
        "validate_capability_name",
    ],
    "motet.runtimes": [
        "Completion",
        "EndpointPreset",
        "FinishReason",
        "LlamaCppRuntime",
        "Message",
        "Messages",
        "ModelRef",
        "OpenAIEndpointRuntime",
        "PRESETS",
        "Role",
        "Runtime",
        "Sampling",
        "Schema",
        "StreamEvent",
        "TextDelta",
        "Usage",
    ],
    "motet.runtimes.gguf": [
        "ModelFile",
        "bundled_model",
        "file_sha256",
        "gguf_file",
        "quantization_from_file_type",
        "requantize",
        "split_quantization",
    ],
    "motet.runtimes.testing": [
        "CallInfo",
        "FunctionRuntime",
        "Response",
        "ResponseFunction",
        "ScriptedRuntime",
        "deterministic_runtime",
    ],
    "motet.settings": [
        "DisputeSettings",
        "GatewayLimits",
        "Settings",
        "TrustSettings",
    ],
    "motet.trust": [
        "CheckResult",
        "Checker",
        "DisputeState",
        "Disputes",
        "Evidence",
        "NEAR_TIE",
        "Reputation",
        "ReputationSummary",
        "TrustFacts",
        "VERIFY",
        "ValidationRecord",
        "Validator",
        "ValidatorEvent",
        "Verdict",
        "VerifyOutput",
        "changed_agents",
        "trust_facts",
        "trust_facts_many",
        "verifier_agent",
    ],
    "motet.trust.economics": [
        "Analysis",
        "CHEAT_RATES",
        "Catch",
        "Condition",
        "Economics",
        "Headline",
        "Outcome",
        "REFERENCE_PRICE",
        "SAMPLE_RATES",
        "calls_to_catch",
        "catch_probability",
        "detection_table",
        "headline",
        "main",
        "plot_detection",
        "simulate",
    ],
    "motet.tui": [
        "Market",
        "MarketFactory",
        "MotetApp",
        "Session",
        "make_app",
    ],
    "motet.units": [
        "AMOUNT_HELP",
        "DEFAULT_UNIT",
        "ETH",
        "GWEI",
        "UINT256_MAX",
        "UNITS",
        "WEI",
        "Wei",
        "format_amount",
        "format_eth",
        "format_gwei",
        "parse_amount",
        "plural",
    ],
}
"""Every public module and its `__all__`; every other module in the package is private (`_name`) or a
sub-module of one listed here that users reach through it (`motet.tui.screens`, `motet.cli.*`)."""


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_all_is_locked(module: str) -> None:
    imported = importlib.import_module(module)
    assert sorted(imported.__all__) == PUBLIC[module]
    for name in imported.__all__:
        assert hasattr(imported, name), f"{module}.__all__ names {name}, which it does not define"


SAME_CONCEPT_TWO_CLASSES = {
    "TextDelta": "a model's piece of streamed text (runtimes), and the same piece tagged with its node (composer)",
    "Market": "what the TUI needs of a market (a Protocol), and the demo's market that provides it",
}


def test_a_name_exported_twice_is_one_concept() -> None:
    # The same object, or a pair written down above with the reason the two classes share a name.
    seen: dict[str, object] = {}
    for module, names in PUBLIC.items():
        for name in names:
            value = getattr(importlib.import_module(module), name)
            if name in seen and not isinstance(value, (str, int)) and name not in SAME_CONCEPT_TWO_CLASSES:
                assert seen[name] is value, f"{module}.{name} is not the {name} exported elsewhere"
            seen[name] = value


def _motet_imports(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("motet"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("motet"))
    return found


def _readme_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)


@pytest.mark.parametrize(
    ("name", "source"),
    [(path.name, path.read_text()) for path in sorted((ROOT / "examples").glob("*.py"))]
    + [(f"README block {index}", block) for index, block in enumerate(_readme_blocks(), 1)],
)
def test_users_import_only_public_modules(name: str, source: str) -> None:
    private = {
        module for module in _motet_imports(source) if any(p.startswith("_") for p in module.split("."))
    }
    assert private == set(), f"{name} imports private modules"
    assert _motet_imports(source) <= set(PUBLIC) | {"motet.agents.builtins"}, name


def test_the_readme_quickstart_is_the_example_that_runs() -> None:
    assert (ROOT / "examples" / "quickstart.py").read_text() in _readme_blocks()
