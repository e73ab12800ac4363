"""Serving an ASGI app with uvicorn inside the caller's event loop (agents and the gateway)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any


def _server_class() -> type[Any]:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn inside motet's event loop: signals belong to the command, not to one of its servers.

        uvicorn's own handler would turn SIGTERM or ctrl+c into a graceful stop of that server alone, while the
        rest of the command (a run paying other agents, the anvil it started) went on; motet's CLI stops the
        whole command instead, and every server stops as its block ends."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server


@contextlib.asynccontextmanager
async def serve(app: Any, host: str, port: int, what: str) -> AsyncIterator[str]:
    """Serve `app` on `host:port` (0: a free port) until the block ends; yields the base URL."""
    import uvicorn

    # Keep idle connections open longer than clients keep them (httpx: 5 s), so a client never reuses a
    # connection the server is closing at that very moment (a ReadError on a loaded event loop).
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off", timeout_keep_alive=30
    )
    server = _server_class()(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError(f"the {what} did not start on {host}:{port}")
            await asyncio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        await task
