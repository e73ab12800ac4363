"""Blocking chain calls kept off the event loop.

A node's reads and transactions wait on the network, so they run on worker threads and a slow node delays only
the requests that wait for it. The in-process embedded chain answers at once and is not safe to use from two
threads (the agents and the caller use it too), so its calls run where they are made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from motet.chain import Chain

P = ParamSpec("P")
T = TypeVar("T")


async def off_loop(chain: Chain, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`call(*args, **kwargs)` on a worker thread, or at once on the embedded chain."""
    if chain.kind == "embedded":
        return call(*args, **kwargs)
    return await asyncio.to_thread(call, *args, **kwargs)
