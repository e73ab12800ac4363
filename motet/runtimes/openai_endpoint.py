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
import json
import os
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, cast

from motet.errors import (
    ContextOverflow,
    EndpointError,
    EndpointHTTPError,
    EndpointLimitExceeded,
    EndpointProtocolError,
    EndpointTimeout,
    EndpointUnreachable,
    ModelRuntimeError,
)
from motet.runtimes._protocol import (
    Completion,
    FinishReason,
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
_USAGE_KEY = re.compile(rb'"usage"\s*:\s*\{')


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


class OpenAIEndpointRuntime:
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
        max_output_tokens: the largest `max_tokens` a caller may ask for.
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
            raise ValueError(f"no model: pass model= or set {ENV_MODEL} to the endpoint's model id")
        if not base_url:
            raise ValueError(
                f"no endpoint: pass base_url= or set {ENV_URL} (for example http://host:8000/v1)"
            )
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url {base_url!r} is not an http(s) URL")
        for name, value in (
            ("timeout", timeout),
            ("idle_timeout", idle_timeout),
            ("connect_timeout", connect_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{name} is {value!r}: pass a positive number of seconds")
        for name, value in (
            ("max_response_bytes", max_response_bytes),
            ("max_output_tokens", max_output_tokens),
        ):
            if value < 1:
                raise ValueError(f"{name} is {value!r}: pass a positive integer")
        if schema_format not in ("json_schema", "json_object"):
            raise ValueError(f"schema_format is {schema_format!r}: use 'json_schema' or 'json_object'")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key if api_key is not None else os.environ.get(ENV_API_KEY) or "not-needed"
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.max_response_bytes = max_response_bytes
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
            raise ValueError(f"unknown provider {provider!r}: use one of {sorted(PRESETS)}")
        options.setdefault("api_key", os.environ.get(found.api_key_env))
        if not options["api_key"]:
            raise ValueError(f"no API key for {provider}: set {found.api_key_env} or pass api_key=")
        return cls(model or found.example_model, base_url=found.base_url, **options)

    def __repr__(self) -> str:
        return f"OpenAIEndpointRuntime(model={self.model!r}, base_url={self.base_url!r})"

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
        """Generate one answer; see `Runtime.complete`."""
        kwargs, output_schema = self._prepare(messages, max_tokens, temperature, seed, stop, schema)
        transport = _BoundedTransport(self)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout), transport.client() as client:
                response = await _litellm().acompletion(**kwargs, client=self._openai(client))
        except Exception as exc:
            raise self._error(exc, transport, max_tokens) from exc
        latency = time.perf_counter() - started
        try:
            choice = response.choices[0]
            text = choice.message.content or ""
            usage = Usage(int(response.usage.prompt_tokens), int(response.usage.completion_tokens))
            finish = _finish_reason(choice.finish_reason)
            model_id = str(response.model or self.model)
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise EndpointProtocolError(
                self.base_url, f"the answer is not a chat completion ({exc})"
            ) from exc
        if usage.completion_tokens > max_tokens:
            raise EndpointLimitExceeded(self.base_url, "max_tokens", max_tokens, "tokens")
        parsed = output_schema.parse(text, finish) if output_schema is not None else None
        return Completion(text, parsed, usage, finish, latency, self._model_ref(model_id))

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
        """Generate as `complete()` does, yielding `TextDelta`s and then the `Completion`."""
        kwargs, output_schema = self._prepare(messages, max_tokens, temperature, seed, stop, schema)
        kwargs.update(stream=True, stream_options={"include_usage": True})
        transport = _BoundedTransport(self)
        deadline = asyncio.get_running_loop().time() + self.timeout
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
                            finish = _finish_reason(choice.finish_reason)
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
        text = "".join(pieces)
        parsed = output_schema.parse(text, finish) if output_schema is not None else None
        yield Completion(text, parsed, usage, finish, latency, self._model_ref(model_id))

    def _prepare(
        self,
        messages: Messages,
        max_tokens: int,
        temperature: float,
        seed: int | None,
        stop: str | Sequence[str] | None,
        schema: Schema | None,
    ) -> tuple[dict[str, Any], OutputSchema | None]:
        check_sampling(max_tokens, temperature)
        chat = [{"role": m.role, "content": m.content} for m in to_messages(messages)]
        output_schema = OutputSchema.of(schema)
        if self.n_ctx is not None:
            prompt_tokens = _litellm().token_counter(model=self.model, messages=chat)
            if prompt_tokens + max_tokens > self.n_ctx:
                raise ContextOverflow(prompt_tokens, max_tokens, self.n_ctx)
        if max_tokens > self.max_output_tokens:
            raise ValueError(
                f"max_tokens is {max_tokens:,}: this runtime accepts at most max_output_tokens="
                f"{self.max_output_tokens:,}"
            )
        kwargs: dict[str, Any] = {
            "model": f"openai/{self.model}",
            "messages": chat,
            "max_tokens": max_tokens,
            "temperature": float(temperature),
            "max_retries": 0,
            "num_retries": 0,
            "timeout": self._http_timeout(),  # litellm passes its own (600 s) to every request otherwise
        }
        if seed is not None:
            kwargs["seed"] = seed
        stops = to_stop_list(stop)
        if stops:
            kwargs["stop"] = list(stops)
        if output_schema is not None:
            if self.schema_format == "json_object":
                kwargs["response_format"] = {"type": "json_object", "schema": output_schema.json_schema}
            else:
                kwargs["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": output_schema.json_schema, "strict": True},
                }
        return kwargs, output_schema

    def _http_timeout(self) -> httpx.Timeout:
        """Per read, not per call: `idle_timeout` bounds each wait for bytes, `timeout` the whole call."""
        import httpx

        return httpx.Timeout(
            connect=self.connect_timeout,
            read=self.idle_timeout,
            write=self.idle_timeout,
            pool=self.connect_timeout,
        )

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

    def _error(self, exc: BaseException, transport: _BoundedTransport, max_tokens: int) -> ModelRuntimeError:
        """The specific motet error for whatever ended a call, however litellm wrapped it."""
        if transport.error is not None:
            return transport.error
        for cause in _chain(exc):
            if isinstance(cause, ModelRuntimeError):
                return cause
        if isinstance(exc, TimeoutError):  # asyncio.timeout: the whole call's deadline passed
            return EndpointTimeout(self.base_url, "call", self.timeout)
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
                return EndpointTimeout(self.base_url, "headers", self.idle_timeout)
            if isinstance(cause, httpx.TransportError | OSError):
                return EndpointUnreachable(self.base_url, f"cannot connect ({cause or type(cause).__name__})")
        return EndpointProtocolError(self.base_url, f"the answer is not a chat completion ({_detail(exc)})")


class _BoundedTransport:
    """An httpx transport for one call: counts the bytes read, times every read, remembers what it raised."""

    def __init__(self, runtime: OpenAIEndpointRuntime) -> None:
        self.runtime = runtime
        self.error: EndpointError | None = None
        self.received = 0
        self.saw_usage = False
        self.status = 0
        """The HTTP status the endpoint answered with, 0 before it did."""
        self._tail = b""
        self._error_body = bytearray()

    def client(self) -> httpx.AsyncClient:
        import httpx

        transport = _wrap_transport(self, httpx.AsyncHTTPTransport(retries=0))
        return httpx.AsyncClient(transport=transport, timeout=self.runtime._http_timeout())

    def fail(self, error: EndpointError) -> EndpointError:
        if self.error is None:
            self.error = error
        return self.error

    def error_detail(self) -> str:
        """The message in an error answer's body (OpenAI's `{"error": {"message": ...}}`), or its text."""
        text = self._error_body.decode("utf-8", errors="replace")
        try:
            body = json.loads(text)
            message = body["error"]["message"] if isinstance(body.get("error"), dict) else body["error"]
        except (ValueError, KeyError, TypeError, AttributeError):
            message = text
        return " ".join(str(message).split())

    def count(self, data: bytes) -> None:
        self.received += len(data)
        if self.status >= 400 and len(self._error_body) < 4096:
            self._error_body += data[: 4096 - len(self._error_body)]
        if self.received > self.runtime.max_response_bytes:
            raise self.fail(
                EndpointLimitExceeded(
                    self.runtime.base_url, "max_response_bytes", self.runtime.max_response_bytes, "bytes"
                )
            )
        if not self.saw_usage:
            window = self._tail + data
            self.saw_usage = _USAGE_KEY.search(window) is not None and b'"usage": null' not in window
            self._tail = window[-32:]


def _wrap_transport(bounds: _BoundedTransport, inner: httpx.AsyncHTTPTransport) -> httpx.AsyncBaseTransport:
    import httpx

    base_url = bounds.runtime.base_url
    idle = bounds.runtime.idle_timeout

    class Stream(httpx.AsyncByteStream):
        def __init__(self, wrapped: httpx.AsyncByteStream) -> None:
            self.wrapped = wrapped

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for data in self.wrapped:
                    bounds.count(data)
                    yield data
            except httpx.TimeoutException as exc:
                raise bounds.fail(EndpointTimeout(base_url, "stream", idle)) from exc

        async def aclose(self) -> None:
            await self.wrapped.aclose()

    class Transport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            try:
                response = await inner.handle_async_request(request)
            except httpx.TimeoutException as exc:
                if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                    raise bounds.fail(
                        EndpointUnreachable(
                            base_url, f"no connection within {bounds.runtime.connect_timeout:g} s"
                        )
                    ) from exc
                raise bounds.fail(EndpointTimeout(base_url, "headers", idle)) from exc
            except (httpx.ConnectError, OSError) as exc:
                raise bounds.fail(EndpointUnreachable(base_url, f"cannot connect ({exc})")) from exc
            bounds.status = response.status_code
            length = response.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > bounds.runtime.max_response_bytes:
                await response.aclose()
                raise bounds.fail(
                    EndpointLimitExceeded(
                        base_url, "max_response_bytes", bounds.runtime.max_response_bytes, "bytes"
                    )
                )
            stream = Stream(cast(httpx.AsyncByteStream, response.stream))
            return httpx.Response(
                response.status_code, headers=response.headers, stream=stream, extensions=response.extensions
            )

        async def aclose(self) -> None:
            await inner.aclose()

    return Transport()


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


def _finish_reason(reason: object) -> FinishReason:
    return "length" if reason == "length" else "stop"


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
