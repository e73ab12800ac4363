"""Every error motet raises, in one tree.

    MotetError
    ├── InvalidAmount                   (also ValueError)      an amount a person typed that is not one
    ├── ChainError
    │   ├── ChainConnectionError        (also ConnectionError) no node at the URL, or none given
    │   ├── AccountError                (also ValueError)      missing or malformed key
    │   ├── InsufficientFunds                                  the sender cannot pay value + gas
    │   ├── TransactionReverted                                the contract refused; `.reason` is its string
    │   │   └── ChannelNotSettleable                           settle refused: open, challenge period not over, or
    │   │                                                      settled; says when it can be
    │   └── ContractBuildError                                 a Vyper source did not compile
    ├── RegistryError
    │   ├── AgentNotFound               (also LookupError)     no agent with that id
    │   ├── NotAgentOwner               (also PermissionError) the sender does not control the agent
    │   ├── InvalidCapabilityName       (also ValueError)      a name breaks the naming rule
    │   └── InvalidRegistryArgument     (also ValueError)      URI, capabilities, price, amount rejected
    │       └── DuplicateCapability                            the same capability listed twice
    ├── PaymentError
    │   ├── ChannelNotFound             (also LookupError)
    │   ├── ChannelFundsExhausted                              the deposit cannot cover the next payment
    │   ├── InvalidVoucher              (also ValueError)      bad signature, wrong domain, not above the last
    │   ├── VoucherNotAboveHighest      (also ValueError)      the signer refuses to go backwards
    │   ├── InvalidDelegation           (also ValueError)      a delegation or task order that is malformed
    │   ├── InvalidReceipt              (also ValueError)      a receipt not signed by the agent, or altered
    │   ├── InvalidCallSignature        (also ValueError)      a call not signed by the channel's payer or its
    │   │                                                      session key, or a malformed call signature
    │   ├── PaymentRequired                                    an agent answered 402: `.requirements` says why
    │   ├── BudgetExceeded                                     a call or a graph would spend past the budget
    │   └── SettlementPending           (also TimeoutError)    a run's settlement transaction is still not mined
    ├── AgentError
    │   ├── InvalidAgentCard            (also ValueError)      a card or capability breaks the schema or a limit
    │   ├── UnknownCapability           (also LookupError)     the agent has no capability of that name
    │   ├── InvalidAgentInput           (also ValueError)      input that fails the capability's schema
    │   ├── InvalidAgentDefinition      (also ValueError)      an agent or capability defined with a bad name,
    │   │                                                      price, template or annotation, or not found
    │   ├── AgentOutputMismatch         (also ValueError)      a delivered output that does not fit the caller's
    │   │                                                      `output_type`: `.fields` names each bad field
    │   └── AgentCallFailed                                    the agent could not be reached or did not answer
    │       ├── AgentTimeout            (also TimeoutError)    a silent stream, or the call's deadline passed
    │       ├── AgentConnectionLost                            the connection failed before the answer arrived
    │       │                                                  (it may have been delivered: ask again, same key)
    │       └── AgentLimitExceeded                             more bytes, events or tokens than the client
    │                                                          accepts, or a price above the card's for the usage
    ├── ComposeError
    │   ├── GraphError                  (also ValueError)      a graph that cannot run: names the node or edge
    │   │   └── WorkflowFileError                              a workflow file that cannot be read: file, line, node
    │   ├── WorkflowInputError          (also ValueError)      inputs that do not fit the workflow's (or a node's)
    │   │                                                      input schema: missing, unknown or mistyped fields
    │   ├── NoPlan                      (also LookupError)     no type-compatible path reaches the goal
    │   ├── RunNotFound                 (also LookupError)     no kept run has that id (`motet runs` lists them)
    │   ├── InvalidComposeArgument      (also ValueError)      an argument the composer cannot use
    │   └── NodeFailed                                         every candidate agent of a node failed
    ├── OrderRefused                                           the gateway will not take an order or delegation:
    │                                                          `.status` is the HTTP status it answers
    ├── TrustError
    │   ├── InvalidEvidence             (also ValueError)      evidence that is malformed or does not match its
    │   │                                                      receipt, or a capability that is not verifiable
    │   ├── CheckUnavailable            (also LookupError)     no runtime here can run the model a check needs
    │   └── DisputeError                                       a dispute in the wrong state for the action, or
    │                                                          refused by the validation contract
    └── ModelRuntimeError
        ├── ModelNotFound               (also LookupError)     no loadable GGUF at the path, or a bundled
        │                                                      model's package is not installed
        ├── InvalidRuntimeArgument      (also ValueError)      a runtime's settings or messages are malformed
        ├── InvalidSampling             (also ValueError)      a `Sampling` field out of range, or above a cap
        ├── ContextOverflow             (also ValueError)      prompt + max_tokens exceed the context window
        ├── InvalidSchema               (also ValueError)      a schema the runtime cannot constrain output with
        ├── InvalidModelOutput          (also ValueError)      output that should be JSON did not parse or validate
        └── EndpointError                                      an OpenAI-compatible endpoint failed the call
            ├── EndpointUnreachable     (also ConnectionError) nothing answers at the base URL
            ├── EndpointTimeout         (also TimeoutError)    no headers, a silent stream, or the call's deadline
            ├── EndpointLimitExceeded                          more bytes or tokens than the runtime accepts
            ├── EndpointHTTPError                              an HTTP error status (bad key, unknown model, 5xx)
            └── EndpointProtocolError                          a body that is not an OpenAI chat completion

Each error carries the offending value and its message says what to do.
"""

