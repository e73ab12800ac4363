"""`motet gateway`, `delegate`, `order`, `deposit`, `withdraw` and `revoke`: wallet delegation from a terminal."""

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


# -- the wallet's own transactions: deposit, withdraw, revoke ---------------------------------------------

RpcURL = Annotated[
    str | None,
    typer.Option(
        "--rpc-url",
        envvar="MOTET_RPC_URL",
        help="The chain's JSON-RPC URL, to send with --key. Default: the one the gateway names (/api/config).",
    ),
]
SenderKey = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="MOTET_DELEGATOR_KEY",
        help="Sign and send with this private key (hex) instead of printing the transaction for your wallet.",
    ),
]
Amount = Annotated[str, typer.Argument(metavar="AMOUNT", help="How much, in gwei.", show_default=False)]


def _transact(
    http: httpx.Client, call: dict[str, str], key: str | None, rpc_url: str | None, what: str
) -> tuple[str, str] | None:
    """Get the unsigned transaction for `call` from the gateway (`POST /api/calls`). Without `key`, print it as one
    JSON line for a wallet to send and return None; with it, sign it, send it through the chain's JSON-RPC
    (`rpc_url`, or the gateway's), wait until it is mined, and return the sender and the transaction hash."""
    from eth_account import Account

    account = None
    if key:
        try:
            account = Account.from_key(key)
        except (ValueError, TypeError):
            raise typer.BadParameter("not a private key (0x + 64 hex digits)", param_hint="--key") from None
    config = _answer(http.get("/api/config"))
    tx = _answer(http.post("/api/calls", json=call))
    unsigned = {name: tx[name] for name in ("to", "data", "value", "chainId")}
    rpc_url = rpc_url or config.get("rpcUrl")
    if account is None:
        out.print(json.dumps(unsigned))
        value = int(unsigned["value"], 16)
        console.print(
            f"send it from the wallet (eth_sendTransaction with these fields, chain {int(unsigned['chainId'], 16)}),"
            " e.g. with cast and your signer (--ledger, --account NAME, …):"
        )
        console.print(
            f"  cast send {unsigned['to']} {unsigned['data']}{f' --value {value}' if value else ''} "
            f"--rpc-url {rpc_url or '<the chain RPC URL>'}",
            highlight=False,
            soft_wrap=True,
        )
        if not rpc_url:
            console.print(
                "(this gateway's chain is in-process: no wallet can reach it; see `motet gateway --chain`)"
            )
        return None
    if not rpc_url:
        raise MotetError(
            "the gateway's chain is in-process (embedded) and has no JSON-RPC URL to send a transaction to: "
            "start the gateway on a node (`motet gateway --chain anvil`, or `--chain rpc`), or for a dev balance "
            "start it with `motet gateway --fund ADDRESS`"
        )
    return account.address, _send(unsigned, account, rpc_url, what)


def _send(unsigned: dict[str, str], account: Any, rpc_url: str, what: str) -> str:
    """Fill in nonce, gas and fees, sign with `account`, send through `rpc_url` and wait for the receipt."""
    from web3 import Web3
    from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError

    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
    chain_id = int(unsigned["chainId"], 16)
    try:
        node_chain = w3.eth.chain_id
    except Exception as exc:
        raise MotetError(
            f"no JSON-RPC node answers at {rpc_url} ({type(exc).__name__}): check --rpc-url"
        ) from None
    if node_chain != chain_id:
        raise MotetError(
            f"the node at {rpc_url} is on chain {node_chain}, the gateway's contract on chain {chain_id}: "
            "give that chain's RPC URL with --rpc-url"
        )
    tx: dict[str, Any] = {
        "from": account.address,
        "to": Web3.to_checksum_address(unsigned["to"]),
        "data": unsigned["data"],
        "value": int(unsigned["value"], 16),
        "chainId": chain_id,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
    }
    try:
        tx["gas"] = w3.eth.estimate_gas(tx)  # type: ignore[arg-type]
        base_fee = w3.eth.get_block("latest").get("baseFeePerGas")
        if base_fee is None:
            tx["gasPrice"] = w3.eth.gas_price
        else:
            tx["maxPriorityFeePerGas"] = w3.eth.max_priority_fee
            tx["maxFeePerGas"] = 2 * base_fee + tx["maxPriorityFeePerGas"]
        tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    except ContractLogicError as exc:
        reason = str(exc.message or exc).removeprefix("execution reverted: ")
        raise MotetError(f"{what} would revert: {reason}") from None
    except Web3RPCError as exc:  # the node's own refusal: insufficient funds, a nonce too low…
        raise MotetError(f"the node refused {what}: {exc.message or exc}") from None
    try:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
    except TimeExhausted:
        raise MotetError(f"{what}: transaction {tx_hash.to_0x_hex()} not mined in 120 s") from None
    if receipt["status"] != 1:
        raise MotetError(f"{what} reverted in transaction {tx_hash.to_0x_hex()}")
    return tx_hash.to_0x_hex()


