"""`motet gateway`, `motet delegate` and `motet order`: wallet delegation from a terminal (docs/gateway.md).

The gateway runs tasks that a wallet signed, under a budget the wallet delegated to the gateway's session key;
`delegate` and `order` are the wallet's side, signing with `--key` or through a wallet that the typed data is
pasted into.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from motet.cli._console import err, out
from motet.cli._gateway_api import DEFAULT_GATEWAY, GatewayURL, answer, client, domain, sign_typed
from motet.cli._home import home
from motet.cli._options import (
    EMBEDDED,
    ChainOption,
    ChannelsOption,
    InputsOption,
    RegistryOption,
    amount_option,
    announce_dev_chain,
    parse_inputs,
)
from motet.errors import MotetError
from motet.units import ETH, Wei, format_amount, format_gwei

if TYPE_CHECKING:
    import httpx
    from eth_account.signers.local import LocalAccount

    from motet.chain import Chain
    from motet.payments import Delegation
    from motet.registry import Registry

Key = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="MOTET_DELEGATOR_KEY",
        help="Sign with this private key (hex) instead of pasting a signature from your wallet.",
    ),
]
Delegator = Annotated[
    str | None, typer.Option("--from", help="The wallet address that signs (not needed with --key).")
]
FUNDING = ETH // 100
"""What `--fund` puts into a wallet's balance on a dev chain."""
SESSION_GAS = ETH
"""What the session key gets on a dev chain, for the gas of registering delegations, opening channels, settling."""


def _session_key(chain: Chain, given: str | None) -> LocalAccount:
    """The gateway's session key: given, or kept in motet's home (created on first use, mode 0600)."""
    from eth_account import Account

    key: LocalAccount
    if given:
        key = Account.from_key(given)
    elif chain.kind == "embedded":
        key = Account.create()  # a new chain each start: a new key
    else:
        key = Account.from_key(private_key_file(home() / f"gateway-session-key-{chain.chain_id}"))
    return key


def private_key_file(path: Path) -> str:
    """The private key kept in `path`, created (a new key) on first use; the file is made private (mode 0600)
    whether it was just created or already there, with looser permissions, from an older motet or a copy."""
    from eth_account import Account

    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
    else:
        with os.fdopen(descriptor, "w") as file:
            file.write(Account.create().key.hex())
    return path.read_text().strip()