from __future__ import annotations

from typing import Any

__all__ = [
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
]


def _amount(wei: int) -> str:
    """An amount with its unit, exact (this module sits below `motet.units`, whose `format_amount` rounds):
    wei below a gwei, gwei below 0.001 ETH, ETH from there."""
    from decimal import Decimal

    for unit, size in (("ETH", 10**18), ("gwei", 10**9)):
        if abs(wei) >= size // (1000 if unit == "ETH" else 1):
            return f"{Decimal(wei).scaleb(-len(str(size)) + 1).normalize():,f} {unit}"
    return f"{wei:,} wei"


class MotetError(Exception):
    """Base class of every error motet raises."""


class InvalidAmount(MotetError, ValueError):
    """An amount a person typed (`--budget 150gwei`, a TUI field) that is not an amount motet can pay."""

    def __init__(self, text: str, problem: str) -> None:
        super().__init__(f"{text!r} is not an amount: {problem}")
        self.text = text
        self.problem = problem


class ChainError(MotetError):
    """Something went wrong talking to the chain."""


class ChainConnectionError(ChainError, ConnectionError):
    """No JSON-RPC node answers at the given URL (or no URL was given)."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class AccountError(ChainError, ValueError):
    """A private key or keystore is missing or malformed."""


class InsufficientFunds(ChainError):
    """The sending account cannot pay the value plus the gas of a transaction."""

    def __init__(self, address: str, balance: int, needed: int, action: str) -> None:
        super().__init__(
            f"account {address} has {_amount(balance)} but {action} needs about {_amount(needed)} "
            f"(value + gas): fund the account or use another key"
        )
        self.address = address
        self.balance = balance
        self.needed = needed


class TransactionReverted(ChainError):
    """A contract call reverted; `reason` is the revert string (empty when the contract gave none)."""

    def __init__(self, action: str, reason: str) -> None:
        super().__init__(f"{action} reverted: {reason or 'no reason given'}")
        self.action = action
        self.reason = reason


class ContractBuildError(ChainError):
    """A Vyper contract failed to compile."""


class RegistryError(MotetError):
    """Something went wrong with the agent registry."""


class AgentNotFound(RegistryError, LookupError):
    """No agent with this id is registered."""

    def __init__(self, agent_id: int, count: int) -> None:
        known = f"ids run from 1 to {count}" if count > 0 else "no agent is registered yet"
        super().__init__(
            f"no agent with id {agent_id} in the registry ({known}): "
            f"search with `Registry.search()` or browse the agents in `motet tui`"
        )
        self.agent_id = agent_id
        self.count = count


class NotAgentOwner(RegistryError, PermissionError):
    """The sending account neither owns the agent nor is approved to manage it."""

    def __init__(self, agent_id: int, sender: str, owner: str) -> None:
        super().__init__(
            f"account {sender} cannot manage agent {agent_id}: it is owned by {owner}; send as the owner "
            f"(owner=...) or have the owner approve this account"
        )
        self.agent_id = agent_id
        self.sender = sender
        self.owner = owner


class InvalidCapabilityName(RegistryError, ValueError):
    """A capability name does not follow the naming rule."""

    def __init__(self, name: str, rule: str) -> None:
        super().__init__(f"invalid capability name {name!r}: {rule}")
        self.name = name
        self.rule = rule


class InvalidRegistryArgument(RegistryError, ValueError):
    """A registry argument (URI, capabilities, price, address, amount, filter) was rejected before sending."""

    def __init__(self, field: str, value: object, problem: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"invalid {field} {shown}: {problem}")
        self.field = field
        self.value = value
        self.problem = problem


class DuplicateCapability(InvalidRegistryArgument):
    """The same capability name appears twice in one agent's list."""

    def __init__(self, name: str) -> None:
        super().__init__(
            "capabilities", name, f"capability {name!r} is listed more than once; list each capability once"
        )
        self.name = name


