"""Reading a card from where an agent's `agentURI` points: a `data:` URI, or an http(s) URL fetched within
bounds (size, time, redirects), since the URL is a stranger's.

A stranger's URL must not turn motet into a tool for reaching the local network: unless the caller allows
private addresses (`Settings.allow_private_endpoints`; development chains do), a card URL, every redirect it
leads through, and an agent's endpoint must resolve only to public addresses. Loopback, private,
link-local, shared, reserved, multicast and unspecified addresses are refused, IPv4-mapped ones included.
A card fetch then connects to the address it checked (the `Host` header and TLS name stay the URL's), so a
name that resolves to a public address for the check and to an internal one for the request (DNS
rebinding) gains nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import urllib.parse
from typing import Final

import httpx

from motet.agents._cards import MAX_CARD_BYTES, AgentCard
from motet.chain import Chain
from motet.errors import AgentCallFailed, InvalidAgentCard

# identity: a compressed body could expand far past max_bytes from a single chunk.
_HEADERS = {"Accept": "application/json", "Accept-Encoding": "identity"}
MAX_REDIRECTS: Final = 3
"""Redirects a card fetch follows, each to a URL checked like the first."""


def private_endpoints_allowed(chain: Chain) -> bool:
    """Whether cards and endpoints on `chain`'s market may be at private addresses: the chain's
    `Settings.allow_private_endpoints`, or when that is None, whether it is a development chain.

    Example:
        >>> private_endpoints_allowed(Chain.embedded())
        True
    """
    allowed = chain.settings.allow_private_endpoints
    return chain.development if allowed is None else allowed


async def check_public_url(url: str, *, field: str = "uri") -> None:
    """Raise `InvalidAgentCard` (naming `field`) unless every address `url`'s host resolves to is public.

    A host that does not resolve is left to the request that follows (it fails there, as unreachable).

    Example:
        >>> import asyncio
        >>> asyncio.run(check_public_url("http://127.0.0.1:8000/invoke", field="services"))
        Traceback (most recent call last):
        ...
        motet.errors.InvalidAgentCard: invalid agent card: services: 'http://127.0.0.1:8000/invoke' is at 127.0.0.1, a loopback address; cards and endpoints must be public unless allow_private_endpoints is set
    """
    await _public_addresses(url, field)


async def _public_addresses(url: str, field: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses `url`'s host resolves to, every one public (else `InvalidAgentCard`); [] when it does
    not resolve."""
    host = urllib.parse.urlsplit(url).hostname
    if not host:
        raise InvalidAgentCard(field, f"{url[:80]!r} names no host")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except OSError:
            return []
        addresses = [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in found]
    for address in addresses:
        kind = _private_kind(address)
        if kind is not None:
            raise InvalidAgentCard(
                field,
                f"{url[:80]!r} is at {address}, a {kind} address; cards and endpoints must be public unless "
                f"allow_private_endpoints is set",
            )
    return addresses


def _private_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("non-global", not address.is_global),
    )
    return next((kind for kind, matches in checks if matches), None)


async def fetch_card(
    uri: str, *, timeout: float = 10.0, max_bytes: int = MAX_CARD_BYTES, allow_private: bool = False
) -> AgentCard:
    """Read a card from a `data:` URI or an http(s) URL.

    The body is streamed and dropped past `max_bytes` (`InvalidAgentCard`); the whole fetch, redirects
    included (at most `MAX_REDIRECTS`), must finish within `timeout` seconds. Unless `allow_private`, the URL
    and every redirect must be at public addresses (`check_public_url`). A network failure or an HTTP error
    status is `AgentCallFailed`.

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
            body = await _download(uri, timeout, max_bytes, allow_private)
    except TimeoutError:
        raise AgentCallFailed(uri, f"the card did not arrive within {timeout:g} s") from None
    except httpx.InvalidURL as exc:
        raise InvalidAgentCard("uri", f"{uri[:80]!r} is not a valid URL: {exc}") from None
    except httpx.HTTPError as exc:
        raise AgentCallFailed(uri, f"could not fetch the card: {str(exc) or type(exc).__name__}") from None
    return AgentCard.from_json(body)


async def _download(uri: str, timeout: float, max_bytes: int, allow_private: bool) -> bytes:
    too_big = f"the card is larger than {max_bytes} bytes; refusing to read more"
    url = uri
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            request = (
                client.build_request("GET", url, headers=_HEADERS)
                if allow_private
                else _pinned(client, url, await _public_addresses(url, "uri"))
            )
            async with contextlib.aclosing(await client.send(request, stream=True)) as response:
                if response.is_redirect:
                    url = str(httpx.URL(url).join(response.headers.get("Location", "")))
                    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                        raise InvalidAgentCard("uri", f"{uri[:80]!r} redirects to {url[:80]!r}, not http(s)")
                    continue
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
    raise AgentCallFailed(uri, f"more than {MAX_REDIRECTS} redirects; refusing to follow more")


def _pinned(
    client: httpx.AsyncClient, url: str, addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> httpx.Request:
    """A GET of `url` sent to the first of `addresses` (checked public), with the URL's host as `Host` and as
    the TLS server name; a plain GET when the host did not resolve (it fails as unreachable)."""
    if not addresses:
        return client.build_request("GET", url, headers=_HEADERS)
    target = httpx.URL(url)
    request = client.build_request(
        "GET",
        target.copy_with(host=str(addresses[0])),
        headers={**_HEADERS, "Host": target.netloc.decode("ascii")},
    )
    if target.scheme == "https":
        request.extensions["sni_hostname"] = target.host
    return request
