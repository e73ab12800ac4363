"""Defining agents: an `Agent` is a name, a price, a runtime and typed capabilities.

A capability is either a prompt (instructions + a template over the typed input, answered by the agent's
runtime with output constrained to the output model's JSON Schema) or any async Python function from the
input model to the output model. Either way its input and output are pydantic models, so the card publishes
their JSON Schemas and every call is validated on the way in and on the way out.

Example:
    >>> from pydantic import BaseModel
    >>> class Text(BaseModel):
    ...     text: str
    >>> class Count(BaseModel):
    ...     words: int
    >>> agent = Agent("counter", price=10)
    >>> @agent.capability("count_words", description="Count the words of a text.")
    ... async def count(request: Text, ctx: CallContext) -> Count:
    ...     return Count(words=len(request.text.split()))
    >>> import asyncio
    >>> asyncio.run(agent.invoke("count_words", {"text": "the cat sat"})).output
    {'words': 3}
"""

from __future__ import annotations

import dataclasses
import inspect
import string
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, get_type_hints

from pydantic import BaseModel, JsonValue, ValidationError

from motet._json import loads
from motet.agents._cards import AgentCard
from motet.agents._verifiable import VerifiableProfile, render_messages, schema_for
from motet.chain import NATIVE_ASSET
from motet.errors import InvalidAgentDefinition, InvalidAgentInput, UnknownCapability
from motet.registry import validate_capability_name
from motet.runtimes import Completion, Message, ModelRef, Runtime, Sampling, Schema, TextDelta, Usage

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from motet.registry import Registry

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)
Handler = Callable[[In, "CallContext"], Awaitable[Out]]

MAX_INPUT_BYTES = 256 * 1024
"""The largest JSON input a capability accepts."""

_NO_MODEL = ModelRef("python", "-", "function", "unknown", "none")
_CHECKABLE = ModelRef("llama.cpp", "-", "check", "0" * 64, "none")  # only to validate a profile's other parts


@dataclass
class CallContext:
    """What a capability's handler gets besides its input: the agent's runtime, and a tally of the call.

    `generate()` is the typed way to use the model; every runtime call made through the context adds to the
    call's `usage` (what per-token pricing charges) and sets its `model_ref` (what the receipt names).
    `on_token`, when set, receives streamed text as it is generated.
    """

    runtime: Runtime | None
    usage: Usage = field(default_factory=lambda: Usage(0, 0))
    model_ref: ModelRef = _NO_MODEL
    on_token: Callable[[str], None] | None = None
    text: str | None = None
    """The raw text of the last completion `generate()` parsed: what a verifiable capability's receipt
    commits to."""

    async def generate(
        self,
        messages: str | Sequence[Message | dict[str, str]],
        output: type[Out],
        sampling: Sampling | None = None,
        *,
        schema: Schema | None = None,
    ) -> Out:
        """Ask the runtime for JSON matching `output`, streamed to `on_token` when someone is listening.

        `sampling` defaults to `Sampling(seed=0)`: greedy and reproducible. `schema`, when given, is what the
        output is constrained to instead of `output`'s own JSON Schema (a narrower one, such as an extractive
        capability's `schema_for`); the answer is still validated by `output`."""
        if self.runtime is None:
            raise RuntimeError("this agent has no runtime: pass runtime= to Agent to use generate()")
        sampling = sampling if sampling is not None else Sampling(seed=0)
        done: Completion | None = None
        if self.on_token is None:
            done = await self.runtime.complete(
                messages, sampling, schema=output if schema is None else schema
            )
        else:
            async for event in self.runtime.stream(
                messages, sampling, schema=output if schema is None else schema
            ):
                if isinstance(event, TextDelta):
                    self.on_token(event.text)
                else:
                    done = event
        assert done is not None
        self.usage = Usage(
            self.usage.prompt_tokens + done.usage.prompt_tokens,
            self.usage.completion_tokens + done.usage.completion_tokens,
            self.usage.estimated or done.usage.estimated,
        )
        self.model_ref = done.model_ref
        self.text = done.text
        return output.model_validate(done.parsed)