class PaymentError(MotetError):
    """Something went wrong with a channel or a voucher."""


class ChannelNotFound(PaymentError, LookupError):
    """No channel with this id exists on the contract."""

    def __init__(self, channel_id: int, contract: str) -> None:
        super().__init__(f"no channel {hex(channel_id)} on the channels contract {contract}")
        self.channel_id = channel_id


class ChannelFundsExhausted(PaymentError):
    """The channel's deposit cannot cover the next payment."""

    def __init__(self, channel_id: int, remaining: int, needed: int) -> None:
        super().__init__(
            f"channel {hex(channel_id)} has {_amount(remaining)} left, the payment needs {_amount(needed)}: "
            f"top up with `ChannelClient.topup({hex(channel_id)}, amount)` or open a new channel"
        )
        self.channel_id = channel_id
        self.remaining = remaining
        self.needed = needed


class ChannelNotSettleable(TransactionReverted):
    """The contract refused to settle a channel: it is open, its challenge period is not over (`closes_at` is the
    chain time from which it can be, `now` the chain's time when asked), or it is settled already. `reason` is
    the contract's revert string."""

    def __init__(
        self, channel_id: int, closes_at: int, now: int, settled: bool = False, *, reason: str = ""
    ) -> None:
        shown = hex(channel_id)
        if settled:
            why = f"channel {shown} is settled already: its remaining deposit was refunded then"
        elif closes_at == 0:
            why = (
                f"channel {shown} is open: close it first; it can be settled once its challenge period has "
                "passed, and the payee can redeem its vouchers until then"
            )
        else:
            from datetime import UTC, datetime

            when = datetime.fromtimestamp(closes_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            why = (
                f"channel {shown}'s challenge period is not over: it ends at {when} (chain time), "
                f"{_duration(closes_at - now)} from now; settle it again after that"
            )
        ChainError.__init__(self, why)
        self.action = f"settling channel {shown}"
        self.reason = reason
        self.channel_id = channel_id
        self.closes_at = closes_at
        self.now = now
        self.settled = settled


def _duration(seconds: int) -> str:
    """`seconds` as a person reads it: '45 s', '12 min 5 s', '2 h 3 min'."""
    if seconds < 60:
        return f"{max(seconds, 0)} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class InvalidVoucher(PaymentError, ValueError):
    """A voucher is malformed, signed by the wrong key, bound to another domain, or not new."""


class VoucherNotAboveHighest(PaymentError, ValueError):
    """The signer refuses to sign a cumulative amount at or below one it already signed."""

    def __init__(self, channel_id: int, requested: int, highest: int) -> None:
        super().__init__(
            f"refusing to sign channel {hex(channel_id)} for {_amount(requested)}: a voucher for {_amount(highest)} "
            f"was already signed, and cumulative amounts only go up"
        )
        self.channel_id = channel_id
        self.requested = requested
        self.highest = highest


class InvalidDelegation(PaymentError, ValueError):
    """A delegation or task order is malformed, signed by someone else, bound to another chain or contract,
    outside its window, revoked, or asks for more than its cap allows."""


class InvalidReceipt(PaymentError, ValueError):
    """A receipt is malformed, altered, or not signed by the agent that should have signed it."""


class InvalidCallSignature(PaymentError, ValueError):
    """A call to an agent is not signed by its channel's payer (or the delegation's session key), or its
    signature is malformed: the agent serves nothing on it."""


class PaymentRequired(PaymentError):
    """An agent answered `402 Payment Required`; `requirements` is its x402-style body."""

    def __init__(self, agent: str, reason: str, requirements: dict[str, object]) -> None:
        super().__init__(f"agent {agent} requires payment: {reason}")
        self.agent = agent
        self.reason = reason
        self.requirements = requirements


class BudgetExceeded(PaymentError):
    """Spending `amount` more would take the total past the budget's `cap`; `spent` is already committed."""

    def __init__(self, cap: int, spent: int, amount: int, what: str = "this call") -> None:
        super().__init__(
            f"{what} could cost {_amount(amount)}, and with {_amount(spent)} already spent or reserved that passes "
            f"the budget of {_amount(cap)}: raise the budget or lower the price caps"
        )
        self.cap = cap
        self.spent = spent
        self.amount = amount


class SettlementPending(PaymentError, TimeoutError):
    """A run's settlement transaction, sent before a crash, is still not mined after waiting `waited_s`."""

    def __init__(self, tx_hash: str, waited_s: float) -> None:
        super().__init__(
            f"the settlement transaction {tx_hash} is still pending after {waited_s:g} s: nothing else is sent "
            "for these vouchers; check the node (gas price, mining) and resume the run again to wait for it"
        )
        self.tx_hash = tx_hash
        self.waited_s = waited_s


class ComposeError(MotetError):
    """Something went wrong composing or running an agent graph."""


class GraphError(ComposeError, ValueError):
    """A graph that cannot compile; `where` names the node or edge (`"a -> b"`)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


class WorkflowFileError(GraphError):
    """A workflow file that cannot be read: malformed TOML or YAML, an unknown key, a node or an input that
    does not exist, a bad mapping. The message is one line, `FILE:LINE: node 'id': problem`; `path`, `line`
    and `node` are None where they are not known."""

    def __init__(self, path: str, problem: str, *, line: int | None = None, node: str | None = None) -> None:
        where = f"{path}:{line}" if line is not None else path
        if node is not None:
            where += f": node {node!r}"
        super().__init__(where, problem)
        self.path = path
        self.line = line
        self.node = node


class WorkflowInputError(ComposeError, ValueError):
    """Inputs that do not fit a workflow's input schema (or the input schema of the capability a node calls):
    `fields` maps each bad field to what is wrong and what is expected. Raised before anything is paid; an
    input error is never a reason to try another agent."""

    def __init__(self, what: str, fields: dict[str, str], *, node: str | None = None) -> None:
        problems = "; ".join(f"{name}: {problem}" for name, problem in fields.items())
        super().__init__(f"{what}: {problems}")
        self.what = what
        self.fields = fields
        self.node = node


class NoPlan(ComposeError, LookupError):
    """No type-compatible path through the registered capabilities reaches the goal."""


class RunNotFound(ComposeError, LookupError):
    """No run kept in motet's home has this id (or more than one starts with it)."""

    def __init__(self, run_id: str, where: str) -> None:
        super().__init__(
            f"no run {run_id!r} in {where}: `motet runs` lists the runs kept there (give the whole id, or a "
            "prefix only one run has)"
        )
        self.run_id = run_id


class InvalidComposeArgument(ComposeError, ValueError):
    """An argument the composer cannot use: `max_steps` under 1, a run with neither inputs nor a run id to
    resume, an offer without the card and payout that calling and paying its agent need."""


class NodeFailed(ComposeError):
    """Every candidate agent for a node failed; `attempts` lists `(agent, problem)` in order."""

    def __init__(self, node: str, attempts: list[tuple[str, str]]) -> None:
        tried = "; ".join(f"{agent}: {problem}" for agent, problem in attempts) or "no candidate agents"
        super().__init__(f"node {node!r} failed with every agent ({tried})")
        self.node = node
        self.attempts = attempts


class OrderRefused(MotetError):
    """The task gateway will not take an order, a delegation or a request; `status` is the HTTP status it
    answers (400 malformed, 403 not allowed or over budget, 404 unknown, 409 a replayed nonce)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class TrustError(MotetError):
    """Something went wrong checking an answer, disputing one or deciding a dispute."""


class InvalidEvidence(TrustError, ValueError):
    """Evidence of a paid call that is malformed, does not match the agent's receipt, or is for a capability
    that is not verifiable by re-execution; the message names what does not match."""


class CheckUnavailable(TrustError, LookupError):
    """No runtime here can run the model a check needs; `model` is the GGUF sha256 it names."""

    def __init__(self, model: str, message: str) -> None:
        super().__init__(message)
        self.model = model


class DisputeError(TrustError):
    """A dispute action that its state does not allow, or that the validation contract refused; the message
    says which dispute and why."""


class AgentError(MotetError):
    """Something went wrong defining, describing or calling an agent."""


class InvalidAgentCard(AgentError, ValueError):
    """An agent card (registration file) or capability breaks the schema or a size limit; `field` names where."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"invalid agent card: {field}: {problem}")
        self.field = field
        self.problem = problem


class UnknownCapability(AgentError, LookupError):
    """The agent has no capability of that name."""

    def __init__(self, name: str, available: list[str]) -> None:
        super().__init__(f"no capability {name!r} on this agent: it has {sorted(available)}")
        self.name = name
        self.available = available


class InvalidAgentInput(AgentError, ValueError):
    """Input that fails a capability's schema or size limit; `field` is the dotted path of the first problem."""

    def __init__(self, capability: str, field: str, problem: str) -> None:
        super().__init__(f"invalid input for {capability!r}: {field}: {problem}")
        self.capability = capability
        self.field = field
        self.problem = problem


class InvalidAgentDefinition(AgentError, ValueError):
    """An agent or capability defined with a bad name, a negative price, a template naming no input field,
    handler annotations that are not pydantic models, or an unknown built-in capability."""


class AgentOutputMismatch(AgentError, ValueError):
    """An agent delivered an output that fits its card's schema but not the `output_type` the caller asked
    for: `fields` maps each bad field to its problem; `invocation` is the delivered call, which is owed
    (its receipt is valid), so the caller can still pay for it, or None when the model was refused before any
    call (a field the card's output schema does not have)."""

    def __init__(self, capability: str, output_type: str, fields: dict[str, str], invocation: Any) -> None:
        problems = "; ".join(f"{name}: {problem}" for name, problem in fields.items())
        then = (
            "nothing was called or owed: ask for a model whose fields the card's output schema has"
            if invocation is None
            else "the call was delivered and is owed: pay for it with the invocation on this error "
            "(`.invocation.owed`)"
        )
        super().__init__(f"{capability}'s output does not fit {output_type} ({problems}); {then}")
        self.capability = capability
        self.output_type = output_type
        self.fields = fields
        self.invocation: Any = invocation  # a `PaidInvocation` (motet.agents), or None


class AgentCallFailed(AgentError):
    """An agent could not be reached, failed, or sent an answer that is not valid; `status` is the HTTP code
    when there was one."""

    def __init__(self, agent: str, problem: str, status: int | None = None) -> None:
        super().__init__(f"call to agent {agent} failed: {problem}")
        self.agent = agent
        self.problem = problem
        self.status = status


class AgentTimeout(AgentCallFailed, TimeoutError):
    """An agent's stream stalled past the client's idle timeout, or the call passed its deadline."""


class AgentConnectionLost(AgentCallFailed):
    """The connection to an agent failed (refused, reset, closed mid-answer) before its answer arrived. The
    agent may have delivered the call anyway: asking again with the same idempotency key gets that answer, with
    no second run or charge (the payer does this once before failing over)."""


class AgentLimitExceeded(AgentCallFailed):
    """An agent sent more than the client accepts: bytes, stream events, tokens beyond the card's bound, or a
    price above what the card's pricing charges for the usage it reports. Nothing is owed for it."""


class ModelRuntimeError(MotetError):
    """Something went wrong running a model."""


class ModelNotFound(ModelRuntimeError, LookupError):
    """No model file at the path, an unknown bundled model name, or its package is not installed."""

    def __init__(self, model: str, problem: str) -> None:
        super().__init__(f"cannot load model {model!r}: {problem}")
        self.model = model
        self.problem = problem


class InvalidRuntimeArgument(ModelRuntimeError, ValueError):
    """A runtime set up wrongly (no model or endpoint, an unknown provider, a limit that is not positive) or
    called with malformed messages; the message names the argument and what to pass."""


class InvalidSampling(ModelRuntimeError, ValueError):
    """A `Sampling` field no runtime can honour (`max_tokens=0`, a negative temperature), or more than this
    runtime accepts; `field` names it."""

    def __init__(self, field: str, value: object, problem: str) -> None:
        super().__init__(f"{field} is {value!r}: {problem}")
        self.field = field
        self.value = value
        self.problem = problem


class ContextOverflow(ModelRuntimeError, ValueError):
    """The prompt plus `max_tokens` does not fit the model's context window; raised before generating."""

    def __init__(self, prompt_tokens: int, max_tokens: int, n_ctx: int) -> None:
        super().__init__(
            f"prompt of {prompt_tokens} tokens + max_tokens {max_tokens} = {prompt_tokens + max_tokens} "
            f"exceeds the context window of {n_ctx} tokens: shorten the messages, lower max_tokens, "
            f"or load the model with a larger n_ctx"
        )
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.n_ctx = n_ctx


class InvalidSchema(ModelRuntimeError, ValueError):
    """A schema is not a JSON Schema object (or pydantic model) the runtime can constrain output with."""

    def __init__(self, schema: object, problem: str) -> None:
        shown = repr(schema)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"invalid output schema {shown}: {problem}")
        self.schema = schema
        self.problem = problem


