"""Runtimes without a model, for fast tests of everything above the runtimes.

`ScriptedRuntime` answers with a list of responses in order; `FunctionRuntime` asks a function. Both behave
like a real runtime where callers can tell: tokens are words, `max_tokens` cuts the answer (finish reason
`length`), stop sequences end it, prompts that cannot fit `n_ctx` raise `ContextOverflow` before anything
is answered, `schema` output is parsed (and validated for pydantic models), and `stream()` yields the answer
word by word. Every call is recorded in `calls`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from motet.errors import ContextOverflow
from motet.runtimes._protocol import (
    Completion,
    FinishReason,
    Message,
    Messages,
    ModelRef,
    Schema,
    StreamEvent,
    TextDelta,
    Usage,
    check_sampling,
    to_messages,
    to_stop_list,
)
from motet.runtimes._schema import OutputSchema

Response: TypeAlias = str | dict[str, Any]
"""A string is the answer's text; a dict is answered as its JSON text."""

_RUNTIME_VERSION = "1"


@dataclass(frozen=True)
class CallInfo:
    """What a test runtime was asked in one call.

    Example:
        >>> info = CallInfo((Message("user", "Hi"),), 16, 0.0, None, (), None, 0)
        >>> info.max_tokens
        16
    """

    messages: tuple[Message, ...]
    max_tokens: int
    temperature: float
    seed: int | None
    stop: tuple[str, ...]
    schema: dict[str, Any] | None
    """The JSON Schema asked for (a pydantic model arrives converted), or None."""
    index: int
    """0 for the runtime's first call, then 1, 2…"""


@dataclass(frozen=True)
class _Answer:
    info: CallInfo
    schema: OutputSchema | None
    text: str
    usage: Usage
    finish: FinishReason
    latency: float


class _TestRuntime:
    def __init__(self, *, model: str, sha256: str, n_ctx: int) -> None:
        self.n_ctx = n_ctx
        self.model_ref = ModelRef("test", _RUNTIME_VERSION, model, sha256, "none")
        self.calls: list[CallInfo] = []

    async def complete(
        self,
        messages: Messages,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
        schema: Schema | None = None,
    ) -> Completion:
        """Answer one call; see `Runtime.complete`."""
        answer = await self._answer(messages, max_tokens, temperature, seed, stop, schema)
        return self._completion(answer)

    async def stream(
        self,
        messages: Messages,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
        schema: Schema | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Answer as `complete()` does, one word per `TextDelta`, then the `Completion`."""
        answer = await self._answer(messages, max_tokens, temperature, seed, stop, schema)
        for piece in _words(answer.text):
            yield TextDelta(piece)
        yield self._completion(answer)

    async def _respond(self, info: CallInfo) -> Response:
        raise NotImplementedError

    async def _answer(
        self,
        messages: Messages,
        max_tokens: int,
        temperature: float,
        seed: int | None,
        stop: str | Sequence[str] | None,
        schema: Schema | None,
    ) -> _Answer:
        check_sampling(max_tokens, temperature)
        normalised = to_messages(messages)
        stops = to_stop_list(stop)
        output_schema = OutputSchema.of(schema)
        prompt_tokens = sum(len(m.content.split()) for m in normalised)
        if prompt_tokens + max_tokens > self.n_ctx:
            raise ContextOverflow(prompt_tokens, max_tokens, self.n_ctx)
        info = CallInfo(
            normalised,
            max_tokens,
            float(temperature),
            seed,
            stops,
            output_schema.json_schema if output_schema is not None else None,
            len(self.calls),
        )
        self.calls.append(info)
        started = time.perf_counter()
        response = await self._respond(info)
        text = response if isinstance(response, str) else json.dumps(response)
        text, finish = _shape(text, stops, max_tokens)
        usage = Usage(prompt_tokens, len(text.split()))
        return _Answer(info, output_schema, text, usage, finish, time.perf_counter() - started)

    def _completion(self, answer: _Answer) -> Completion:
        parsed = answer.schema.parse(answer.text, answer.finish) if answer.schema is not None else None
        return Completion(answer.text, parsed, answer.usage, answer.finish, answer.latency, self.model_ref)


class ScriptedRuntime(_TestRuntime):
    """Answers each call with the next response of a script.

    Example:
        >>> import asyncio
        >>> runtime = ScriptedRuntime(["Hello there.", {"keywords": ["cat", "mat"]}])
        >>> asyncio.run(runtime.complete("Greet me.")).text
        'Hello there.'
        >>> asyncio.run(runtime.complete("Keywords?", schema={"type": "object"})).parsed
        {'keywords': ['cat', 'mat']}
    """

    def __init__(self, responses: Sequence[Response], *, n_ctx: int = 2048) -> None:
        script = json.dumps(list(responses), sort_keys=True, default=repr)
        super().__init__(model="scripted", sha256=hashlib.sha256(script.encode()).hexdigest(), n_ctx=n_ctx)
        self._responses = list(responses)

    @property
    def remaining(self) -> int:
        """Responses not yet given."""
        return len(self._responses) - len(self.calls)

    async def _respond(self, info: CallInfo) -> Response:
        if info.index >= len(self._responses):
            raise IndexError(
                f"ScriptedRuntime has no response for call {info.index + 1}: its script has "
                f"{len(self._responses)}; add responses to the script"
            )
        return self._responses[info.index]


ResponseFunction: TypeAlias = Callable[[tuple[Message, ...], CallInfo], Response | Awaitable[Response]]


class FunctionRuntime(_TestRuntime):
    """Answers each call with what `fn(messages, info)` returns; `fn` may be sync or async.

    Example:
        >>> import asyncio
        >>> runtime = FunctionRuntime(lambda messages, info: messages[-1].content.upper())
        >>> asyncio.run(runtime.complete("shout this")).text
        'SHOUT THIS'
    """

    def __init__(self, fn: ResponseFunction, *, n_ctx: int = 2048) -> None:
        name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
        super().__init__(
            model=f"function:{name}", sha256=hashlib.sha256(name.encode()).hexdigest(), n_ctx=n_ctx
        )
        self._fn = fn

    async def _respond(self, info: CallInfo) -> Response:
        result = self._fn(info.messages, info)
        if inspect.isawaitable(result):
            return await result
        return result


def _words(text: str) -> list[str]:
    """`text` cut before each run of whitespace that precedes a word; the pieces join back to `text`."""
    pieces = re.findall(r"\s*\S+", text)
    rest = text[sum(len(piece) for piece in pieces) :]
    if rest:
        if pieces:
            pieces[-1] += rest
        else:
            pieces.append(rest)
    return pieces


def _shape(text: str, stops: tuple[str, ...], max_tokens: int) -> tuple[str, FinishReason]:
    """What a model would have written: up to `max_tokens` words, ended early by a stop sequence."""
    words = _words(text)
    kept = "".join(words[:max_tokens])
    cuts = [kept.index(stop) for stop in stops if stop in kept]
    if cuts:
        return kept[: min(cuts)], "stop"
    return kept, "length" if len(words) > max_tokens else "stop"
