"""The one async interface every runtime implements, and the records it returns.

A runtime turns chat messages into a `Completion`: the text, the parsed JSON when a schema was asked for,
token usage, why generation stopped, how long it took, and exactly which model produced it (`ModelRef`).
`stream()` yields the same completion piece by piece: `TextDelta`s, then the `Completion` itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias, cast, get_args, runtime_checkable

from pydantic import BaseModel, JsonValue

from motet.errors import InvalidRuntimeArgument, InvalidSampling

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length"]
"""`stop`: the model ended its answer or hit a stop sequence; `length`: it ran into `max_tokens`."""

_ROLES: frozenset[str] = frozenset(get_args(Role))


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message.

    Example:
        >>> Message("user", "Summarise: the cat sat on the mat.")
        Message(role='user', content='Summarise: the cat sat on the mat.')
    """

    role: Role
    content: str


MessageLike: TypeAlias = Message | Mapping[str, str]
Messages: TypeAlias = str | Sequence[MessageLike]
"""A plain string is one user message; otherwise a sequence of `Message`s or `{"role", "content"}` dicts."""

Schema: TypeAlias = Mapping[str, Any] | type[BaseModel]
"""A JSON Schema object, or a pydantic model class (converted with `model_json_schema()`)."""


def to_messages(messages: Messages) -> tuple[Message, ...]:
    """Normalise what callers pass as `messages`; raises `ValueError` or `TypeError` naming the bad item.

    Example:
        >>> to_messages([{"role": "system", "content": "Be brief."}, Message("user", "Hi")])[0].role
        'system'
    """
    if isinstance(messages, str):
        return (Message("user", messages),)
    result: list[Message] = []
    for index, item in enumerate(messages):
        role: object
        content: object
        if isinstance(item, Message):
            role, content = item.role, item.content
        elif isinstance(item, Mapping):
            role, content = item.get("role"), item.get("content")
        else:
            raise TypeError(f"message {index} is {item!r}: pass a Message or a dict with role and content")
        if role not in _ROLES:
            raise InvalidRuntimeArgument(f"message {index} has role {role!r}: use one of {sorted(_ROLES)}")
        if not isinstance(content, str):
            raise TypeError(f"message {index} has content {content!r}: content must be a string")
        result.append(Message(cast(Role, role), content))
    if not result:
        raise InvalidRuntimeArgument("messages is empty: pass at least one message")
    return tuple(result)


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens read and written by one call.

    Example:
        >>> Usage(prompt_tokens=12, completion_tokens=30).total_tokens
        42
    """

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False
    """True when the runtime could not count exactly (a stream from an endpoint that sends no usage)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ModelRef:
    """Exactly which model answered: enough to reproduce the call or to publish what an agent runs.

    Example:
        >>> ref = ModelRef("llama.cpp", "0.3.36", "SmolLM2-135M-Instruct", "ab" * 32, "Q4_1")
        >>> str(ref)
        'SmolLM2-135M-Instruct Q4_1 (llama.cpp 0.3.36, sha256 abababababab…)'
    """

    runtime: str
    """The engine: `llama.cpp`, `openai-endpoint`, or `test` for the doubles in `motet.runtimes.testing`."""
    runtime_version: str
    model: str
    sha256: str
    """Hex sha256 of the weights file (for llama.cpp, the GGUF file); `unknown` when an endpoint does not
    say, since a remote endpoint's weights cannot be checked."""
    quantization: str
    """`Q4_1`, `Q4_K_M`, `F16`…, or `unknown`."""
    endpoint: str = ""
    """The base URL that served the call, for a remote runtime; empty for an in-process model."""

    def __str__(self) -> str:
        where = f" at {self.endpoint}" if self.endpoint else ""
        return (
            f"{self.model} {self.quantization} ({self.runtime} {self.runtime_version}{where}, "
            f"sha256 {self.sha256[:12]}…)"
        )


