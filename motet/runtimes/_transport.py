"""The HTTP side of a bounded endpoint call: an httpx transport that counts the bytes read, times every read,
and remembers the specific error it raised, so the runtime can report it however litellm wrapped it.

httpx is imported on first use, with litellm, not when motet is.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from motet._json import loads
from motet.errors import (
    EndpointError,
    EndpointLimitExceeded,
    EndpointTimeout,
    EndpointUnreachable,
    InvalidRuntimeArgument,
)

if TYPE_CHECKING:
    import httpx

_USAGE_KEY = re.compile(rb'"usage"\s*:\s*\{')
_ERROR_BODY_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Limits:
    """How long and how much one call to the endpoint at `base_url` may take (see `OpenAIEndpointRuntime`)."""

    base_url: str
    timeout: float
    idle_timeout: float
    connect_timeout: float
    max_response_bytes: int

    def __post_init__(self) -> None:
        for name in ("timeout", "idle_timeout", "connect_timeout"):
            value = getattr(self, name)
            if not value > 0:
                raise InvalidRuntimeArgument(f"{name} is {value!r}: pass a positive number of seconds")
        if self.max_response_bytes < 1:
            raise InvalidRuntimeArgument(
                f"max_response_bytes is {self.max_response_bytes!r}: pass a positive integer"
            )

    def http_timeout(self) -> httpx.Timeout:
        """Per read, not per call: `idle_timeout` bounds each wait for bytes, `timeout` the whole call."""
        import httpx

        return httpx.Timeout(
            connect=self.connect_timeout,
            read=self.idle_timeout,
            write=self.idle_timeout,
            pool=self.connect_timeout,
        )

    def too_large(self) -> EndpointLimitExceeded:
        return EndpointLimitExceeded(self.base_url, "max_response_bytes", self.max_response_bytes, "bytes")


class BoundedTransport:
    """What one call read: the bytes, the HTTP status, whether usage came back, and what ended it early.

    `client()` is an httpx client for that one call; closing it closes the connection.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
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
        return httpx.AsyncClient(transport=transport, timeout=self.limits.http_timeout())

    def fail(self, error: EndpointError) -> EndpointError:
        if self.error is None:
            self.error = error
        return self.error

    def error_detail(self) -> str:
        """The message in an error answer's body (OpenAI's `{"error": {"message": ...}}`), or its text."""
        text = self._error_body.decode("utf-8", errors="replace")
        try:
            body = loads(text)
            message = body["error"]["message"] if isinstance(body.get("error"), dict) else body["error"]
        except (ValueError, KeyError, TypeError, AttributeError):
            message = text
        return " ".join(str(message).split())

    def count(self, data: bytes) -> None:
        self.received += len(data)
        if self.status >= 400 and len(self._error_body) < _ERROR_BODY_BYTES:
            self._error_body += data[: _ERROR_BODY_BYTES - len(self._error_body)]
        if self.received > self.limits.max_response_bytes:
            raise self.fail(self.limits.too_large())
        if not self.saw_usage:
            window = self._tail + data
            self.saw_usage = _USAGE_KEY.search(window) is not None and b'"usage": null' not in window
            self._tail = window[-32:]


def _wrap_transport(bounds: BoundedTransport, inner: httpx.AsyncHTTPTransport) -> httpx.AsyncBaseTransport:
    import httpx

    limits = bounds.limits
    base_url = limits.base_url

    class Stream(httpx.AsyncByteStream):
        def __init__(self, wrapped: httpx.AsyncByteStream) -> None:
            self.wrapped = wrapped

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for data in self.wrapped:
                    bounds.count(data)
                    yield data
            except httpx.TimeoutException as exc:
                raise bounds.fail(EndpointTimeout(base_url, "stream", limits.idle_timeout)) from exc

        async def aclose(self) -> None:
            await self.wrapped.aclose()

    class Transport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            try:
                response = await inner.handle_async_request(request)
            except httpx.TimeoutException as exc:
                if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                    raise bounds.fail(
                        EndpointUnreachable(base_url, f"no connection within {limits.connect_timeout:g} s")
                    ) from exc
                raise bounds.fail(EndpointTimeout(base_url, "headers", limits.idle_timeout)) from exc
            except (httpx.ConnectError, OSError) as exc:
                raise bounds.fail(EndpointUnreachable(base_url, f"cannot connect ({exc})")) from exc
            bounds.status = response.status_code
            length = response.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > limits.max_response_bytes:
                await response.aclose()
                raise bounds.fail(limits.too_large())
            stream = Stream(cast(httpx.AsyncByteStream, response.stream))
            return httpx.Response(
                response.status_code, headers=response.headers, stream=stream, extensions=response.extensions
            )

        async def aclose(self) -> None:
            await inner.aclose()

    return Transport()