def gateway(
    chain: ChainOption = EMBEDDED,
    registry: RegistryOption = None,
    channels: ChannelsOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port).")] = 8402,
    workflows: Annotated[
        list[Path] | None,
        typer.Option("--workflow", exists=True, help="A workflow file orders may name (repeatable)."),
    ] = None,
    session_key: Annotated[
        str | None,
        typer.Option(
            envvar="MOTET_SESSION_KEY",
            help="The session key (hex). Default: one kept in motet's home for this chain.",
        ),
    ] = None,
    fund: Annotated[
        list[str] | None,
        typer.Option(
            metavar="ADDRESS",
            help=f"On embedded or anvil, put {format_amount(FUNDING)} into this wallet's balance in the channels "
            "contract (repeatable).",
        ),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="llama.cpp threads for the local agents.")
    ] = None,
    allow_hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            metavar="NAME",
            help="Also answer to this host name, e.g. the public name it is served under (repeatable); "
            "requests naming any other host are refused.",
        ),
    ] = None,
    allow_origins: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-origin",
            metavar="ORIGIN",
            help="Let pages from this origin (https://name[:port]) use the API, besides the gateway's own page "
            "(repeatable).",
        ),
    ] = None,
    gas_per_wallet: Annotated[
        Wei | None,
        amount_option("The most gas the session key pays for one wallet's delegations and runs", "0.05eth"),
    ] = None,
) -> None:
    """Serve the task gateway: a signing page at / and an HTTP API for wallet-signed task orders.

    On embedded and anvil it also serves motet's built-in agents on the local model and registers them, so a
    task can run end to end on this machine (anvil: a node a browser wallet can use). See docs/gateway.md.
    """
    from motet.cli._market import market_registry, workflow_catalog
    from motet.gateway import Gateway
    from motet.payments import DelegationClient
    from motet.settings import Settings

    if fund and not chain.dev:
        raise typer.BadParameter("--fund works on dev chains only (embedded, anvil)", param_hint="--fund")
    catalog = workflow_catalog(workflows or ())
    node = chain.open(registry=registry, channels=channels, signer="the gateway")
    key = _session_key(node, session_key)
    if chain.dev and node.balance(key.address) < SESSION_GAS // 10:
        node.transfer(key.address, SESSION_GAS)
    for address in fund or ():
        DelegationClient(node).deposit(FUNDING, owner=address)

    async def serve(registry: Registry) -> None:
        data_dir = None if chain.kind == "embedded" else home() / f"gateway-{node.chain_id}"
        defaults = Settings.from_env().gateway
        limits = dataclasses.replace(
            defaults,
            hosts=defaults.hosts + tuple(allow_hosts or ()),
            origins=tuple(allow_origins or ()),
            gas_per_wallet=defaults.gas_per_wallet if gas_per_wallet is None else gas_per_wallet,
        )
        service = Gateway(
            node, registry, session_key=key, workflows=catalog, data_dir=data_dir, limits=limits
        )
        async with service.running(host, port) as url:
            out.print(f"motet gateway on {url}  (chain {node.chain_id}, {node.kind})")
            out.print(f"  channels contract {service.domain.contract}")
            out.print(f"  session key       {key.address}")
            out.print(f"  workflows         {', '.join(catalog)}")
            if node.url:
                out.print(
                    f"  chain RPC         {node.url}  (add it to your wallet to sign for chain {node.chain_id})"
                )
            announce_dev_chain(node, out, used={0: "funds the session key and --fund"})
            out.print(
                "open the URL in a browser with a wallet, or use `motet delegate` and `motet order`; ctrl+c stops"
            )
            sys.stdout.flush()
            await asyncio.Event().wait()

    async def main() -> None:
        # SIGTERM (a service manager, a test) stops it as ctrl+c does: the agents stop, then the anvil it started.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        async with market_registry(node, serve_agents=chain.dev, threads=threads) as registry:
            await serve(registry)

    try:
        asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        err.print("stopped")
    finally:
        node.close()


# -- the wallet's side -----------------------------------------------------------------------------------


def _address(key: str | None, delegator: str | None) -> str:
    from eth_account import Account

    if key:
        return str(Account.from_key(key).address)
    if not delegator:
        raise typer.BadParameter(
            "give the wallet's address with --from, or sign with --key", param_hint="--from"
        )
    return delegator


def delegate(
    cap: Annotated[Wei, amount_option("The most the session key may spend in total", positive=True)],
    hours: Annotated[float, typer.Option(min=0.01, help="How long the delegation lasts.")] = 24.0,
    capabilities: Annotated[
        list[str] | None,
        typer.Option("--capability", help="A capability it may pay for (repeatable); default any ('*')."),
    ] = None,
    url: GatewayURL = DEFAULT_GATEWAY,
    key: Key = None,
    delegator: Delegator = None,
) -> None:
    """Delegate a capped, time-boxed budget to a gateway's session key.

    Prints the EIP-712 typed data to sign (or signs with --key), reads the signature, and registers the
    delegation at the gateway; it is saved in motet's home for `motet order`."""
    from motet.payments import ANY_CAPABILITY, Delegation

    with client(url) as http:
        config = answer(http.get("/api/config"))
        now = int(config["now"])
        grant = Delegation(
            delegator=_address(key, delegator),
            session_key=config["sessionKey"],
            asset=config["asset"],
            cap=cap,
            valid_after=now - 60,
            expiry=now + int(hours * 3600),
            capabilities=tuple(capabilities or [ANY_CAPABILITY]),
            nonce=secrets.randbits(64),
        )
        typed = grant.typed_data(domain(config))
        _explain(grant, hours)
        signature = sign_typed(typed, key, "delegation")
        registered = answer(http.post("/api/delegations", json={"typedData": typed, "signature": signature}))
    saved = home() / "delegations" / f"{registered['id']}.json"
    saved.parent.mkdir(exist_ok=True)
    saved.write_text(json.dumps({"typedData": typed, "signature": signature}))
    tx = f" in transaction {registered['tx']}" if registered["tx"] else " (already registered)"
    err.print(f"[green]delegation {registered['id']} registered{tx}[/] (cap {format_gwei(cap)})")
    err.print(f"run a task under it: motet order --delegation {registered['id']} …")


