"""`motet agent serve | register | redeem`: run built-in agents, or your own (`--agent myagent.py:agent`), and get
paid through payment channels.

On a node (`--chain rpc` or a URL) the agent signs as MOTET_PRIVATE_KEY (or MOTET_KEYSTORE); the vouchers it
receives are kept in motet's home, so it can redeem them after a restart.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from motet.cli._console import err, out
from motet.cli._home import ledger, ledger_path
from motet.cli._options import (
    NOTHING,
    RPC,
    ChainOption,
    ChannelsOption,
    RegistryOption,
    amount_option,
    announce_dev_chain,
    open_node,
)
from motet.units import ETH, Wei, format_gwei, plural

DEFAULT_PRICE = Wei(ETH // 1000)
Stake = Annotated[Wei, amount_option("Stake sent with the registration (none by default)")]

app = typer.Typer(
    help="Serve built-in agents or your own, register them, and redeem what they are paid.",
    no_args_is_help=True,
)


@app.command("serve")
def serve(
    capabilities: Annotated[
        list[str] | None,
        typer.Argument(help="Built-in capabilities to serve (default: all of them; not with --agent)."),
    ] = None,
    agent_spec: Annotated[
        str | None,
        typer.Option(
            "--agent",
            metavar="FILE.py:NAME|MODULE:NAME",
            help="Serve your own Agent instead: the Python file (or module) that defines it and the variable "
            "that holds it, e.g. myagent.py:agent. Its price stands unless --price is given; without a runtime "
            "it runs on the local model (or --endpoint-model).",
        ),
    ] = None,
    price: Annotated[
        Wei | None, amount_option("Price per call (built-ins: 0.001eth; --agent: the agent's own)")
    ] = None,
    price_per_1k: Annotated[
        Wei, amount_option("Price per 1,000 tokens, beside the price per call (none by default)")
    ] = NOTHING,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port).")] = 8000,
    url: Annotated[
        str | None, typer.Option(help="Public base URL for the card (default: where it listens).")
    ] = None,
    chain: ChainOption = RPC,
    registry: RegistryOption = None,
    channels: ChannelsOption = None,
    register: Annotated[bool, typer.Option(help="Register the agent on chain once it listens.")] = True,
    stake: Stake = NOTHING,
    name: Annotated[str | None, typer.Option(help="The agent's name in its card.")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="llama.cpp threads.")] = None,
    endpoint_model: Annotated[
        str | None,
        typer.Option(
            help="Run on an OpenAI-compatible endpoint (MOTET_ENDPOINT_URL) with this model id instead of the local model."
        ),
    ] = None,
    redeem_above: Annotated[
        Wei | None,
        amount_option("Redeem everything held once the unredeemed total reaches this (default 0.1eth)"),
    ] = None,
    redeem_after: Annotated[
        float | None,
        typer.Option(min=0, help="Redeem everything held once the oldest voucher waited this many seconds."),
    ] = None,
    watch_interval: Annotated[
        float | None,
        typer.Option(
            min=0.1, help="Seconds between looks at the chain for closing channels (redeemed at once)."
        ),
    ] = None,
) -> None:
    """Serve built-in agents on the local model (or an endpoint), or your own agent (--agent), paid per call
    through payment channels.

    With --chain anvil it starts a local node first and prints, for other terminals, its URL, motet's contracts
    and funded dev keys as `export` lines (docs/operations.md, "Several terminals on one chain")."""
    from motet.agents import AgentServer, builtin_agent, load_agent
    from motet.errors import InvalidAgentDefinition
    from motet.registry import Registry
    from motet.runtimes import LlamaCppRuntime, OpenAIEndpointRuntime, Runtime

    chain.require(
        "anvil", "rpc", why="payers cannot reach an in-process chain: use anvil, rpc or a node's URL"
    )
    if agent_spec is not None and capabilities:
        raise typer.BadParameter(
            f"give built-in capabilities ({' '.join(capabilities)}) or --agent, not both: serve each in its own "
            "`motet agent serve`",
            param_hint="--agent",
        )
    if endpoint_model and not os.environ.get("MOTET_ENDPOINT_URL"):
        raise typer.BadParameter(
            "the endpoint is read from MOTET_ENDPOINT_URL, which is not set: export MOTET_ENDPOINT_URL="
            "http://HOST:PORT/v1",
            param_hint="--endpoint-model",
        )
    runtime: Runtime = (
        OpenAIEndpointRuntime(endpoint_model) if endpoint_model else LlamaCppRuntime(n_threads=threads)
    )
    if agent_spec is not None:
        try:
            agent = load_agent(agent_spec)
        except InvalidAgentDefinition as exc:
            raise typer.BadParameter(str(exc), param_hint="--agent") from None
        agent.runtime = agent.runtime or runtime
        agent.price = agent.price if price is None else price
        agent.price_per_1k_tokens = price_per_1k or agent.price_per_1k_tokens
        if name is not None and not 1 <= len(name) <= 64:
            raise typer.BadParameter(f"agent name {name!r} must be 1 to 64 characters", param_hint="--name")
        agent.name = name or agent.name
    else:
        try:
            agent = builtin_agent(
                *(capabilities or ()),
                runtime=runtime,
                name=name,
                price=DEFAULT_PRICE if price is None else price,
                price_per_1k_tokens=price_per_1k,
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="CAPABILITIES") from None
    node = chain.open(registry=registry, channels=channels, signer="the agent")

    async def run() -> None:
        server = AgentServer(
            agent,
            chain=node,
            account=node.default_account,
            url=url,
            ledger=ledger(node, "agent"),
            tab=ledger_path(node, "tab"),
            redeem_above=redeem_above,
            redeem_after=redeem_after,
            watch_interval=watch_interval,
        )
        with err.status("loading the model"):
            async with server.running(host, port) as base:
                if register:
                    agent_id = await server.register(Registry(node), stake=stake)
                    err.print(f"registered as agent {agent_id} on {server.registry}")
                announce_dev_chain(node, err, used={0: "this agent's (for `motet agent redeem`)"})
                err.print(
                    f"[bold]{agent.name}[/] serving {', '.join(agent.capabilities)} at {base} "
                    f"for {format_gwei(agent.price)} per call; payee {node.default_account.address}. Ctrl-C stops."
                )
                await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        node.close()


@app.command("register")
def register_agent(
    url: Annotated[str, typer.Argument(help="The running agent's base URL.")],
    stake: Stake = NOTHING,
    chain: ChainOption = RPC,
    registry: RegistryOption = None,
) -> None:
    """Register a running agent from its card (its receipts must be signed by this account); prints its id."""
    from motet.agents import fetch_card
    from motet.errors import InvalidAgentCard
    from motet.registry import Registry

    node = open_node(chain, registry=registry, signer="the agent")
    base = url.rstrip("/")
    card = asyncio.run(fetch_card(f"{base}/.well-known/agent-registration.json", allow_private=True))
    account = node.default_account
    if card.signer != account.address:
        raise InvalidAgentCard(
            "signer", f"the card's signer is {card.signer}, this account is {account.address}"
        )
    agent_id = Registry(node).register(
        f"{base}/.well-known/agent-registration.json",
        [spec.name for spec in card.capabilities],
        card.pricing.per_call,
        payout=account.address,
        stake=stake,
    )
    out.print(agent_id)


@app.command("redeem")
def redeem(chain: ChainOption = RPC, channels: ChannelsOption = None) -> None:
    """Redeem every voucher this account received as an agent, in batched transactions: on each channels
    contract of this chain that motet's home holds vouchers for (only the one at --channels when given)."""
    from motet.errors import ChainError, ChannelNotFound
    from motet.payments import ChannelClient, Redemption

    node = open_node(chain, channels=channels, signer="the agent")
    path = ledger_path(node, "agent")
    results: list[Redemption] = []
    with ledger(node, "agent") as held:
        contracts = [node.contract("PaymentChannels").address] if channels else held.contracts(node.chain_id)
        for contract in contracts:
            try:  # each contract on a connection of its own: each binds the registry it was deployed with
                each = node if channels else open_node(chain, channels=contract, signer="the agent")
            except (typer.BadParameter, ChainError) as exc:  # a dev chain's earlier run: gone with it
                err.print(f"[yellow]vouchers on {contract} left: {exc}[/]", highlight=False)
                continue
            client = ChannelClient(each, each.default_account, held)
            live = []
            for voucher in held.unredeemed(client.domain):
                try:
                    client.channel(voucher.channel_id)
                except ChannelNotFound:  # an earlier dev chain's, at the same address
                    err.print(f"[yellow]channel {hex(voucher.channel_id)} is not on {contract}: left[/]")
                    continue
                live.append(voucher)
            results += client.redeem(live) if live else []
    if not results:
        err.print(_nothing_to_redeem(node.default_account.address, node.chain_id, path), highlight=False)
    for result in results:
        out.print(
            f"{result.tx_hash}: {plural(result.vouchers, 'voucher')}, paid {format_gwei(result.paid)}, "
            f"{result.gas_used:,} gas"
        )


def _nothing_to_redeem(address: str, chain_id: int, path: Path) -> str:
    """Why there is nothing to redeem, and where else vouchers may be: another account's ledger in this home, or
    another home."""
    others = sorted(
        found.name.split("-")[1]
        for found in path.parent.glob(f"agent-0x*-{chain_id}.sqlite")
        if found != path and found.stat().st_size
    )
    said = f"nothing to redeem: {path} holds no unredeemed voucher received by {address} on chain {chain_id}"
    if others:
        return (
            f"{said}; this home holds vouchers received by {', '.join(others)}: redeem as that agent, with its key "
            "in MOTET_PRIVATE_KEY"
        )
    return f"{said}; an agent keeps its vouchers in its MOTET_HOME: redeem with the MOTET_HOME `motet agent serve` ran with"