@dataclass(frozen=True, slots=True)
class Completion:
    """The result of one call, and the last event of a stream.

    Example:
        >>> ref = ModelRef("test", "1", "scripted", "00" * 32, "none")
        >>> done = Completion('{"keywords": ["cat"]}', {"keywords": ["cat"]}, Usage(5, 3), "stop", 0.01, ref)
        >>> done.parsed
        {'keywords': ['cat']}
    """

    text: str
    parsed: JsonValue
    """The JSON value of `text` when a schema was given (parsed and validated), else None."""
    usage: Usage
    finish_reason: FinishReason
    latency_s: float
    """Seconds spent generating, not counting the wait for the model or loading it."""
    model_ref: ModelRef


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of generated text; a stream's deltas join up to its `Completion.text`.

    Example:
        >>> "".join(d.text for d in [TextDelta("Hello"), TextDelta(" world")])
        'Hello world'
    """

    text: str


StreamEvent: TypeAlias = TextDelta | Completion
"""What `Runtime.stream()` yields: `TextDelta`s, then exactly one `Completion`."""


@dataclass(frozen=True, slots=True)
class Sampling:
    """How a runtime generates: how much, how randomly, reproducibly or not, and where to stop.

    `temperature=0` is greedy decoding; a `seed` asks for a reproducible call (a runtime that can repeat
    itself then does, whatever it ran before). `stop` ends the answer before the first of its strings (a
    single string is one stop sequence). A field no runtime can honour raises `InvalidSampling` naming it.

    Example:
        >>> Sampling(max_tokens=64, seed=1, stop="END")
        Sampling(max_tokens=64, temperature=0.0, seed=1, stop=('END',))
        >>> Sampling(max_tokens=0)
        Traceback (most recent call last):
        ...
        motet.errors.InvalidSampling: max_tokens is 0: pass a positive integer
    """

    max_tokens: int = 256
    """The most tokens generated; the prompt plus this must fit the model's context window."""
    temperature: float = 0.0
    seed: int | None = None
    stop: Sequence[str] = ()
    """Stored as a tuple of non-empty strings."""

    def __post_init__(self) -> None:
        if not _is_int(self.max_tokens) or self.max_tokens < 1:
            raise InvalidSampling("max_tokens", self.max_tokens, "pass a positive integer")
        if (
            not (_is_int(self.temperature) or isinstance(self.temperature, float))
            or not self.temperature >= 0
        ):
            raise InvalidSampling("temperature", self.temperature, "pass 0 (greedy) or more")
        if self.seed is not None and not _is_int(self.seed):
            raise InvalidSampling("seed", self.seed, "pass an integer or None")
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        for item in stop:
            if not isinstance(item, str) or not item:
                raise InvalidSampling("stop", item, "a stop sequence is a non-empty string")
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "stop", stop)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@runtime_checkable
class Runtime(Protocol):
    """Runs a model: one call at a time per loaded model, without blocking the event loop.

    `sampling` says how to generate (default `Sampling()`: up to 256 tokens, greedy, unseeded).
    `schema` constrains the output to JSON matching it, and `Completion.parsed` holds the value.
    A call whose prompt plus `sampling.max_tokens` cannot fit the context raises `ContextOverflow` before
    generating.

    Example:
        >>> from motet.runtimes.testing import ScriptedRuntime
        >>> import asyncio
        >>> runtime: Runtime = ScriptedRuntime(["Paris."])
        >>> asyncio.run(runtime.complete("Capital of France?", Sampling(max_tokens=8))).text
        'Paris.'
    """

    async def complete(
        self, messages: Messages, sampling: Sampling | None = None, *, schema: Schema | None = None
    ) -> Completion:
        """Generate one answer to `messages`."""
        ...

    def stream(
        self, messages: Messages, sampling: Sampling | None = None, *, schema: Schema | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Generate as `complete()` does, yielding `TextDelta`s and then the `Completion`.

        Closing the iterator early (or cancelling its consumer) stops generation.
        """
        ...