def _move(function: str, amount: str, url: str, key: str | None, rpc_url: str | None) -> None:
    """Deposit or withdraw `amount` gwei, then say the balance."""
    from motet.tui.format import gwei

    wei = _gwei(amount, "AMOUNT")
    what, done = ("the deposit", "deposited") if function == "deposit" else ("the withdrawal", "withdrew")
    with _client(url) as http:
        sent = _transact(http, {"function": function, "amount": str(wei)}, key, rpc_url, what)
        if sent:
            address, tx_hash = sent
            balance = int(_answer(http.get(f"/api/accounts/{address}"))["balance"])
            console.print(
                f"[green]{done} {gwei(wei)} in {tx_hash}; balance now {gwei(balance)}[/]",
                highlight=False,
            )


def deposit(
    amount: Amount, url: GatewayURL = "http://127.0.0.1:8402", key: SenderKey = None, rpc_url: RpcURL = None
) -> None:
    """Add native coin to your balance in the channels contract, which delegations spend from. Signed and sent
    with --key; without it, the unsigned transaction is printed as one JSON line for a wallet to send."""
    _move("deposit", amount, url, key, rpc_url)


def withdraw(
    amount: Amount, url: GatewayURL = "http://127.0.0.1:8402", key: SenderKey = None, rpc_url: RpcURL = None
) -> None:
    """Take back part of your balance in the channels contract (not what open channels hold). Signed and sent
    with --key; without it, the unsigned transaction is printed as one JSON line for a wallet to send."""
    _move("withdraw", amount, url, key, rpc_url)


def revoke(
    delegation: Annotated[
        str,
        typer.Argument(
            metavar="DELEGATION_ID", help="The delegation id (0x + 64 hex digits).", show_default=False
        ),
    ],
    url: GatewayURL = "http://127.0.0.1:8402",
    key: SenderKey = None,
    rpc_url: RpcURL = None,
) -> None:
    """Revoke one of your delegations, registered or not: from then on no channel opens and no voucher redeems
    under it. Signed and sent with --key; without it, the unsigned transaction is printed as one JSON line for a
    wallet to send."""
    import re

    if not re.fullmatch(r"0x[0-9a-fA-F]{64}", delegation):
        raise typer.BadParameter(
            f"{delegation!r} is not a delegation id (0x + 64 hex digits)", param_hint="DELEGATION_ID"
        )
    with _client(url) as http:
        sent = _transact(
            http, {"function": "revoke", "delegation": delegation}, key, rpc_url, "the revocation"
        )
        if sent:
            address, tx_hash = sent
            mine = {d["id"] for d in _answer(http.get(f"/api/accounts/{address}"))["delegations"]}
            console.print(f"[green]delegation {delegation} revoked in {tx_hash}[/]", highlight=False)
            if delegation.lower() not in mine:
                console.print(
                    f"(no delegation of {address} with this id is registered; now none can be: revocation is per "
                    "delegator, so sign with the key that signed the delegation)",
                    highlight=False,
                )
