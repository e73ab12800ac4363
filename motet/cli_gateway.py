"""`motet gateway`, `motet delegate` and `motet order`: wallet delegation from a terminal."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from motet.errors import MotetError

if TYPE_CHECKING:
    import httpx

    from motet.chain import Chain

console = Console(stderr=True)
out = Console(highlight=False, soft_wrap=True)
GWEI = 10**9

GatewayURL = Annotated[str, typer.Option("--gateway", envvar="MOTET_GATEWAY", help="The gateway's base URL.")]
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


def _home() -> Path:
    from motet.settings import Settings

    home = Settings.from_env().home
    home.mkdir(parents=True, exist_ok=True)
    return home


def _gwei(text: str, option: str) -> int:
    from decimal import Decimal, InvalidOperation

    try:
        wei = Decimal(text) * GWEI
    except InvalidOperation:
        raise typer.BadParameter(f"{text!r} is not an amount in gwei", param_hint=option) from None
    if wei <= 0 or wei != wei.to_integral_value():
        raise typer.BadParameter(f"{text} gwei is not a positive whole number of wei", param_hint=option)
    return int(wei)


def _session_key(chain: Chain, given: str | None) -> Any:
    """The gateway's session key: given, or kept in motet's home (created on first use, mode 0600)."""
    from eth_account import Account

    if given:
        return Account.from_key(given)
    path = _home() / f"gateway-session-key-{chain.chain_id}"
    if chain.kind == "embedded":
        return Account.create()  # a new chain each start: a new key
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(Account.create().key.hex())
    return Account.from_key(path.read_text().strip())


def gateway(
    chain: Annotated[
        str,
        typer.Option(
            help="'embedded' (in-process, for a look), 'anvil' (a local node a browser wallet can use) or 'rpc' "
            "(MOTET_RPC_URL + MOTET_PRIVATE_KEY)."
        ),
    ] = "embedded",
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
            help="On a dev chain, put 0.01 ETH into this wallet's balance in the channels contract (repeatable)."
        ),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="llama.cpp threads for the local agents.")
    ] = None,
) -> None:
    """Serve the task gateway: a signing page at / and an HTTP API for wallet-signed task orders.

    On 'embedded' and 'anvil' it also serves motet's built-in agents on the local model and registers them, so a
    task can run end to end on this machine. See docs/gateway.md.
    """
    from motet.chain import Chain
    from motet.cli_agents import serving_local_agents
    from motet.composer import Workflow
    from motet.gateway import Gateway
    from motet.market import research_brief
    from motet.payments.delegation import DelegationClient
    from motet.registry import Registry

    if chain == "embedded":
        node = Chain.embedded()
    elif chain == "anvil":
        node = Chain.anvil()
    elif chain == "rpc":
        node = Chain.connect()
    else:
        raise typer.BadParameter(f"unknown chain {chain!r}: use embedded, anvil or rpc", param_hint="--chain")
    catalog = {"research-brief": research_brief()}
    for path in workflows or ():
        flow = Workflow.load(path)
        catalog[flow.name] = flow
    key = _session_key(node, session_key)
    dev = chain in ("embedded", "anvil")
    if dev and node.balance(key.address) < 10**17:
        node.transfer(key.address, 10**18)  # gas for registering delegations, opening channels, settling
    for address in fund or ():
        if not dev:
            raise typer.BadParameter("--fund works on dev chains only (embedded, anvil)", param_hint="--fund")
        DelegationClient(node).deposit(10**16, owner=address)

    async def serve(registry: Registry) -> None:
        data_dir = None if chain == "embedded" else _home() / f"gateway-{node.chain_id}"
        service = Gateway(node, registry, session_key=key, workflows=catalog, data_dir=data_dir)
        async with service.running(host, port) as url:
            out.print(f"motet gateway on {url}  (chain {node.chain_id}, {node.kind})")
            out.print(f"  channels contract {service.domain.contract}")
            out.print(f"  session key       {key.address}")
            out.print(f"  workflows         {', '.join(catalog)}")
            if node.url:
                out.print(
                    f"  chain RPC         {node.url}  (add it to your wallet to sign for chain {node.chain_id})"
                )
            out.print(
                "open the URL in a browser with a wallet, or use `motet delegate` and `motet order`; ctrl+c stops"
            )
            sys.stdout.flush()
            await asyncio.Event().wait()

    async def main() -> None:
        if not dev:
            await serve(Registry(node))
            return
        async with serving_local_agents(node, threads) as registry:
            await serve(registry)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        node.close()


# -- the wallet's side -----------------------------------------------------------------------------------


def _client(url: str) -> httpx.Client:
    import httpx

    return httpx.Client(base_url=url, timeout=60)


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text}
    if response.status_code >= 400:
        raise MotetError(f"the gateway refused: {body.get('error', body)}")
    return dict(body)


def _sign(typed: dict[str, Any], key: str | None, what: str) -> str:
    """Sign the typed data with `key`, or print it (one JSON line on stdout) and read a signature pasted from a
    wallet."""
    from eth_account import Account

    if key:
        return str(Account.sign_typed_data(key, full_message=typed).signature.to_0x_hex())
    out.print(json.dumps(typed))
    console.print(
        f"sign the {what} above with eth_signTypedData_v4 (MetaMask, a hardware wallet's tool, "
        "`cast wallet sign --data`), then paste the signature"
    )
    console.print("signature (0x…): ", end="")
    signature = sys.stdin.readline().strip()
    if not signature.startswith("0x"):
        raise MotetError(f"{signature!r} is not a 0x-hex signature")
    return signature


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
    cap: Annotated[str, typer.Option(help="The most the session key may spend in total, in gwei.")],
    hours: Annotated[float, typer.Option(min=0.01, help="How long the delegation lasts.")] = 24.0,
    capabilities: Annotated[
        list[str] | None,
        typer.Option("--capability", help="A capability it may pay for (repeatable); default any ('*')."),
    ] = None,
    url: GatewayURL = "http://127.0.0.1:8402",
    key: Key = None,
    delegator: Delegator = None,
) -> None:
    """Delegate a capped budget to a gateway's session key: prints the EIP-712 typed data to sign, reads the
    signature, and registers the delegation. Saved in motet's home for `motet order`."""
    from motet.payments.delegation import ANY_CAPABILITY, Delegation

    with _client(url) as http:
        config = _answer(http.get("/api/config"))
        now = int(config["now"])
        grant = Delegation(
            delegator=_address(key, delegator),
            session_key=config["sessionKey"],
            asset=config["asset"],
            cap=_gwei(cap, "--cap"),
            valid_after=now - 60,
            expiry=now + int(hours * 3600),
            capabilities=tuple(capabilities or [ANY_CAPABILITY]),
            nonce=secrets.randbits(64),
        )
        typed = grant.typed_data(_domain(config))
        signature = _sign(typed, key, "delegation")
        registered = _answer(http.post("/api/delegations", json={"typedData": typed, "signature": signature}))
    saved = _home() / "delegations" / f"{registered['id']}.json"
    saved.parent.mkdir(exist_ok=True)
    saved.write_text(json.dumps({"typedData": typed, "signature": signature}))
    tx = f" in transaction {registered['tx']}" if registered["tx"] else " (already registered)"
    console.print(f"[green]delegation {registered['id']} registered{tx}[/]")
    console.print(f"run a task under it: motet order --delegation {registered['id']} …")


