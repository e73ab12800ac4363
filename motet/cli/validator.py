"""`motet validator serve`: a validator process that watches for the disputes it is drawn for, re-runs them,
commits, reveals and resolves on its own.

It signs as MOTET_PRIVATE_KEY (or MOTET_KEYSTORE, or `--key-file`); its votes (verdicts and salts between
commit and reveal) are kept in motet's home under `validator/`, so a restart still reveals.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from motet.cli._console import err
from motet.cli._options import (
    NOTHING,
    RPC,
    ChainChoice,
    ChainOption,
    ChannelsOption,
    RegistryOption,
    amount_option,
    announce_dev_chain,
)
from motet.units import Wei, format_eth

if TYPE_CHECKING:
    from motet.chain import Chain
    from motet.runtimes import LlamaCppRuntime
    from motet.trust import ValidatorEvent

app = typer.Typer(
    help="Run a validator: re-run the disputes you are drawn for, commit and reveal your verdicts.",
    no_args_is_help=True,
)

_COLOURS = {"cheat": "red", "consistent": "green", "inconclusive": "yellow"}


@app.command("serve")
def serve(
    chain: ChainOption = RPC,
    registry: RegistryOption = None,
    channels: ChannelsOption = None,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            metavar="NAME|PATH",
            help="A model this validator re-runs and declares (repeatable): a bundled model's name (smollm2, "
            "gemma3) or a GGUF file's path. Default: smollm2.",
        ),
    ] = None,
    stake: Annotated[
        Wei,
        amount_option(
            "Register first: stake this much (added to any stake it has) and declare the models "
            "(default: already registered, register nothing)"
        ),
    ] = NOTHING,
    key_file: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="A file holding the validator's private key (hex); default MOTET_PRIVATE_KEY or MOTET_KEYSTORE.",
        ),
    ] = None,
    poll: Annotated[float, typer.Option(min=0.05, help="Seconds between looks at the chain.")] = 2.0,
    threads: Annotated[int | None, typer.Option(min=1, help="llama.cpp threads per model.")] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            file_okay=False, help="Where votes are kept until revealed (default: MOTET_HOME/validator)."
        ),
    ] = None,
) -> None:
    """Watch for disputes this account is drawn for; re-run each, commit, reveal and resolve. Ctrl-C stops.

    A validator stakes (--stake, once) and declares the models it can re-run (--model); the validation
    contract draws validators for a dispute among those declaring its model, weighted by stake. A verdict is
    CONSISTENT, CHEAT or INCONCLUSIVE (evidence that does not hold together, a model it cannot run); one
    that does not reveal loses part of its stake, so keep it running while it has open disputes.

    Example: MOTET_PRIVATE_KEY=0x… motet validator serve --chain http://127.0.0.1:8545 --stake 0.01eth"""
    from motet.trust import Checker, Validator

    chain.require("anvil", "rpc", why="disputes are on a node: use rpc or a node's URL (anvil to try it)")
    if key_file is not None and chain.kind != "rpc":
        raise typer.BadParameter(
            "a key file signs on a node (rpc or a URL); anvil signs with its first dev account",
            param_hint="--key-file",
        )
    runtimes = [_runtime(model, threads) for model in (models or ["smollm2"])]  # unknown models fail here
    node = _open(chain, key_file, registry, channels)

    async def run() -> None:
        with err.status("loading the models"):
            refs = [await runtime.load() for runtime in runtimes]
        validator = Validator(
            node,
            node.default_account,
            Checker(runtimes),
            state_dir=state_dir,
            poll_interval=poll,
            on_event=_show,
        )
        declared = [ref.sha256 for ref in refs]
        if stake:
            await node.off_loop(validator.register, declared, stake)
            err.print(f"registered as a validator with {format_eth(stake)} staked")
        announce_dev_chain(node, err, used={0: "this validator's"})
        staked = await node.off_loop(validator.disputes.validator_stake, validator.address)
        if not staked:
            err.print(
                f"[yellow]{validator.address} is not a registered validator: it will never be drawn. "
                "Register it with --stake.[/]"
            )
        for ref in refs:
            err.print(f"re-runs {ref}")
        err.print(
            f"[bold]validator[/] {validator.address} watching {node.url or node.kind} every {poll:g}s. "
            "Ctrl-C stops."
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, validator.stop)
        try:
            await validator.run()
        finally:
            for runtime in runtimes:
                await runtime.aclose()
        err.print("stopped")

    try:
        asyncio.run(run())
    finally:
        node.close()


def _open(chain: ChainChoice, key_file: Path | None, registry: str | None, channels: str | None) -> Chain:
    if key_file is not None and key_file.stat().st_mode & 0o077:
        err.print(f"[yellow]{key_file} can be read by other users: chmod 600 it[/]")
    key = key_file.read_text().strip() if key_file is not None else None
    return chain.open(
        registry=registry, channels=channels, key=key, signer="the validator", key_option="--key-file FILE"
    )


def _runtime(model: str, threads: int | None) -> LlamaCppRuntime:
    from motet.errors import ModelNotFound
    from motet.runtimes import LlamaCppRuntime

    if model.endswith(".gguf") or "/" in model:
        return LlamaCppRuntime(Path(model), n_threads=threads)
    try:
        return LlamaCppRuntime(model=model, n_threads=threads)
    except ModelNotFound:  # said for the command line: --model, not the Python argument
        raise ModelNotFound(
            model,
            "no bundled model has this name: give --model a bundled model's name (`motet models` lists them) or a "
            "GGUF file's path (ending in .gguf)",
        ) from None


def _show(event: ValidatorEvent) -> None:
    colour = _COLOURS.get(event.verdict.label, "white") if event.verdict is not None else "cyan"
    if event.step == "failed":
        colour = "yellow"
    where = f"dispute #{event.dispute}" if event.dispute is not None else "validator"
    err.print(f"[{colour}]{where}[/] {event.step}: {event.detail}", highlight=False)