@dataclass(frozen=True)
class PromptParts:
    """What a verifiable prompt capability publishes besides the model: bound to the runtime's `ModelRef`
    by `Capability.profile`, it is the card's `VerifiableProfile`."""

    instructions: str
    template: str | None
    output_schema: dict[str, Any]
    max_tokens: int
    words_from: str | None = None


@dataclass(frozen=True)
class Capability(Generic[In, Out]):
    """One typed thing an agent does: `handler(input, ctx) -> output`."""

    name: str
    description: str
    input: type[In]
    output: type[Out]
    handler: Handler[In, Out] = field(repr=False)
    examples: tuple[tuple[dict[str, JsonValue], dict[str, JsonValue]], ...] = ()
    max_tokens: int = 256
    """The most tokens one call generates: bounds per-token pricing's worst case."""
    verifiable: PromptParts | None = None
    """Set for a prompt capability defined with `verifiable=True`; Python functions are never verifiable."""

    def profile(self, model_ref: ModelRef | None) -> VerifiableProfile | None:
        """The `VerifiableProfile` of this capability run on `model_ref`; None when it is not verifiable.

        Raises `InvalidAgentDefinition` when the model is unknown or its weights' sha256 is not known: such a
        model cannot be re-run."""
        if self.verifiable is None:
            return None
        if model_ref is None or len(model_ref.sha256) != 64:
            shown = "no model" if model_ref is None else f"{model_ref} (weights unknown)"
            raise InvalidAgentDefinition(
                f"capability {self.name!r} is verifiable but runs on {shown}: serve it on a runtime whose "
                "weights' sha256 is known (LlamaCppRuntime), or define it without verifiable=True"
            )
        return VerifiableProfile.bind(model_ref, **dataclasses.asdict(self.verifiable))

    def parse_input(self, value: object) -> In:
        """Validate `value` against the input model; raises `InvalidAgentInput` naming the first bad field."""
        try:
            if isinstance(value, self.input):
                return value
            if isinstance(value, str | bytes):
                if len(value) > MAX_INPUT_BYTES:
                    raise InvalidAgentInput(self.name, "input", f"more than {MAX_INPUT_BYTES:,} bytes")
                return self.input.model_validate_json(value)
            return self.input.model_validate(value)
        except ValidationError as exc:
            raise InvalidAgentInput(self.name, *_first_error(exc)) from exc


@dataclass(frozen=True)
class Invocation:
    """One call of a capability: its validated output, the tokens it used and the model that answered.

    `Agent.invoke` returns one; `AgentClient.invoke` returns a `PaidInvocation`, which adds the price, the
    agent's receipt and what the payer owes.
    """

    capability: str
    output: dict[str, JsonValue]
    usage: Usage
    model_ref: ModelRef
    latency_s: float
    text: str | None = field(default=None, kw_only=True)
    """The raw generated text the output was parsed from, for a verifiable capability (else None)."""


async def run_capability(
    capability: Capability[Any, Any],
    request: BaseModel,
    runtime: Runtime | None,
    *,
    on_token: Callable[[str], None] | None = None,
) -> Invocation:
    """Call the handler on an already validated input, and validate what it answers."""
    ctx = CallContext(runtime, on_token=on_token)
    started = time.perf_counter()
    answer = await capability.handler(request, ctx)
    output = capability.output.model_validate(
        answer.model_dump() if isinstance(answer, BaseModel) else answer
    )
    latency = time.perf_counter() - started
    value: dict[str, JsonValue] = output.model_dump(mode="json")
    text: str | None = None
    if capability.verifiable is not None:
        # The output of a verifiable capability is the generated JSON itself (checked by the output model
        # above, not rewritten by it): a checker compares it with the text the receipt commits to.
        text = ctx.text
        if text is None:
            raise RuntimeError(f"verifiable capability {capability.name!r} answered without generating text")
        value = loads(text)
    return Invocation(capability.name, value, ctx.usage, ctx.model_ref, latency, text=text)