def _domain(config: dict[str, Any]) -> Any:
    from motet.payments.vouchers import ChannelDomain

    return ChannelDomain(int(config["chainId"]), str(config["contract"]))


def order(
    delegation: Annotated[str, typer.Option(help="The delegation id `motet delegate` printed.")],
    budget: Annotated[str, typer.Option(help="The most this task may spend, in gwei.")],
    workflow: Annotated[str | None, typer.Option(help="A workflow the gateway offers.")] = None,
    goal: Annotated[str | None, typer.Option(help="Or: the output the planner should reach.")] = None,
    inputs: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="An input field as name=value (repeatable).")
    ] = None,
    minutes: Annotated[float, typer.Option(min=0.1, help="Deadline, from now.")] = 15.0,
    url: GatewayURL = "http://127.0.0.1:8402",
    key: Key = None,
) -> None:
    """Sign a task order under a saved delegation, run it at the gateway, and follow it to the settlement."""
    from motet.payments.delegation import TaskOrder

    if (workflow is None) == (goal is None):
        raise typer.BadParameter("give --workflow or --goal, not both and not neither")
    saved = _home() / "delegations" / f"{delegation}.json"
    if not saved.exists() or len(delegation) != 66:
        raise typer.BadParameter(
            f"no saved delegation {delegation}: run `motet delegate` first", param_hint="--delegation"
        )
    values: dict[str, str] = {}
    for item in inputs or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{item!r} is not name=value", param_hint="--input")
        values[name] = value
    with _client(url) as http:
        config = _answer(http.get("/api/config"))
        task = TaskOrder(
            delegation=bytes.fromhex(delegation.removeprefix("0x")),
            workflow=workflow or "",
            goal=goal or "",
            inputs=json.dumps(values),
            budget=_gwei(budget, "--budget"),
            deadline=int(config["now"]) + int(minutes * 60),
            nonce=secrets.randbits(64),
        )
        typed = task.typed_data(_domain(config))
        signature = _sign(typed, key, "task order")
        body = {
            "delegation": json.loads(saved.read_text()),
            "order": {"typedData": typed, "signature": signature},
        }
        accepted = _answer(http.post("/api/orders", json=body))
        console.print(f"order {accepted['id']} accepted")
        result = _follow(http, accepted["events"])
    out.print(json.dumps(result.get("outputs", {}), indent=2))
    settlement = result.get("settlement")
    if settlement:
        console.print(
            f"[green]settled {int(settlement['paid']) / GWEI:g} gwei for {settlement['paidCalls']} paid calls "
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
                    console.print(f"  {data['node']}: {data['agent']} · {int(data['price']) / GWEI:g} gwei")
                elif kind == "failover":
                    console.print(
                        f"  {data['node']}: {data['failed_agent']} failed ({data['problem']}), next"
                    )
                elif kind in ("result", "failed"):
                    return dict(data)
    raise MotetError("the gateway closed the event stream without a result")
