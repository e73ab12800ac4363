"""A TCP proxy on 127.0.0.1 in front of one HTTP/1.1 server that drops the connection of chosen requests.

It reads each request whole (headers and `Content-Length` body) from the client, asks `decide` what to do
with it, and then either forwards it and relays the answer (`PASS`), closes the client's connection without
forwarding it (`DROP_BEFORE`: the server never saw it), or forwards it, reads the server's whole answer, and
closes the client's connection without relaying it (`DROP_AFTER`: the server did the work, the client never
learns of it). Keep-alive connections stay kept alive on both sides, so a pooled client is proxied as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass


class Fate(enum.Enum):
    PASS = "pass"
    DROP_BEFORE = "drop before forwarding"
    DROP_AFTER = "drop after forwarding"


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    path: str
    body: bytes


def _headers(head: bytes) -> tuple[str, dict[str, str]]:
    """The start line of an HTTP/1.1 message head, and its headers by lower-case name."""
    start, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return start, headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        data = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            data += size_line
            size = int(size_line.split(b";")[0].strip(), 16)
            data += await reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                return bytes(data)
    length = int(headers.get("content-length", "0"))
    return await reader.readexactly(length)


class DroppingProxy:
    """Proxies `127.0.0.1:<port>` to `upstream` (a `http://host:port` URL, settable once the server runs);
    `decide` tells each request's fate, and `fates` counts what was done."""

    def __init__(self, decide: Callable[[ProxiedRequest], Fate], upstream: str | None = None) -> None:
        self.decide = decide
        self.upstream = upstream
        self.fates: dict[Fate, int] = dict.fromkeys(Fate, 0)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Listen on a free port of 127.0.0.1 until the block ends; yields the proxy's base URL."""
        connections: set[asyncio.Task[None]] = set()

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            connections.add(task)
            try:
                await self._relay(reader, writer)
            finally:
                connections.discard(task)

        server = await asyncio.start_server(accepted, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.close()
            for task in list(connections):
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)
            await server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the client closed its connection
                start, headers = _headers(head)
                body = await _read_body(reader, headers)
                method, path, _version = start.split(" ", 2)
                fate = self.decide(ProxiedRequest(method, path, body))
                self.fates[fate] += 1
                if fate is Fate.DROP_BEFORE:
                    return
                if upstream is None:
                    assert self.upstream is not None, "the proxy has no upstream yet"
                    host, _, port = self.upstream.removeprefix("http://").rstrip("/").partition(":")
                    upstream = await asyncio.open_connection(host, int(port))
                up_reader, up_writer = upstream
                up_writer.write(head + body)
                await up_writer.drain()
                answer_head = await up_reader.readuntil(b"\r\n\r\n")
                _status, answer_headers = _headers(answer_head)
                if "content-length" in answer_headers or "transfer-encoding" in answer_headers:
                    answer_body = await _read_body(up_reader, answer_headers)
                else:  # no length: the body runs to the end of the connection
                    answer_body = await up_reader.read()
                if fate is Fate.DROP_AFTER:
                    return
                writer.write(answer_head + answer_body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            for closing in (writer, upstream[1] if upstream is not None else None):
                if closing is not None:
                    closing.close()
                    with contextlib.suppress(ConnectionError):
                        await closing.wait_closed()
