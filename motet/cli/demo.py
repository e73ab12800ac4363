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
    cheater: Annotated[
        bool,
        typer.Option(
            "--cheater",
            help="Then a cheating agent (a cheaper model under the honest model's name): caught by a sampled "
            "check, disputed, decided by three validators and slashed, with every amount printed.",
        ),
    ] = False,
) -> None:
    """The whole story on a new chain: a paid, failed-over, settled run, then --calls vouchers in one batch.

    A market of agents on the local model runs a research-brief workflow with failover and settlement; then
    CALLS vouchers are signed and settled in one batch, with the gas per paid call. One paid call is checked
    by re-running its model; --cheater adds a cheat caught, disputed and slashed. On embedded or anvil."""
    from motet.demo import run_demo, run_story
    from motet.runtimes import LlamaCppRuntime

    chain.require(
        "embedded", "anvil", why="the demo needs a new chain's funded dev accounts: embedded or anvil"
    )
    if cheater and not story:
        raise typer.BadParameter(
            "the cheater joins the story's market: drop --no-story", param_hint="--cheater"
        )
    with chain.open() as node:
        if story:
            runtime = LlamaCppRuntime(n_threads=threads)
            asyncio.run(run_story(node, console=out, runtime=runtime, cheater=cheater, n_threads=threads))
        run_demo(node, calls=calls, console=out)
