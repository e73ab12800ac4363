"""motet's in-process HTTP servers leave signals to the command: SIGTERM or ctrl+c stops the whole command (a run
paying agents, the anvil it started), never only one of the servers it runs (uvicorn's own handler did that:
a SIGTERM sent to `motet run --chain embedded` stopped an agent server and the run went on)."""

from __future__ import annotations

import signal

import httpx

from motet._http import serve


async def hello(scope: dict[str, object], receive: object, send: object) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"hello"})  # type: ignore[operator]


async def test_a_server_answers_without_taking_the_commands_signals() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    async with serve(hello, "127.0.0.1", 0, "test server") as url:
        async with httpx.AsyncClient() as client:
            answer = await client.get(url)
        during = {sig: signal.getsignal(sig) for sig in before}
    assert answer.text == "hello"
    assert during == before
    assert {sig: signal.getsignal(sig) for sig in before} == before
