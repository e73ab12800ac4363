"""`motet agent ...` (serve, register, redeem) and `motet channel ...` (open, sign, show).

Commands other than `agent serve --chain anvil` talk to the chain at `MOTET_RPC_URL` as the account in
`MOTET_PRIVATE_KEY` (or `MOTET_KEYSTORE`). Vouchers are kept in SQLite ledgers under `MOTET_HOME`
(default `~/.motet`), one per account and chain, so a payer never signs below what it signed before and
an agent can redeem what it received after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from motet.chain import Chain
    from motet.payments.ledger import Ledger
    from motet.registry import Registry

agent_app = typer.Typer(help="Serve, register and get paid as an agent.", no_args_is_help=True)
channel_app = typer.Typer(help="Open payment channels to agents and sign vouchers.", no_args_is_help=True)
console = Console(stderr=True)
out = Console(highlight=False, soft_wrap=True)


def _ledger_path(chain: Chain, role: str) -> Path:
    from motet.settings import Settings

    home = Settings.from_env().home
    home.mkdir(parents=True, exist_ok=True)
    return home / f"{role}-{chain.default_account.address.lower()}-{chain.chain_id}.sqlite"


def _ledger(chain: Chain, role: str) -> Ledger:
    from motet.payments.ledger import Ledger

    return Ledger(_ledger_path(chain, role))


def _rpc_chain(channels: str | None = None) -> Chain:
    from motet.chain import Chain

    chain = Chain.connect()
    if channels:
        chain.use("PaymentChannels", channels)
    return chain


Contract = Annotated[
    str | None,
    typer.Option(
        "--contract",
        envvar="MOTET_CHANNELS",
        help="The PaymentChannels address (the 402's extra.channels); default motet's deployment.",
    ),
]


@agent_app.command("serve")
def serve(
    capabilities: Annotated[
        list[str] | None,
        typer.Argument(help="Built-in capabilities to serve (default: all of them)."),
    ] = None,
    price: Annotated[int, typer.Option(min=0, help="Price per call, in wei.")] = 10**15,
    price_per_1k: Annotated[int, typer.Option(min=0, help="Price per 1,000 tokens, in wei.")] = 0,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port).")] = 8000,
    url: Annotated[
        str | None, typer.Option(help="Public base URL for the card (default: where it listens).")
    ] = None,
    chain: Annotated[
        str, typer.Option(help="'rpc' (MOTET_RPC_URL + MOTET_PRIVATE_KEY) or 'anvil' (start a local node).")
    ] = "rpc",
    register: Annotated[bool, typer.Option(help="Register the agent on chain once it listens.")] = True,
    stake: Annotated[int, typer.Option(min=0, help="Stake sent with the registration, in wei.")] = 0,
    name: Annotated[str | None, typer.Option(help="The agent's name in its card.")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="llama.cpp threads.")] = None,
    endpoint_model: Annotated[
        str | None,
        typer.Option(
            help="Run on an OpenAI-compatible endpoint (MOTET_ENDPOINT_URL) with this model id instead of the local model."
        ),
    ] = None,
) -> None:
    """Serve built-in agents on the local model (or an endpoint), paid per call through payment channels."""
    from motet.agents import AgentServer, builtin_agent
    from motet.chain import Chain
    from motet.registry import Registry
    from motet.runtimes import LlamaCppRuntime, OpenAIEndpointRuntime, Runtime

    runtime: Runtime = (
        OpenAIEndpointRuntime(endpoint_model) if endpoint_model else LlamaCppRuntime(n_threads=threads)
    )
    try:
        agent = builtin_agent(
            *(capabilities or ()), runtime=runtime, name=name, price=price, price_per_1k_tokens=price_per_1k
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="CAPABILITIES") from None
    if chain == "anvil":
        node = Chain.anvil()
        console.print(f"anvil at {node.url} (chain id {node.chain_id}); payers: MOTET_RPC_URL={node.url}")
    elif chain == "rpc":
        node = Chain.connect()
    else:
        raise typer.BadParameter(f"unknown chain {chain!r}: use 'rpc' or 'anvil'", param_hint="--chain")

    async def run() -> None:
        server = AgentServer(
            agent,
            chain=node,
            account=node.default_account,
            url=url,
            ledger=_ledger(node, "agent"),
            tab=_ledger_path(node, "tab"),
        )
        with console.status("loading the model"):
            async with server.running(host, port) as base:
                if register:
                    agent_id = await server.register(Registry(node), stake=stake)
                    console.print(f"registered as agent {agent_id} on {server.registry}")
                console.print(
                    f"[bold]{agent.name}[/] serving {', '.join(agent.capabilities)} at {base} "
                    f"for {price} wei per call; payee {node.default_account.address}. Ctrl-C stops."
                )
                await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        node.close()


@agent_app.command("register")
def register_agent(
    url: Annotated[str, typer.Argument(help="The running agent's base URL.")],
    stake: Annotated[int, typer.Option(min=0, help="Stake sent with the registration, in wei.")] = 0,
) -> None:
    """Register a running agent from its card; its receipts must be signed by this account."""
    from motet.agents import fetch_card
    from motet.errors import InvalidAgentCard
    from motet.registry import Registry

    node = _rpc_chain()
    base = url.rstrip("/")
    card = asyncio.run(fetch_card(f"{base}/.well-known/agent-registration.json"))
    account = node.default_account
    if card.signer != account.address:
        raise InvalidAgentCard(
            "signer", f"the card's signer is {card.signer}, this account is {account.address}"
        )
    registry = Registry(node)
    agent_id = registry.register(
        f"{base}/.well-known/agent-registration.json",
        [spec.name for spec in card.capabilities],
        card.pricing.per_call,
        payout=account.address,
        stake=stake,
    )
    out.print(agent_id)


@agent_app.command("redeem")
def redeem() -> None:
    """Redeem every voucher this account received as an agent, in batched transactions."""
    from motet.payments.channels import ChannelClient

    node = _rpc_chain()
    channels = ChannelClient(node, node.default_account, _ledger(node, "agent"))
    results = channels.redeem()
    if not results:
        console.print("nothing to redeem")
    for result in results:
        out.print(
            f"{result.tx_hash}: {result.vouchers} vouchers, paid {result.paid} wei, {result.gas_used} gas"
        )


@channel_app.command("open")
def open_channel(
    to: Annotated[str, typer.Option("--to", help="The agent's payout address (the 402's payTo).")],
    deposit: Annotated[int, typer.Option(min=1, help="Deposit, in wei.")],
    contract: Contract = None,
) -> None:
    """Open a channel to an agent; prints the channel id."""
    from motet.payments.channels import ChannelClient

    node = _rpc_chain(contract)
    state = ChannelClient(node, node.default_account, _ledger(node, "payer")).open(to, deposit)
    out.print(hex(state.channel_id))


@channel_app.command("sign")
def sign(
    channel: Annotated[str, typer.Argument(help="The channel id (0x-hex or decimal).")],
    amount: Annotated[int, typer.Argument(min=1, help="The cumulative amount: the agent's `owed`.")],
    contract: Contract = None,
) -> None:
    """Sign a voucher for the cumulative AMOUNT on CHANNEL; prints it as JSON."""
    from motet.payments.channels import ChannelClient

    node = _rpc_chain(contract)
    voucher = ChannelClient(node, node.default_account, _ledger(node, "payer")).sign(int(channel, 0), amount)
    out.print(json.dumps(voucher.to_dict()))


@channel_app.command("show")
def show(
    channel: Annotated[str, typer.Argument(help="The channel id (0x-hex or decimal).")],
    contract: Contract = None,
) -> None:
    """Print a channel's state on chain."""
    from motet.payments.channels import ChannelClient

    node = _rpc_chain(contract)
    state = ChannelClient(node, node.default_account).channel(int(channel, 0))
    out.print(
        json.dumps(
            {
                "channel": hex(state.channel_id),
                "payer": state.payer,
                "payee": state.payee,
                "deposit": str(state.deposit),
                "redeemed": str(state.redeemed),
                "closesAt": state.closes_at,
                "settled": state.settled,
            }
        )
    )