class InvalidModelOutput(ModelRuntimeError, ValueError):
    """Output that a schema asked for did not parse as JSON or did not validate; `text` is what came back;
    `cut_off` when generation stopped at `max_tokens` before the answer was complete."""

    def __init__(self, text: str, problem: str, *, cut_off: bool = False) -> None:
        shown = text if len(text) <= 80 else text[:77] + "..."
        super().__init__(f"model output {shown!r} is not valid: {problem}")
        self.text = text
        self.problem = problem
        self.cut_off = cut_off


class EndpointError(ModelRuntimeError):
    """An OpenAI-compatible endpoint did not deliver a usable answer; `endpoint` is its base URL."""

    def __init__(self, endpoint: str, problem: str) -> None:
        super().__init__(f"endpoint {endpoint}: {problem}")
        self.endpoint = endpoint
        self.problem = problem


class EndpointUnreachable(EndpointError, ConnectionError):
    """Nothing answers at the endpoint's base URL (refused, DNS, TLS)."""


class EndpointTimeout(EndpointError, TimeoutError):
    """The endpoint sent no response headers, fell silent mid-stream, or overran the whole call's deadline.

    `phase` is `"headers"`, `"stream"` or `"call"`; `seconds` is the bound that was exceeded.
    """

    def __init__(self, endpoint: str, phase: str, seconds: float) -> None:
        what = {
            "headers": f"sent no response within {seconds:g} s (idle_timeout)",
            "stream": f"sent nothing for {seconds:g} s in the middle of its answer (idle_timeout)",
            "call": f"did not finish its answer within {seconds:g} s (timeout)",
        }[phase]
        super().__init__(endpoint, f"{what}; raise the bound or use another endpoint")
        self.phase = phase
        self.seconds = seconds


