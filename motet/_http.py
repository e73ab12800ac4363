"""Serving an ASGI app with uvicorn inside the caller's event loop (agents and the gateway)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any


@contextlib.asynccontextmanager
async def serve(app: Any, host: str, port: int, what: str) -> AsyncIterator[str]:
    """Serve `app` on `host:port` (0: a free port) until the block ends; yields the base URL."""
    import uvicorn

    # Keep idle connections open longer than clients keep them (httpx: 5 s), so a client never reuses a
    # connection the server is closing at that very moment (a ReadError on a loaded event loop).
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off", timeout_keep_alive=30
    )
    server = uvicorn.Server(config)
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
