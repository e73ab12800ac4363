"""What motet's runtimes share under the `Runtime` protocol: one normalised `Request` per call, and a base
class whose `complete()` and `stream()` build it once, so each runtime only says how it generates.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

from motet.errors import ContextOverflow
from motet.runtimes._protocol import (
    Completion,
    FinishReason,
    Message,
    Messages,
    ModelRef,
    Sampling,
    Schema,
    StreamEvent,
    Usage,
    to_messages,
)
from motet.runtimes._schema import OutputSchema


@dataclass(frozen=True, slots=True)
class Request:
    """One call as a runtime receives it: messages normalised, sampling settled, schema compiled.

    Example:
        >>> request = Request.of("Hi", None, None)
        >>> request.chat(), request.sampling.max_tokens
        ([{'role': 'user', 'content': 'Hi'}], 256)
    """

    messages: tuple[Message, ...]
    sampling: Sampling
    schema: OutputSchema | None

    @classmethod
    def of(cls, messages: Messages, sampling: Sampling | None, schema: Schema | None) -> Request:
        """Check and normalise what a caller passed; raises before any work is queued."""
        if sampling is None:
            sampling = Sampling()
        elif not isinstance(sampling, Sampling):
            raise TypeError(f"sampling is {sampling!r}: pass a Sampling, e.g. Sampling(max_tokens=64)")
        return cls(to_messages(messages), sampling, OutputSchema.of(schema))

    def chat(self) -> list[dict[str, str]]:
        """The messages as OpenAI-style `{"role", "content"}` dicts."""
        return [{"role": m.role, "content": m.content} for m in self.messages]

    def check_fits(self, prompt_tokens: int, n_ctx: int) -> None:
        """Raise `ContextOverflow` when the prompt plus `max_tokens` cannot fit `n_ctx` tokens."""
        if prompt_tokens + self.sampling.max_tokens > n_ctx:
            raise ContextOverflow(prompt_tokens, self.sampling.max_tokens, n_ctx)

    def completion(
        self, text: str, usage: Usage, finish: FinishReason, latency_s: float, model_ref: ModelRef
    ) -> Completion:
        """The call's `Completion`, its text parsed (and validated) when a schema was asked for."""
        parsed = self.schema.parse(text, finish) if self.schema is not None else None
        return Completion(text, parsed, usage, finish, latency_s, model_ref)


class RuntimeBase(ABC):
    """A `Runtime` that implements `_complete()` and `_stream()` on a `Request`."""

    async def complete(
        self, messages: Messages, sampling: Sampling | None = None, *, schema: Schema | None = None
    ) -> Completion:
        """Generate one answer; see `Runtime.complete`."""
        return await self._complete(Request.of(messages, sampling, schema))

    async def stream(
        self, messages: Messages, sampling: Sampling | None = None, *, schema: Schema | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        """Generate as `complete()` does, yielding `TextDelta`s and then the `Completion`; see `Runtime.stream`."""
        request = Request.of(messages, sampling, schema)
        async with aclosing(self._stream(request)) as events:  # closing this stream closes the runtime's
            async for event in events:
                yield event

    @abstractmethod
    async def _complete(self, request: Request) -> Completion: ...

    @abstractmethod
    def _stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]: ...


def finish_reason(reason: object) -> FinishReason:
    """An engine's finish reason in the protocol's two words: `length` stays, anything else is `stop`."""
    return "length" if reason == "length" else "stop"
