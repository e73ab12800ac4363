"""The demo's market and workflows, for the commands that run on a chain started for them (`motet run`,
`motet gateway`, `motet tui`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from motet.cli._console import err

if TYPE_CHECKING:
    from motet.chain import Chain
    from motet.composer import Workflow
    from motet.registry import Registry


@contextlib.asynccontextmanager
async def market_registry(
    chain: Chain, *, serve_agents: bool, threads: int | None
) -> AsyncIterator[Registry]:
    """The registry a command runs against: the one on `chain`, after serving motet's built-in agents on the
    local model and registering them there when `serve_agents` (until the block ends)."""
    from motet.demo import local_market
    from motet.registry import Registry
    from motet.runtimes import LlamaCppRuntime

    if not serve_agents:
        yield Registry(chain)
        return
    async with contextlib.AsyncExitStack() as stack:
        with err.status("starting the local agents"):
            market = await stack.enter_async_context(
                local_market(chain, LlamaCppRuntime(n_threads=threads), failing=False)
            )
        yield market.registry


def workflow_catalog(paths: Iterable[Path]) -> dict[str, Workflow]:
    """The research brief and the workflow files at `paths`, by name: what `motet gateway` and `motet tui`
    offer."""
    from motet.composer import Workflow
    from motet.demo import research_brief

    flows = {"research-brief": research_brief()}
    for path in paths:
        flow = Workflow.load(path)
        flows[flow.name] = flow
    return flows
