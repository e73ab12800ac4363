"""`motet demo`: the market story, then the money path at scale, on a chain started for it."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from motet.cli._console import out
from motet.cli._options import EMBEDDED, ChainOption


def demo(
    chain: ChainOption = EMBEDDED,
    calls: Annotated[
        int, typer.Option(min=1, help="How many paid calls to sign and settle at scale.")
    ] = 1_000,
    story: Annotated[
        bool, typer.Option(help="Run the agent market and research-brief workflow on the local model first.")
    ] = True,
    threads: Annotated[int | None, typer.Option(min=1, help="llama.cpp threads.")] = None,
) -> None:
    """The whole story on a new chain: a paid, failed-over, settled run, then --calls vouchers in one batch.

    A market of agents on the local model runs a research-brief workflow with failover and settlement; then
    CALLS vouchers are signed and settled in one batch, with the gas per paid call. On embedded or anvil."""
    from motet.demo import run_demo, run_story
    from motet.runtimes import LlamaCppRuntime

    chain.require(
        "embedded", "anvil", why="the demo needs a new chain's funded dev accounts: embedded or anvil"
    )
    with chain.open() as node:
        if story:
            asyncio.run(run_story(node, console=out, runtime=LlamaCppRuntime(n_threads=threads)))
        run_demo(node, calls=calls, console=out)
