"""Any OpenAI-compatible chat endpoint (a DePIN GPU provider, vLLM, `llama_cpp.server`) through litellm.

A remote endpoint is not trusted to behave. Every call is bounded four ways, and each bound ends the call
with its own error: `idle_timeout` (no response headers, or a stream that falls silent: `EndpointTimeout`),
`timeout` for the whole call (`EndpointTimeout`), `max_response_bytes` read off the wire
(`EndpointLimitExceeded`), and `max_tokens` streamed back (`EndpointLimitExceeded`: the endpoint ignored
the limit it was given). Retries are off everywhere, in litellm and in the OpenAI client under it: motet's
composer owns retries and failover, so one failed call is one failed call.

Each call gets its own HTTP client whose transport counts the bytes and times the reads; closing it at the
end of the call (or when a stream is abandoned) also closes the connection, so nothing keeps downloading.

litellm is imported on first use: it takes seconds to import, and a process that runs no endpoint should
not pay that.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from motet.errors import (
    ContextOverflow,
    EndpointError,
    EndpointHTTPError,
    EndpointLimitExceeded,
    EndpointProtocolError,
    EndpointTimeout,
    EndpointUnreachable,
    InvalidRuntimeArgument,
    InvalidSampling,
    ModelRuntimeError,
)
from motet.runtimes._base import Request, RuntimeBase, finish_reason
from motet.runtimes._protocol import Completion, FinishReason, ModelRef, StreamEvent, TextDelta, Usage
from motet.runtimes._transport import BoundedTransport, Limits

if TYPE_CHECKING:
    import httpx

SchemaFormat = Literal["json_schema", "json_object"]
"""How a schema is sent: OpenAI's `{"type": "json_schema", "json_schema": {...}}` (vLLM, SGLang, llama.cpp's
`llama-server`, most providers), or `{"type": "json_object", "schema": {...}}` (llama-cpp-python's server)."""

ENV_URL = "MOTET_ENDPOINT_URL"
ENV_MODEL = "MOTET_ENDPOINT_MODEL"
ENV_API_KEY = "MOTET_ENDPOINT_API_KEY"

_CONTEXT_EXCEEDED = re.compile(
    r"maximum context length is (\d+) tokens.*?requested (\d+) tokens \((\d+) in the messages, (\d+) in the "
    r"completion\)",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class EndpointPreset:
    """Where a DePIN provider's OpenAI-compatible API lives and how it names models: configuration only.

    Example:
        >>> PRESETS["hyperbolic"].base_url
        'https://api.hyperbolic.xyz/v1'
    """

    name: str
    base_url: str
    api_key_env: str
    """The environment variable the provider's API key is read from."""
    example_model: str
    """A model id in the provider's naming; list theirs with `GET {base_url}/models`."""


PRESETS: dict[str, EndpointPreset] = {
    preset.name: preset
    for preset in (
        EndpointPreset(
            "ionet",
            "https://api.intelligence.io.solutions/api/v1",
            "IOINTELLIGENCE_API_KEY",
            "meta-llama/Llama-3.3-70B-Instruct",
        ),
        EndpointPreset(
            "akash", "https://chatapi.akash.network/api/v1", "AKASH_API_KEY", "Meta-Llama-3-1-8B-Instruct-FP8"
        ),
        EndpointPreset(
            "hyperbolic",
            "https://api.hyperbolic.xyz/v1",
            "HYPERBOLIC_API_KEY",
            "meta-llama/Llama-3.3-70B-Instruct",
        ),
    )
}


class OpenAIEndpointRuntime(RuntimeBase):
    """A model served by an OpenAI-compatible endpoint, called through litellm with hard bounds.

    Args:
        model: the endpoint's model id; default `$MOTET_ENDPOINT_MODEL`.
        base_url: the API root, usually ending in `/v1`; default `$MOTET_ENDPOINT_URL`.
        api_key: default `$MOTET_ENDPOINT_API_KEY`; an endpoint that needs none gets a placeholder.
        timeout: seconds for the whole call, first byte to last.
        idle_timeout: seconds the endpoint may stay silent: before its response headers, or between two
            pieces of a stream.
        connect_timeout: seconds to open the connection.
        max_response_bytes: bytes read off the wire per call before it is dropped.
        max_output_tokens: the largest `Sampling.max_tokens` a caller may ask for (`InvalidSampling` above).
        n_ctx: the model's context window, when known: a call whose estimated prompt plus `max_tokens`
            cannot fit is refused before it is sent. Endpoints that report overflow in OpenAI's words
            (`context_length_exceeded`) raise `ContextOverflow` with their exact counts either way.
        schema_format: how `schema=` is sent (see `SchemaFormat`).
        weights_sha256, quantization: what the endpoint says it serves, published in `ModelRef`;
            an endpoint cannot prove them, so they default to `"unknown"`.

    Usage: `complete()` reports the endpoint's counts. A stream asks for them too (`stream_options`); from
    an endpoint that does not send them, the completion count is the number of streamed pieces (one per
    token on the servers we know) and the prompt count is litellm's estimate, and `Usage.estimated` is
    True.

    A `schema` is validated on arrival whatever the endpoint claims about constrained output: JSON that
    does not match raises `InvalidModelOutput`.

    Example:
        >>> runtime = OpenAIEndpointRuntime("smollm2", base_url="http://127.0.0.1:8000/v1", n_ctx=2048)
        >>> runtime
        OpenAIEndpointRuntime(model='smollm2', base_url='http://127.0.0.1:8000/v1')
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        idle_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_response_bytes: int = 4 * 1024 * 1024,
        max_output_tokens: int = 4096,
        n_ctx: int | None = None,
        schema_format: SchemaFormat = "json_schema",
        weights_sha256: str = "unknown",
        quantization: str = "unknown",
    ) -> None:
        model = model if model is not None else os.environ.get(ENV_MODEL)
        base_url = base_url if base_url is not None else os.environ.get(ENV_URL)
        if not model:
            raise InvalidRuntimeArgument(
                f"no model: pass model= or set {ENV_MODEL} to the endpoint's model id"
            )
        if not base_url:
            raise InvalidRuntimeArgument(
                f"no endpoint: pass base_url= or set {ENV_URL} (for example http://host:8000/v1)"
            )
        if not base_url.startswith(("http://", "https://")):
            raise InvalidRuntimeArgument(f"base_url {base_url!r} is not an http(s) URL")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._limits = Limits(self.base_url, timeout, idle_timeout, connect_timeout, max_response_bytes)
        if max_output_tokens < 1:
            raise InvalidRuntimeArgument(
                f"max_output_tokens is {max_output_tokens!r}: pass a positive integer"
            )
        if schema_format not in ("json_schema", "json_object"):
            raise InvalidRuntimeArgument(
                f"schema_format is {schema_format!r}: use 'json_schema' or 'json_object'"
            )
        self._api_key = api_key if api_key is not None else os.environ.get(ENV_API_KEY) or "not-needed"
        self.max_output_tokens = max_output_tokens
        self.n_ctx = n_ctx
        self.schema_format: SchemaFormat = schema_format
        self._weights_sha256 = weights_sha256
        self._quantization = quantization

    @classmethod
    def preset(cls, provider: str, model: str | None = None, **options: Any) -> OpenAIEndpointRuntime:
        """A runtime for a named DePIN provider (`ionet`, `akash`, `hyperbolic`), its key from its variable.

        Example:
            >>> OpenAIEndpointRuntime.preset("akash", api_key="sk-test").base_url
            'https://chatapi.akash.network/api/v1'
        """
        found = PRESETS.get(provider)
        if found is None:
            raise InvalidRuntimeArgument(f"unknown provider {provider!r}: use one of {sorted(PRESETS)}")
        options.setdefault("api_key", os.environ.get(found.api_key_env))
        if not options["api_key"]:
            raise InvalidRuntimeArgument(
                f"no API key for {provider}: set {found.api_key_env} or pass api_key="
            )
        return cls(model or found.example_model, base_url=found.base_url, **options)

    def __repr__(self) -> str:
        return f"OpenAIEndpointRuntime(model={self.model!r}, base_url={self.base_url!r})"

    async def _complete(self, request: Request) -> Completion:
        kwargs = self._prepare(request)
        max_tokens = request.sampling.max_tokens
        transport = BoundedTransport(self._limits)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._limits.timeout), transport.client() as client:
                response = await _litellm().acompletion(**kwargs, client=self._openai(client))
        except Exception as exc:
            raise self._error(exc, transport, max_tokens) from exc
        latency = time.perf_counter() - started
        try:
            choice = response.choices[0]
            text = choice.message.content or ""
            usage = Usage(int(response.usage.prompt_tokens), int(response.usage.completion_tokens))
            finish = finish_reason(choice.finish_reason)
            model_id = str(response.model or self.model)
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise EndpointProtocolError(
                self.base_url, f"the answer is not a chat completion ({exc})"
            ) from exc
        if usage.completion_tokens > max_tokens:
            raise EndpointLimitExceeded(self.base_url, "max_tokens", max_tokens, "tokens")
        return request.completion(text, usage, finish, latency, self._model_ref(model_id))

    async def _stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        kwargs = self._prepare(request)
        kwargs.update(stream=True, stream_options={"include_usage": True})
        max_tokens = request.sampling.max_tokens
        transport = BoundedTransport(self._limits)
        deadline = asyncio.get_running_loop().time() + self._limits.timeout
        started = time.perf_counter()
        pieces: list[str] = []
        generated = 0
        finish: FinishReason = "length"
        usage: Usage | None = None
        model_id = self.model
        async with transport.client() as client:
            try:
                async with asyncio.timeout_at(deadline):
                    chunks = await _litellm().acompletion(**kwargs, client=self._openai(client))
                try:
                    while True:
                        try:
                            async with asyncio.timeout_at(deadline):
                                chunk = await anext(chunks)
                        except StopAsyncIteration:
                            break
                        model_id = str(getattr(chunk, "model", None) or model_id)
                        reported = getattr(chunk, "usage", None)
                        if reported is not None:
                            usage = Usage(int(reported.prompt_tokens), int(reported.completion_tokens))
                        if not chunk.choices:
                            continue
                        choice = chunk.choices[0]
                        content = choice.delta.content
                        if content:
                            generated += 1
                            if generated > max_tokens:
                                raise EndpointLimitExceeded(self.base_url, "max_tokens", max_tokens, "tokens")
                            pieces.append(content)
                            yield TextDelta(content)
                        if choice.finish_reason is not None:
                            finish = finish_reason(choice.finish_reason)
                finally:
                    await chunks.aclose()
            except EndpointError:
                raise
            except Exception as exc:
                raise self._error(exc, transport, max_tokens) from exc
        latency = time.perf_counter() - started
        if usage is None or not transport.saw_usage:
            prompt = usage.prompt_tokens if usage is not None else 0
            usage = Usage(prompt, generated, estimated=True)
        yield request.completion("".join(pieces), usage, finish, latency, self._model_ref(model_id))

    def _prepare(self, request: Request) -> dict[str, Any]:
        """litellm's arguments for `request`, after the checks that refuse it before anything is sent."""
        chat = request.chat()
        sampling = request.sampling
        if self.n_ctx is not None:
            request.check_fits(_litellm().token_counter(model=self.model, messages=chat), self.n_ctx)
        if sampling.max_tokens > self.max_output_tokens:
            raise InvalidSampling(
                "max_tokens",
                sampling.max_tokens,
                f"this runtime accepts at most max_output_tokens={self.max_output_tokens:,}",
            )
        kwargs: dict[str, Any] = {
            "model": f"openai/{self.model}",
            "messages": chat,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "max_retries": 0,
            "num_retries": 0,
            "timeout": self._limits.http_timeout(),  # litellm passes its own (600 s) to every request otherwise
        }
        if sampling.seed is not None:
            kwargs["seed"] = sampling.seed
        if sampling.stop:
            kwargs["stop"] = list(sampling.stop)
        if request.schema is not None:
            json_schema = request.schema.json_schema
            if self.schema_format == "json_object":
                kwargs["response_format"] = {"type": "json_object", "schema": json_schema}
            else:
                kwargs["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": json_schema, "strict": True},
                }
        return kwargs

    def _openai(self, client: httpx.AsyncClient) -> Any:
        import openai

        # The OpenAI client sets a timeout on every request, overriding the HTTP client's: give it ours.
        return openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self._api_key,
            max_retries=0,
            http_client=client,
            timeout=client.timeout,
        )

    def _model_ref(self, model_id: str) -> ModelRef:
        return ModelRef(
            "openai-endpoint",
            _litellm_version(),
            model_id,
            self._weights_sha256,
            self._quantization,
            endpoint=self.base_url,
        )

    def _error(self, exc: BaseException, transport: BoundedTransport, max_tokens: int) -> ModelRuntimeError:
        """The specific motet error for whatever ended a call, however litellm wrapped it."""
        if transport.error is not None:
            return transport.error
        for cause in _chain(exc):
            if isinstance(cause, ModelRuntimeError):
                return cause
        if isinstance(exc, TimeoutError):  # asyncio.timeout: the whole call's deadline passed
            return EndpointTimeout(self.base_url, "call", self._limits.timeout)
        message = str(exc)
        match = _CONTEXT_EXCEEDED.search(message)
        if match is not None:
            n_ctx, _, prompt_tokens, _ = (int(group) for group in match.groups())
            return ContextOverflow(prompt_tokens, max_tokens, n_ctx)
        if transport.status >= 400:
            return EndpointHTTPError(
                self.base_url, transport.status, transport.error_detail() or _detail(exc)
            )
        import httpx

        for cause in _chain(exc):
            if isinstance(cause, httpx.TimeoutException):
                return EndpointTimeout(self.base_url, "headers", self._limits.idle_timeout)
            if isinstance(cause, httpx.TransportError | OSError):
                return EndpointUnreachable(self.base_url, f"cannot connect ({cause or type(cause).__name__})")
        return EndpointProtocolError(self.base_url, f"the answer is not a chat completion ({_detail(exc)})")


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and every exception it was raised from or during, outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _detail(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


@cache
def _litellm() -> ModuleType:
    # Use the model list bundled with litellm instead of fetching one from GitHub at import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    litellm.disable_hf_tokenizer_download = True  # token counts estimate with the bundled tokenizer
    return litellm


@cache
def _litellm_version() -> str:
    from importlib.metadata import version

    return version("litellm")
