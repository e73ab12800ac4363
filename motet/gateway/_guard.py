"""What the gateway accepts from the network, checked before any route runs (`GatewayLimits`).

A page on another site can make a browser send requests to a gateway on 127.0.0.1, and a DNS name rebound to
127.0.0.1 makes them same-origin. So: the `Host` must be one the gateway answers to (403), an `Origin`, when
there is one, must be the gateway's own or an allowed one (403), a body is JSON (415) and small (413), and one
client address makes a bounded number of requests (429, with `Retry-After`). A route that fails for a reason
nobody foresaw answers 500 with a generic message and an id; the details go to the log only.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from motet.settings import GatewayLimits

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_WITH_BODY = {"POST", "PUT", "PATCH", "DELETE"}
_KEPT_CLIENTS = 10_000
"""Client addresses whose request counts are kept; past it, those that could make a full burst are forgotten."""


def host_name(host: str) -> str:
    """`Host` header → the name without the port, lower case: `[::1]:8402` → `::1`, `Local:80` → `local`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


class Guard:
    """ASGI middleware applying `limits` to every HTTP request before `app` sees it.

    `hosts` is the set of host names answered to; the gateway adds the address it listens on.
    """

    def __init__(self, app: App, limits: GatewayLimits) -> None:
        self.app = app
        self.limits = limits
        self.hosts = {host_name(h) for h in limits.hosts}
        self.origins = {o.rstrip("/").lower() for o in limits.origins}
        self._buckets: dict[str, tuple[float, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._check(scope, headers)
        if refusal is not None:
            status, message, extra = refusal
            await _answer(send, status, {"error": message}, extra)
            return
        if scope["method"] in _WITH_BODY:
            body = await self._body(receive, headers)
            if body is None:
                await _answer(
                    send,
                    413,
                    {"error": f"the body is over {self.limits.max_body} bytes, the most this gateway takes"},
                )
                return
            receive = _replay(body, receive)
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:  # answered already (by the app's handler, which logged it), or failed in mid-stream
                log.debug("gateway: %s %s: %r after the answer began", scope["method"], scope["path"], exc)
                return
            incident = incident_id()
            log.exception("gateway: %s %s failed (incident %s)", scope["method"], scope["path"], incident)
            await _answer(send, 500, {"error": failure_message(incident)})

    def _check(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str, dict[str, str]] | None:
        """A refusal `(status, message, headers)` for a request the limits do not allow, or None."""
        client = scope.get("client")
        wait = self._take(client[0] if client else "?")
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            return (
                429,
                f"too many requests from this address: wait {seconds} s",
                {"Retry-After": str(seconds)},
            )
        host = headers.get("host", "")
        if not self.host_allowed(host):
            return (
                403,
                f"this gateway does not answer to the host {host!r} (a page on another name that resolves here "
                "is refused); start it with --allow-host for a name it is served under",
                {},
            )
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(origin, host):
            return (
                403,
                f"requests from pages on {origin!r} are refused: only this gateway's own page, or an origin "
                "started with --allow-origin, may use its API",
                {},
            )
        if scope["method"] in _WITH_BODY:
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media != "application/json":
                return (
                    415,
                    f"the body must be JSON (Content-Type: application/json), not {media or 'untyped'}",
                    {},
                )
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.limits.max_body):
                return 413, f"the body is over {self.limits.max_body} bytes, the most this gateway takes", {}
        return None

    def host_allowed(self, host: str) -> bool:
        """A name in `hosts`, or an IP address: rebinding needs a DNS name, so an address is never a page's trick
        (and a gateway listening on every interface is reached by its addresses)."""
        name = host_name(host)
        if name in self.hosts:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def _origin_allowed(self, origin: str, host: str) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if origin in self.origins:
            return True
        scheme, _, rest = origin.partition("://")
        return scheme in ("http", "https") and rest == host.strip().lower()

    def _take(self, client: str) -> float:
        """Count one request of `client`: 0 if allowed, else the seconds until it would be."""
        rate, burst = self.limits.rate, float(self.limits.burst)
        now = time.monotonic()
        tokens, last = self._buckets.get(client, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            return (1 - tokens) / rate if rate > 0 else 3600.0
        self._buckets[client] = (tokens - 1, now)
        if len(self._buckets) > _KEPT_CLIENTS:
            self._forget(now)
        return 0.0

    def _forget(self, now: float) -> None:
        rate, burst = self.limits.rate, float(self.limits.burst)
        for client, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * rate >= burst:
                del self._buckets[client]

    async def _body(self, receive: Receive, headers: dict[str, str]) -> bytes | None:
        """The whole body, or None once it is over the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limits.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def incident_id() -> str:
    """A short id that ties a generic 500 to its details in the log."""
    return uuid.uuid4().hex[:12]


def failure_message(incident: str) -> str:
    """What a caller is told of a failure nobody foresaw: no exception text, an id to find it in the log."""
    return f"the gateway failed on this request (incident {incident}; its log has the details)"


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` once, then waits on the real one (for the disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _answer(send: Send, status: int, data: dict[str, Any], extra: dict[str, str] | None = None) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
