"""Real HTTP servers on 127.0.0.1 for endpoint tests: a llama.cpp OpenAI server, and a hostile one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LlamaServer:
    """`python -m llama_cpp.server` serving one GGUF as a stand-in DePIN node."""

    base_url: str
    log: Path

    def generations(self) -> int:
        """How many generations the server has run: llama.cpp logs its timings once after each."""
        return self.log.read_text(errors="replace").count("prompt eval time")


@contextlib.contextmanager
def llama_server(model: Path, alias: str, log: Path, n_ctx: int = 2048) -> Iterator[LlamaServer]:
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model), "--model_alias", alias,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", "1", "--n_threads_batch", "1",
        "--n_gpu_layers", "0", "--verbose", "True",
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {process.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not start in 120 s:\n{log.read_text()}")
            time.sleep(0.2)
        yield LlamaServer(base_url, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def chunk(content: str | None, *, finish: str | None = None, ident: str = "chatcmpl-hostile") -> bytes:
    delta = {} if content is None else {"content": content}
    body = {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "hostile",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def completion(content: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-hostile",
            "object": "chat.completion",
            "created": 0,
            "model": "hostile",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }
    ).encode()


class HostileServer:
    """An HTTP server that misbehaves as the request's `model` says: each way a DePIN node can fail a caller.

    `stall-headers`, `stall-stream`, `endless`, `repeat`, `huge` (50 MB), `huge-chunked` (50 MB without a
    length), `invalid-json`, `wrong-shape`, `wrong-schema`, `http-500`, `ignores-max-tokens`, `good`.
    It counts how many requests it answered and how many bytes it managed to send; `arrived` is set when a
    request has been read.
    """

    def __init__(self) -> None:
        self.requests = 0
        self.arrived = asyncio.Event()
        self.bytes_sent = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aenter__(self) -> HostileServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode().split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            request = json.loads(await reader.readexactly(length))
            self.requests += 1
            self.arrived.set()
            await self._misbehave(request["model"], bool(request.get("stream")), writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        self.bytes_sent += len(data)

    async def _headers(
        self, writer: asyncio.StreamWriter, *, stream: bool, length: int | None = None
    ) -> None:
        kind = "text/event-stream" if stream else "application/json"
        framing = f"content-length: {length}" if length is not None else "transfer-encoding: chunked"
        if stream:
            framing = "connection: close"
        await self._send(writer, f"HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\n{framing}\r\n\r\n".encode())

    async def _body(self, writer: asyncio.StreamWriter, body: bytes) -> None:
        await self._headers(writer, stream=False, length=len(body))
        await self._send(writer, body)

    async def _misbehave(self, mode: str, stream: bool, writer: asyncio.StreamWriter) -> None:
        forever = asyncio.Event()
        if mode == "stall-headers":
            await forever.wait()
        elif mode == "stall-stream":
            await self._headers(writer, stream=True)
            await self._send(writer, chunk("Hello") + chunk(" there"))
            await forever.wait()
        elif mode == "endless":
            await self._headers(writer, stream=True)
            n = 0
            while True:
                n += 1
                await self._send(writer, chunk(f" word{n}"))
                await asyncio.sleep(0)
        elif mode == "repeat":
            await self._headers(writer, stream=True)
            same = chunk(" again")
            while True:
                await self._send(writer, same)
                await asyncio.sleep(0)
        elif mode in ("huge", "huge-chunked"):
            size = 50 * 1024 * 1024
            prefix, suffix = completion("@").split(b"@")
            if mode == "huge":
                await self._headers(writer, stream=False, length=size)
            else:
                await self._send(
                    writer, b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n"
                )
            await self._send(writer, prefix)
            block = b"a" * 65536
            for _ in range((size - len(prefix) - len(suffix)) // len(block)):
                await self._send(writer, block)
            await self._send(writer, suffix)
        elif mode == "invalid-json":
            await self._body(writer, b'{"id": "chatcmpl-x", "choices": [{"message": ')
        elif mode == "wrong-shape":
            await self._body(writer, b'{"hello": "world"}')
        elif mode == "wrong-schema":
            await self._body(writer, completion('{"colour": 3}'))
        elif mode == "ignores-max-tokens":
            if stream:
                await self._headers(writer, stream=True)
                for n in range(50):
                    await self._send(writer, chunk(f" w{n}"))
                await self._send(writer, chunk(None, finish="stop") + b"data: [DONE]\n\n")
            else:
                body = json.loads(completion(" ".join(["w"] * 50)))
                body["usage"] = {"prompt_tokens": 5, "completion_tokens": 50, "total_tokens": 55}
                await self._body(writer, json.dumps(body).encode())
        elif mode == "http-500":
            body = b'{"error": {"message": "GPU fell off the bus", "type": "server_error"}}'
            await self._send(
                writer,
                b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body,
            )
        elif mode == "good":
            if stream:
                await self._headers(writer, stream=True)
                await self._send(
                    writer, chunk("Hi") + chunk("!") + chunk(None, finish="stop") + b"data: [DONE]\n\n"
                )
            else:
                await self._body(writer, completion("Hi!"))
        else:
            raise AssertionError(f"unknown mode {mode}")
