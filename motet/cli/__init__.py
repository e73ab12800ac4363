"""The `motet` command line: one module per command group.

    motet agent serve | register | redeem     agent.py    run built-in agents, get paid
    motet channel open | sign | show          channel.py  pay an agent from a shell
    motet run                                 run.py      run a workflow or a goal, live
    motet runs | show | resume                runs.py     the runs kept in motet's home, after a crash
    motet gateway | delegate | order          gateway.py  wallet delegation from a terminal
    motet deposit | withdraw | revoke         wallet.py   the wallet's own transactions
    motet models                              models.py   the bundled GGUF models
    motet validator serve                     validator.py re-run disputes, commit and reveal verdicts
    motet demo                                demo.py     the story and the figures
    motet tui                                 tui.py      the terminal app

Options several commands share (`--chain`, amounts, `-i name=value`) are parsed in `_options.py`. An amount
is typed with its unit (`150gwei`, `0.01eth`, `2500wei`); a bare number is gwei.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console

from motet.cli import agent, channel, demo, gateway, models, run, runs, tui, validator, wallet, workflow
from motet.errors import MotetError

if TYPE_CHECKING:
    from types import FrameType

    import httpx

__all__ = ["app", "main"]

app = typer.Typer(
    name="motet",
    help="Compose AI agents on open-source models, discovered on an EVM chain and paid per call.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("demo")(demo.demo)
app.command("tui")(tui.tui)
app.command("run")(run.run)
app.command("models")(models.models)
app.add_typer(runs.app, name="runs")
app.add_typer(agent.app, name="agent")
app.add_typer(channel.app, name="channel")
app.add_typer(validator.app, name="validator")
app.add_typer(workflow.app, name="workflow")
app.command("gateway")(gateway.gateway)
app.command("delegate")(gateway.delegate)
app.command("order")(gateway.order)
app.command("deposit")(wallet.deposit)
app.command("withdraw")(wallet.withdraw)
app.command("revoke")(wallet.revoke)


@app.command()
def version() -> None:
    """Print motet's version (also `motet --version`)."""
    from importlib.metadata import version as dist_version

    from motet.cli._console import out

    out.print(f"motet {dist_version('motet')}")


def _print_version(value: bool) -> None:
    if value:
        version()
        raise typer.Exit()


@app.callback()
def _options(
    show_version: bool = typer.Option(
        False, "--version", help="Print motet's version and exit.", callback=_print_version, is_eager=True
    ),
) -> None:
    """Compose AI agents on open-source models, discovered on an EVM chain and paid per call."""


def main() -> None:
    """Entry point: motet's own errors print as one red line and exit 1, without a traceback."""
    import httpx

    console = Console(stderr=True, soft_wrap=True)  # one line, however narrow the terminal
    _stop_on_sigterm()
    try:
        app()
    except MotetError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise SystemExit(1) from None
    except httpx.TransportError as exc:  # a gateway or agent URL where nothing answers
        console.print(
            f"[red]error:[/] nothing answers at {_url_of(exc)} ({exc}): check the URL and that it runs"
        )
        raise SystemExit(1) from None


def _stop_on_sigterm() -> None:
    """SIGTERM (`kill`, a service manager, a test) stops every command as ctrl+c does, so `finally` blocks run
    and what the command started stops with it (the agents it serves, the anvil it started): a KeyboardInterrupt,
    raised by the event loop between tasks when one runs (every task is then cancelled and cleans up), at once
    otherwise. uvicorn catches SIGTERM while it serves, stops the server, then raises it again here."""
    import asyncio
    import signal
    import threading

    def interrupt() -> None:
        raise KeyboardInterrupt

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            interrupt()
        else:
            loop.call_soon_threadsafe(interrupt)

    if threading.current_thread() is threading.main_thread():  # signals are for the main thread only
        signal.signal(signal.SIGTERM, on_sigterm)


def _url_of(exc: httpx.TransportError) -> str:
    try:
        return str(exc.request.url)
    except RuntimeError:  # httpx raises when the error has no request attached
        return "the server"