@contextlib.asynccontextmanager
async def serving_local_agents(chain: Chain, threads: int | None) -> AsyncIterator[Registry]:
    """motet's built-in agents on the local model, served and registered on `chain`; yields the registry."""
    from motet.market import local_market
    from motet.runtimes import LlamaCppRuntime

    status = console.status("starting the local agents")
    status.start()
    async with local_market(chain, LlamaCppRuntime(n_threads=threads), failing=False) as market:
        status.stop()
        yield market.registry


def run_workflow(
    workflow: Annotated[
        Path | None, typer.Argument(help="A workflow file (.toml, .yaml); omit with --goal.", exists=True)
    ] = None,
    inputs: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="An input field as name=value (repeatable).")
    ] = None,
    goal: Annotated[str | None, typer.Option(help="Plan a workflow that ends in this capability.")] = None,
    budget: Annotated[int, typer.Option(min=1, help="The most the run may spend, in wei.")] = 10**16,
    chain: Annotated[
        str,
        typer.Option(help="'embedded' (with --local-agents) or 'rpc' (MOTET_RPC_URL + MOTET_PRIVATE_KEY)."),
    ] = "rpc",
    local_agents: Annotated[
        bool, typer.Option(help="Serve and register motet's built-in agents on the local model first.")
    ] = False,
    resume: Annotated[
        str | None, typer.Option(help="Resume the run with this id from its checkpoint.")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="llama.cpp threads for --local-agents.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outputs as JSON only.")] = False,
) -> None:
    """Run a workflow file, or plan one from --goal, paying each call; live progress, then the report."""
    from motet.chain import Chain
    from motet.composer import Payer, Workflow
    from motet.composer.progress import report_table, watch
    from motet.composer.workflow import CompiledWorkflow
    from motet.registry import Registry

    if (workflow is None) == (goal is None):
        raise typer.BadParameter("give a workflow file or --goal, not both and not neither")
    values: dict[str, str] = {}
    for item in inputs or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{item!r} is not name=value", param_hint="--input")
        values[name] = value
    if chain == "embedded":
        node = Chain.embedded()
        local_agents = True
    elif chain == "rpc":
        node = Chain.connect()
    else:
        raise typer.BadParameter(f"unknown chain {chain!r}: use 'embedded' or 'rpc'", param_hint="--chain")

    async def compose(registry: Registry, payer: Payer) -> CompiledWorkflow:
        if workflow is not None:
            flow = Workflow.load(workflow)
        else:
            assert goal is not None
            schema = {
                "type": "object",
                "properties": {k: {"type": "string"} for k in values},
                "required": list(values),
            }
            flow, found = await Workflow.from_goal(goal, inputs=schema, registry=registry)
            console.print(found.explain())
        return await flow.compile(
            registry,
            payer=payer,
            budget=budget,
            checkpoints=_ledger_path(node, "runs") if chain == "rpc" else None,
        )

    async def go(registry: Registry) -> None:
        payer = Payer(
            node,
            node.default_account,
            store=_ledger_path(node, "calls") if chain == "rpc" else ":memory:",
            ledger=_ledger(node, "payer") if chain == "rpc" else None,
        )
        try:
            runnable = await compose(registry, payer)
            if not as_json:
                console.print(runnable.ascii())
            report = runnable.new_report(resume or "")
            stream = runnable.stream(None if resume else values, run_id=resume, report=report)
            if as_json:
                async for _event in stream:
                    pass
            else:
                await watch(stream, report, console)
                console.print(report_table(report))
            out.print(json.dumps(report.outputs, indent=None if as_json else 2))
        finally:
            await payer.aclose()

    async def main() -> None:
        if not local_agents:
            await go(Registry(node))
            return
        async with serving_local_agents(node, threads) as registry:
            await go(registry)

    asyncio.run(main())
