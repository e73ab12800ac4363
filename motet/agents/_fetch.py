"""Reading a card from where an agent's `agentURI` points: a `data:` URI, or an http(s) URL fetched within
bounds (size, time, redirects), since the URL is a stranger's."""

from __future__ import annotations

import asyncio
import urllib.parse

import httpx

from motet.agents._cards import MAX_CARD_BYTES, AgentCard
from motet.errors import AgentCallFailed, InvalidAgentCard

# identity: a compressed body could expand far past max_bytes from a single chunk.
_HEADERS = {"Accept": "application/json", "Accept-Encoding": "identity"}


async def fetch_card(uri: str, *, timeout: float = 10.0, max_bytes: int = MAX_CARD_BYTES) -> AgentCard:
    """Read a card from a `data:` URI or an http(s) URL.

    The body is streamed and dropped past `max_bytes` (`InvalidAgentCard`); the whole fetch, redirects
    included, must finish within `timeout` seconds. A network failure or an HTTP error status is
    `AgentCallFailed`.

    Example:
        >>> import asyncio
        >>> asyncio.run(fetch_card("data:,%7B%22name%22%3A%201%7D"))
        Traceback (most recent call last):
        ...
        motet.errors.InvalidAgentCard: invalid agent card: name: Input should be a valid string
    """
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme == "data":
        return AgentCard.from_uri(uri)
    if scheme not in ("http", "https"):
        raise InvalidAgentCard("uri", f"{uri[:80]!r} is not a data:, http:// or https:// URI")
    try:
        async with asyncio.timeout(timeout):
            body = await _download(uri, timeout, max_bytes)
    except TimeoutError:
        raise AgentCallFailed(uri, f"the card did not arrive within {timeout:g} s") from None
    except httpx.InvalidURL as exc:
        raise InvalidAgentCard("uri", f"{uri[:80]!r} is not a valid URL: {exc}") from None
    except httpx.HTTPError as exc:
        raise AgentCallFailed(uri, f"could not fetch the card: {str(exc) or type(exc).__name__}") from None
    return AgentCard.from_json(body)


async def _download(uri: str, timeout: float, max_bytes: int) -> bytes:
    too_big = f"the card is larger than {max_bytes} bytes; refusing to read more"
    async with (
        httpx.AsyncClient(timeout=timeout, follow_redirects=True, max_redirects=3) as client,
        client.stream("GET", uri, headers=_HEADERS) as response,
    ):
        if response.status_code != 200:
            raise AgentCallFailed(
                uri, f"HTTP {response.status_code} instead of the card", response.status_code
            )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise InvalidAgentCard("card", too_big)
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise InvalidAgentCard("card", too_big)
        return bytes(body)