class EndpointLimitExceeded(EndpointError):
    """The endpoint sent more than the runtime accepts: `limit` is `"max_response_bytes"` or `"max_tokens"`."""

    def __init__(self, endpoint: str, limit: str, bound: int, unit: str) -> None:
        super().__init__(
            endpoint,
            f"sent more than {limit}={bound:,} {unit}; the answer was dropped "
            f"(a misbehaving endpoint, or raise {limit})",
        )
        self.limit = limit
        self.bound = bound


class EndpointHTTPError(EndpointError):
    """The endpoint answered with an HTTP error status; `status` is the code, `detail` its message."""

    def __init__(self, endpoint: str, status: int, detail: str) -> None:
        hint = {
            401: "check the API key (MOTET_ENDPOINT_API_KEY or the preset's variable)",
            403: "check the API key and that it may use this model",
            404: "check the base URL (it usually ends in /v1) and the model name",
            429: "the endpoint is rate limiting: wait, or use another endpoint",
        }.get(status, "the endpoint refused or failed the call")
        shown = detail if len(detail) <= 200 else detail[:197] + "..."
        super().__init__(endpoint, f"HTTP {status}: {shown} ({hint})")
        self.status = status
        self.detail = detail


class EndpointProtocolError(EndpointError):
    """The endpoint's body is not an OpenAI chat completion: not JSON, or JSON of the wrong shape."""
