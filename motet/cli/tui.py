"""`motet tui`: the terminal app over the demo's market, on a new in-process chain."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated

import typer


def tui(
    workflows: Annotated[
        list[Path] | None,
        typer.Argument(help="Workflow files (.toml/.yaml) to offer beside the research brief.", exists=True),
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="llama.cpp threads.")] = None,
) -> None:
    """The market, the composer, runs and the wallet in a terminal UI.

    On the embedded chain, with a local market of agents on the bundled model (MOTET_TUI_RUNTIME=function: a
    fast deterministic runtime instead)."""
    from motet.chain import Chain
    from motet.cli._market import workflow_catalog
    from motet.demo import DOCUMENT, Document, local_market
    from motet.runtimes import Runtime
    from motet.tui import make_app

    runtime: Runtime
    if os.environ.get("MOTET_TUI_RUNTIME") == "function":
        from motet.runtimes.testing import deterministic_runtime

        runtime = deterministic_runtime()
    else:
        from motet.runtimes import LlamaCppRuntime

        runtime = LlamaCppRuntime(n_threads=threads)
    chain = Chain.embedded()
    make_app(
        chain,
        functools.partial(local_market, chain, runtime),
        workflows=workflow_catalog(workflows or ()),
        inputs={"document": DOCUMENT},
        goal_inputs=Document,
    ).run()
