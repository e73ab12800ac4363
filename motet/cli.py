"""The `motet` command line."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from motet.errors import MotetError

app = typer.Typer(
    name="motet",
    help="Compose AI agents on open-source models, discovered on an EVM chain and paid per call.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@app.command()
def demo(
    chain: Annotated[
        str, typer.Option(help="Where to run: 'embedded' (in-process py-evm) or 'anvil'.")
    ] = "embedded",
    calls: Annotated[int, typer.Option(min=1, help="How many paid calls to sign and settle.")] = 1_000,
) -> None:
    """Deploy, register three agents, pay CALLS calls with vouchers, settle in one batch, print the gas."""
    from motet.chain import Chain
    from motet.demo import run_demo

    if chain == "embedded":
        run_demo(Chain.embedded(), calls=calls, console=console)
    elif chain == "anvil":
        with Chain.anvil() as node:
            run_demo(node, calls=calls, console=console)
    else:
        raise typer.BadParameter(f"unknown chain {chain!r}: use 'embedded' or 'anvil'", param_hint="--chain")


@app.command()
def version() -> None:
    """Print motet's version."""
    from importlib.metadata import version as dist_version

    console.print(f"motet {dist_version('motet')}")


def main() -> None:
    """Entry point: motet's own errors print as one red line and exit 1, without a traceback."""
    try:
        app()
    except MotetError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise SystemExit(1) from None