class Agent:
    """A named agent: a price per call (and optionally per 1,000 tokens), a runtime, and capabilities.

    Args:
        name: shown in the card and the registry's listing.
        description: what the agent is good at, for people choosing agents.
        runtime: the model its prompt capabilities run on (`LlamaCppRuntime`, `OpenAIEndpointRuntime`...).
        price: per call, in the smallest unit of `asset` (wei for the native coin).
        price_per_1k_tokens: added per 1,000 tokens read and written, rounded up.
        asset: `NATIVE_ASSET` or an ERC-20 address.
        max_prompt_tokens: with a per-token price, the prompt tokens one call is charged for at most: the card
            states each capability's `maxTokens` as this plus the capability's `max_tokens`, and payers refuse
            an answer that reports more.
    """

    def __init__(
        self,
        name: str,
        *,
        description: str = "",
        runtime: Runtime | None = None,
        price: int = 0,
        price_per_1k_tokens: int = 0,
        asset: str = NATIVE_ASSET,
        max_prompt_tokens: int = 2048,
    ) -> None:
        if not name or len(name) > 64:
            raise InvalidAgentDefinition(f"agent name {name!r} must be 1 to 64 characters")
        if price < 0 or price_per_1k_tokens < 0:
            raise InvalidAgentDefinition("prices are amounts of the asset: pass 0 or more")
        self.name = name
        self.description = description
        self.runtime = runtime
        self.price = price
        self.price_per_1k_tokens = price_per_1k_tokens
        self.asset = asset
        self.max_prompt_tokens = max_prompt_tokens
        self.capabilities: dict[str, Capability[Any, Any]] = {}

    def __repr__(self) -> str:
        return f"Agent({self.name!r}, capabilities={list(self.capabilities)})"

    def add(self, capability: Capability[Any, Any]) -> Capability[Any, Any]:
        validate_capability_name(capability.name)
        if capability.name in self.capabilities:
            raise InvalidAgentDefinition(f"agent {self.name!r} already has a capability {capability.name!r}")
        self.capabilities[capability.name] = capability
        return capability

    def capability(
        self,
        name: str | None = None,
        *,
        description: str | None = None,
        examples: Sequence[tuple[dict[str, JsonValue], dict[str, JsonValue]]] = (),
        max_tokens: int = 256,
    ) -> Callable[[Handler[In, Out]], Handler[In, Out]]:
        """Decorate `async def fn(input: InModel, ctx: CallContext) -> OutModel` as a capability.

        The input and output models come from the function's annotations; the description from its
        docstring unless given.
        """

        def register(handler: Handler[In, Out]) -> Handler[In, Out]:
            hints = get_type_hints(handler)
            parameters = list(inspect.signature(handler).parameters)
            input_type = hints.get(parameters[0]) if parameters else None
            output_type = hints.get("return")
            for role, found in (("input", input_type), ("output", output_type)):
                if not (isinstance(found, type) and issubclass(found, BaseModel)):
                    raise InvalidAgentDefinition(
                        f"capability {handler.__name__}: annotate its {role} with a pydantic model class"
                    )
            self.add(
                Capability(
                    name=name or handler.__name__,
                    description=description or inspect.getdoc(handler) or "",
                    input=input_type,  # type: ignore[arg-type]
                    output=output_type,  # type: ignore[arg-type]
                    handler=handler,
                    examples=tuple(examples),
                    max_tokens=max_tokens,
                )
            )
            return handler

        return register

    def prompt(
        self,
        name: str,
        *,
        input: type[In],
        output: type[Out],
        instructions: str,
        template: str | None = None,
        description: str = "",
        max_tokens: int = 256,
        temperature: float = 0.0,
        examples: Sequence[tuple[dict[str, JsonValue], dict[str, JsonValue]]] = (),
        verifiable: bool = False,
        words_from: str | None = None,
    ) -> Capability[In, Out]:
        """Add a capability answered by the runtime: `instructions` as the system message, `template`
        (`str.format` over the input's fields; default: the input as canonical JSON) as the user message, and
        output constrained to `output`'s JSON Schema.

        `verifiable=True` publishes everything needed to re-run it (a `VerifiableProfile` in the card: the
        runtime's model, instructions, template, output schema, `max_tokens`, greedy sampling) and makes its
        receipts commit to that profile and to the raw generated text, so that a checker holding the same
        weights can tell whether the answer came from them. It must be greedy (`temperature` 0), and its
        template may use plain `{field}` placeholders only.

        `words_from` names a text field of the input and makes the capability extractive: every string of the
        output is one of that field's words (`input_words`: distinct words of 3+ characters, common words left
        out), enforced by the grammar of each call. A verifiable profile publishes it, and a checker derives
        the same grammar from the same input.
        """
        if words_from is not None and words_from not in input.model_fields:
            raise InvalidAgentDefinition(
                f"words_from={words_from!r} of {name!r} is not a field of {input.__name__}: name one of "
                f"{sorted(input.model_fields)}"
            )
        if template is not None:
            unknown = {
                field_name
                for _, field_name, _, _ in string.Formatter().parse(template)
                if field_name and field_name not in input.model_fields
            }
            if unknown:
                raise InvalidAgentDefinition(
                    f"template of {name!r} names {sorted(unknown)}, not fields of {input.__name__}"
                )
        sampling = Sampling(max_tokens=max_tokens, temperature=temperature, seed=0)
        parts: PromptParts | None = None
        if verifiable:
            if temperature != 0:
                raise InvalidAgentDefinition(
                    f"{name!r} is verifiable but has temperature {temperature}: a verifiable capability is "
                    "greedy (temperature 0), since a sampled answer cannot be re-run: drop temperature="
                )
            parts = PromptParts(instructions, template, output.model_json_schema(), max_tokens, words_from)
            try:  # the same checks its card's profile will pass
                VerifiableProfile.bind(_CHECKABLE, **dataclasses.asdict(parts))
            except ValidationError as exc:
                error = exc.errors(include_url=False)[0]
                where = ".".join(str(part) for part in error["loc"])
                raise InvalidAgentDefinition(
                    f"{name!r} cannot be verifiable: {where}: {error['msg']}"
                ) from exc

        async def answer(request: BaseModel, ctx: CallContext) -> BaseModel:
            # One rendering for every prompt capability: the one a verifiable profile's checker rebuilds.
            values = request.model_dump(mode="json")
            messages = render_messages(instructions, template, values, capability=name)
            if words_from is None:
                return await ctx.generate(messages, output, sampling)
            # The schema a verifiable profile's checker derives from the same input (`schema_for`).
            schema = schema_for(output.model_json_schema(), words_from, values, capability=name)
            return await ctx.generate(messages, output, sampling, schema=schema)

        capability: Capability[In, Out] = Capability(
            name=name,
            description=description or instructions,
            input=input,
            output=output,
            handler=answer,  # type: ignore[arg-type]
            examples=tuple(examples),
            max_tokens=max_tokens,
            verifiable=parts,
        )
        self.add(capability)
        return capability

    def card(
        self,
        url: str,
        *,
        signer: str,
        registrations: Sequence[dict[str, Any]] = (),
        model_ref: ModelRef | None = None,
    ) -> AgentCard:
        """The agent's card (ERC-8004 registration file) for an agent served at `url`, receipts signed by
        `signer`."""
        base = url.rstrip("/")
        return AgentCard.model_validate(
            {
                "name": self.name,
                "description": self.description,
                "services": [
                    {"name": "motet", "endpoint": f"{base}/invoke", "version": "1"},
                    {"name": "A2A", "endpoint": f"{base}/.well-known/agent-card.json", "version": "0.3.0"},
                ],
                "x402Support": True,
                "registrations": list(registrations),
                "capabilities": [
                    {
                        "name": capability.name,
                        "description": capability.description[:500],
                        "inputSchema": capability.input.model_json_schema(),
                        "outputSchema": capability.output.model_json_schema(),
                        "examples": [{"input": i, "output": o} for i, o in capability.examples],
                        **(
                            {"maxTokens": self.max_tokens_of(capability.name)}
                            if self.price_per_1k_tokens
                            else {}
                        ),
                        **(
                            {"verifiable": profile.to_json()}
                            if (profile := capability.profile(model_ref)) is not None
                            else {}
                        ),
                    }
                    for capability in self.capabilities.values()
                ],
                "pricing": {
                    "perCall": str(self.price),
                    "per1kTokens": str(self.price_per_1k_tokens),
                    "asset": self.asset,
                },
                "model": asdict(model_ref) if model_ref is not None else None,
                "signer": signer,
            }
        )

    async def register(
        self,
        registry: Registry,
        *,
        url: str,
        account: LocalAccount,
        stake: int = 0,
        model_ref: ModelRef | None = None,
        publish: Literal["auto", "data", "url"] = "auto",
    ) -> int:
        """Register this agent, served at `url` by `account`, with its capabilities, price and `stake` (in the
        smallest unit of the chain's coin: wei). Returns the agent's id.

        A coroutine, like every method of the agents layer that waits (on the chain, a model or the network):
        the transaction is sent off the event loop. The card goes on chain as a `data:` URI on the embedded
        chain (`publish="data"`), and as the URL of the server's `/.well-known/agent-registration.json`
        elsewhere (`publish="url"`). A served agent registers with `AgentServer.register`, which names the
        server's URL and model for you.
        """
        card = self.card(url, signer=account.address, model_ref=model_ref)
        if publish == "auto":
            publish = "data" if registry.chain.kind == "embedded" else "url"
        uri = (
            card.to_data_uri()
            if publish == "data"
            else f"{url.rstrip('/')}/.well-known/agent-registration.json"
        )
        return await registry.chain.off_loop(
            lambda: registry.register(
                uri,
                list(self.capabilities),
                self.price,
                payout=account.address,
                asset=self.asset,
                stake=stake,
                owner=account,
            )
        )

    def get(self, name: str) -> Capability[Any, Any]:
        found = self.capabilities.get(name)
        if found is None:
            raise UnknownCapability(name, list(self.capabilities))
        return found

    def price_of(self, usage: Usage) -> int:
        """What one call that used `usage` costs."""
        per_token = -(-self.price_per_1k_tokens * usage.total_tokens // 1000)
        return self.price + per_token

    def max_tokens_of(self, capability: str) -> int:
        """The most tokens one call to `capability` is charged for: `max_prompt_tokens` read plus the
        capability's `max_tokens` written (the card's `maxTokens` under a per-token price)."""
        return self.max_prompt_tokens + self.get(capability).max_tokens

    def worst_case_price(self, capability: str) -> int:
        """The most one call to `capability` can cost: its token bound at the per-token price."""
        return self.price_of(Usage(0, self.max_tokens_of(capability)))

    async def invoke(
        self, capability: str, input: object, *, on_token: Callable[[str], None] | None = None
    ) -> Invocation:
        """Run a capability here, unpaid: validate the input, call the handler, validate the output."""
        found = self.get(capability)
        return await run_capability(found, found.parse_input(input), self.runtime, on_token=on_token)


def _first_error(exc: ValidationError) -> tuple[str, str]:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "input"
    return where, error["msg"]
