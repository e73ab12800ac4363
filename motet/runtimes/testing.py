"""Runtimes without a model, for fast tests of everything above the runtimes.

`ScriptedRuntime` answers with a list of responses in order; `FunctionRuntime` asks a function. Both behave
like a real runtime where callers can tell: tokens are words, `Sampling.max_tokens` cuts the answer (finish
reason `length`), stop sequences end it, prompts that cannot fit `n_ctx` raise `ContextOverflow` before
anything is answered, `schema` output is parsed (and validated for pydantic models), and `stream()` yields
the answer word by word. Every call is recorded in `calls`. `deterministic_runtime()` answers the built-in
agents' capabilities with fixed, schema-valid output (the TUI's `MOTET_TUI_RUNTIME=function`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from motet.runtimes._base import Request, RuntimeBase
from motet.runtimes._protocol import (
    Completion,
    FinishReason,
    Message,
    ModelRef,
    Sampling,
    StreamEvent,
    TextDelta,
    Usage,
)

__all__ = [
    "CallInfo",
    "FunctionRuntime",
    "Response",
    "ResponseFunction",
    "ScriptedRuntime",
    "deterministic_runtime",
]

Response: TypeAlias = str | dict[str, Any]
"""A string is the answer's text; a dict is answered as its JSON text."""

_RUNTIME_VERSION = "1"


@dataclass(frozen=True)
class CallInfo:
    """What a test runtime was asked in one call.

    Example:
        >>> info = CallInfo((Message("user", "Hi"),), Sampling(max_tokens=16), None, 0)
        >>> info.sampling.max_tokens
        16
    """

    messages: tuple[Message, ...]
    sampling: Sampling
    schema: dict[str, Any] | None
    """The JSON Schema asked for (a pydantic model arrives converted), or None."""
    index: int
    """0 for the runtime's first call, then 1, 2…"""


@dataclass(frozen=True)
class _Answer:
    text: str
    usage: Usage
    finish: FinishReason
    latency: float


class _TestRuntime(RuntimeBase):
    def __init__(self, *, model: str, sha256: str, n_ctx: int) -> None:
        self.n_ctx = n_ctx
        self.model_ref = ModelRef("test", _RUNTIME_VERSION, model, sha256, "none")
        self.calls: list[CallInfo] = []

    async def _complete(self, request: Request) -> Completion:
        answer = await self._answer(request)
        return request.completion(answer.text, answer.usage, answer.finish, answer.latency, self.model_ref)

    async def _stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        answer = await self._answer(request)
        for piece in _words(answer.text):
            yield TextDelta(piece)
        yield request.completion(answer.text, answer.usage, answer.finish, answer.latency, self.model_ref)

    async def _respond(self, info: CallInfo) -> Response:
        raise NotImplementedError

    async def _answer(self, request: Request) -> _Answer:
        sampling = request.sampling
        prompt_tokens = sum(len(m.content.split()) for m in request.messages)
        request.check_fits(prompt_tokens, self.n_ctx)
        schema = request.schema.json_schema if request.schema is not None else None
        info = CallInfo(request.messages, sampling, schema, len(self.calls))
        self.calls.append(info)
        started = time.perf_counter()
        response = await self._respond(info)
        text = response if isinstance(response, str) else json.dumps(response)
        text, finish = _shape(text, sampling.stop, sampling.max_tokens)
        usage = Usage(prompt_tokens, len(text.split()))
        return _Answer(text, usage, finish, time.perf_counter() - started)


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


def _shape(text: str, stops: Sequence[str], max_tokens: int) -> tuple[str, FinishReason]:
    """What a model would have written: up to `max_tokens` words, ended early by a stop sequence."""
    words = _words(text)
    kept = "".join(words[:max_tokens])
    cuts = [kept.index(stop) for stop in stops if stop in kept]
    if cuts:
        return kept[: min(cuts)], "stop"
    return kept, "length" if len(words) > max_tokens else "stop"


def deterministic_runtime() -> FunctionRuntime:
    """Answers every built-in agent capability with fixed, schema-valid output, streamed word by word: for
    tests, screenshots and `MOTET_TUI_RUNTIME=function motet tui` (a fast TUI with no model).

    Example:
        >>> import asyncio
        >>> schema = {"type": "object", "properties": {"sentiment": {"type": "string"}}}
        >>> asyncio.run(deterministic_runtime().complete("Lovely!", schema=schema)).parsed
        {'sentiment': 'positive'}
    """
    return FunctionRuntime(_answer)


def _answer(messages: tuple[Message, ...], info: CallInfo) -> Response:
    """An answer that fits whichever built-in output schema `info` asks for, from the last message's words."""
    words = [w.strip(".,;:!?\"'") for w in messages[-1].content.split()]
    words = [w for w in words if w]
    fields = set((info.schema or {}).get("properties", {}))
    if "summary" in fields:
        return {"summary": "A new public library opened downtown and visitors praised it."}
    if "keywords" in fields:
        keywords = ["library", "reading", "children's", "membership", "downtown"]
        # An extractive capability's schema names the words it may choose (the input's): keep to them.
        allowed = ((info.schema or {})["properties"]["keywords"].get("items") or {}).get("enum")
        if allowed:
            keywords = [word for word in keywords if word in allowed] or list(allowed[:3])
        return {"keywords": keywords}
    if "sentiment" in fields:
        return {"sentiment": "positive"}
    if "translation" in fields:
        return {"translation": " ".join(words[:20])}
    if "strengths" in fields:
        return {"strengths": ["clear"], "weaknesses": ["short"]}
    if "answer" in fields:
        return {"answer": " ".join(words[:10])}
    return " ".join(words[:20])