def _explain(grant: Delegation, hours: float) -> None:
    """What signing `grant` allows, under the channels contract's rules (docs/gateway.md)."""
    from motet.payments import ANY_CAPABILITY

    capabilities = "any capability" if ANY_CAPABILITY in grant.capabilities else ", ".join(grant.capabilities)
    for line in (
        f"this delegation lets the session key {grant.session_key} place up to {format_gwei(grant.cap)} of your "
        "balance in payment channels, in total over all of them: the cap counts money placed in channels, and "
        "what a channel holds unspent comes back to your balance when it settles",
        f"only agents registered for {capabilities} can be paid, never the session key itself",
        f"for {hours:g} h; after that, or once you `motet revoke` it, no channel opens and none is topped up, "
        "but money already placed in a channel stays payable to that agent for the work it delivered",
    ):
        err.print(line, highlight=False)


def order(
    delegation: Annotated[str, typer.Option(help="The delegation id `motet delegate` printed.")],
    budget: Annotated[Wei, amount_option("The most this task may spend", positive=True)],
    workflow: Annotated[str | None, typer.Option(help="A workflow the gateway offers.")] = None,
    goal: Annotated[str | None, typer.Option(help="Or: the output the planner should reach.")] = None,
    inputs: InputsOption = None,
    minutes: Annotated[float, typer.Option(min=0.1, help="Deadline, from now.")] = 15.0,
    url: GatewayURL = DEFAULT_GATEWAY,
    key: Key = None,
) -> None:
    """Sign a task under a saved delegation, run it at the gateway, and follow it to the settlement."""
    from motet.payments import TaskOrder

    if (workflow is None) == (goal is None):
        raise typer.BadParameter("give --workflow or --goal, not both and not neither")
    saved = home() / "delegations" / f"{delegation}.json"
    if not saved.exists() or len(delegation) != 66:
        raise typer.BadParameter(
            f"no saved delegation {delegation}: run `motet delegate` first", param_hint="--delegation"
        )
    values = parse_inputs(inputs)
    signed_delegation = json.loads(saved.read_text())
    expiry = int(signed_delegation["typedData"]["message"]["expiry"])
    with client(url) as http:
        config = answer(http.get("/api/config"))
        now = int(config["now"])
        if now + int(minutes * 60) > expiry:
            raise typer.BadParameter(
                f"the deadline would be after the delegation's expiry (in {max(0, expiry - now) // 60} minutes): "
                "no channel opens under an expired delegation; give fewer --minutes, or run `motet delegate` again",
                param_hint="--minutes",
            )
        task = TaskOrder(
            delegation=bytes.fromhex(delegation.removeprefix("0x")),
            workflow=workflow or "",
            goal=goal or "",
            inputs=json.dumps(values),
            budget=budget,
            deadline=now + int(minutes * 60),
            nonce=secrets.randbits(64),
        )
        typed = task.typed_data(domain(config))
        signature = sign_typed(typed, key, "task order")
        body = {
            "delegation": signed_delegation,
            "order": {"typedData": typed, "signature": signature},
        }
        accepted = answer(http.post("/api/orders", json=body))
        err.print(f"order {accepted['id']} accepted")
        result = _follow(http, accepted["events"])
    out.print(json.dumps(result.get("outputs", {}), indent=2))
    settlement = result.get("settlement")
    if settlement:
        err.print(
            f"[green]settled {format_gwei(int(settlement['paid']))} for {settlement['paidCalls']} paid calls "
            f"in {', '.join(settlement['txs'])}[/]"
        )
    if "error" in result:
        raise MotetError(f"the run failed: {result['error']}")


def _follow(http: httpx.Client, path: str) -> dict[str, Any]:
    kind = ""
    with http.stream("GET", path, timeout=None) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                if kind == "node_done":
                    err.print(f"  {data['node']}: {data['agent']} · {format_gwei(int(data['price']))}")
                elif kind == "failover":
                    err.print(f"  {data['node']}: {data['failed_agent']} failed ({data['problem']}), next")
                elif kind in ("result", "failed"):
                    return dict(data)
    raise MotetError("the gateway closed the event stream without a result")
