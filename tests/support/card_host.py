"""A tiny HTTP server on 127.0.0.1 that serves whatever bytes (and redirects) a test puts at each path:
hostile agent cards, and redirect chains for the SSRF tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from motet._http import serve


@dataclass
class CardHost:
    """What a test serves: `pages[path]` a body, `redirects[path]` a `Location`; `hits` what was asked."""

    base: str = ""
    pages: dict[str, bytes] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    """The `Host` header of each request."""

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


@contextlib.asynccontextmanager
async def card_host(host: str = "127.0.0.1") -> AsyncIterator[CardHost]:
    served = CardHost()

    async def page(request: Request) -> Response:
        path = request.url.path
        served.hits.append(path)
        served.hosts.append(request.headers.get("host", ""))
        if path in served.redirects:
            return RedirectResponse(served.redirects[path], status_code=302)
        if path in served.pages:
            return Response(served.pages[path], media_type="application/json")
        return Response(b"{}", status_code=404, media_type="application/json")

    app = Starlette(routes=[Route("/{path:path}", page)])
    async with serve(app, host, 0, "card host") as base:
        served.base = base
        yield served
