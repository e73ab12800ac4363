"""`motet deposit`, `motet withdraw` and `motet revoke`: the wallet's own transactions on a gateway's channels
contract. The gateway says what to send (`POST /api/calls`); with `--key` the command signs and sends it
through `Chain`, without it prints it for a wallet to send."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated

import typer

from motet.cli._console import err, out
from motet.cli._gateway_api import DEFAULT_GATEWAY, GatewayURL, answer, client
from motet.cli._options import amount_argument
from motet.errors import MotetError
from motet.units import Wei, format_gwei

if TYPE_CHECKING:
    import httpx
    from eth_account.signers.local import LocalAccount

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
Amount = Annotated[Wei, amount_argument("How much")]


def _account(key: str | None) -> LocalAccount | None:
    from eth_account import Account

    if not key:
        return None
    try:
        account: LocalAccount = Account.from_key(key)
    except (ValueError, TypeError):
        raise typer.BadParameter("not a private key (0x + 64 hex digits)", param_hint="--key") from None
    return account


def _transact(
    http: httpx.Client, call: dict[str, str], key: str | None, rpc_url: str | None, what: str
) -> tuple[str, str] | None:
    """Get the unsigned transaction for `call` from the gateway (`POST /api/calls`). Without `key`, print it as one
    JSON line for a wallet to send and return None; with it, sign and send it through the chain's JSON-RPC
    (`rpc_url`, or the gateway's), wait until it is mined, and return the sender and the transaction hash."""
    account = _account(key)
    config = answer(http.get("/api/config"))
    tx = answer(http.post("/api/calls", json=call))
    unsigned = {name: tx[name] for name in ("to", "data", "value", "chainId")}
    rpc_url = rpc_url or config.get("rpcUrl")
    if account is None:
        _print_for_a_wallet(unsigned, rpc_url)
        return None
    if not rpc_url:
        raise MotetError(
            "the gateway's chain is in-process (embedded) and has no JSON-RPC URL to send a transaction to: "
            "start the gateway on a node (`motet gateway --chain anvil`, or `--chain rpc`), or for a dev balance "
            "start it with `motet gateway --fund ADDRESS`"
        )
    return account.address, _send(unsigned, call["function"], account, rpc_url, what)


def _print_for_a_wallet(unsigned: dict[str, str], rpc_url: str | None) -> None:
    out.print(json.dumps(unsigned))
    value = int(unsigned["value"], 16)
    err.print(
        f"send it from the wallet (eth_sendTransaction with these fields, chain {int(unsigned['chainId'], 16)}),"
        " e.g. with cast and your signer (--ledger, --account NAME, …):"
    )
    err.print(
        f"  cast send {unsigned['to']} {unsigned['data']}{f' --value {value}' if value else ''} "
        f"--rpc-url {rpc_url or '<the chain RPC URL>'}",
        highlight=False,
        soft_wrap=True,
    )
    if not rpc_url:
        err.print("(this gateway's chain is in-process: no wallet can reach it; see `motet gateway --chain`)")


def _send(unsigned: dict[str, str], function: str, account: LocalAccount, rpc_url: str, what: str) -> str:
    """Send the gateway's transaction as `account` through `Chain` (nonce, gas and fees filled in, reverts and
    a short balance raised as `TransactionReverted` and `InsufficientFunds`); returns its hash.

    The calldata is decoded against motet's channels contract first, so `--key` signs only the call asked for.
    """
    from motet.chain import Chain

    chain = Chain.connect(rpc_url, account.key.hex())
    chain_id = int(unsigned["chainId"], 16)
    if chain.chain_id != chain_id:
        raise MotetError(
            f"the node at {rpc_url} is on chain {chain.chain_id}, the gateway's contract on chain {chain_id}: "
            "give that chain's RPC URL with --rpc-url"
        )
    contract = chain.use("PaymentChannels", unsigned["to"])
    call, args = contract.decode_function_input(unsigned["data"])
    if call.fn_name != function:
        raise MotetError(f"the gateway sent a call to {call.fn_name}, not {function}: not signing it")
    receipt = chain.send(call(**args), value=int(unsigned["value"], 16), action=what)
    return str(receipt["transactionHash"].to_0x_hex())


def _move(function: str, wei: Wei, url: str, key: str | None, rpc_url: str | None) -> None:
    """Deposit or withdraw `wei`, then say the balance."""
    what, done = ("the deposit", "deposited") if function == "deposit" else ("the withdrawal", "withdrew")
    with client(url) as http:
        sent = _transact(http, {"function": function, "amount": str(wei)}, key, rpc_url, what)
        if sent:
            address, tx_hash = sent
            balance = int(answer(http.get(f"/api/accounts/{address}"))["balance"])
            err.print(
                f"[green]{done} {format_gwei(wei)} in {tx_hash}; balance now {format_gwei(balance)}[/]",
                highlight=False,
            )


def deposit(
    amount: Amount, url: GatewayURL = DEFAULT_GATEWAY, key: SenderKey = None, rpc_url: RpcURL = None
) -> None:
    """Add native coin to your balance in the channels contract, which delegations spend from.

    Signed and sent with --key; without it, the unsigned transaction is printed as one JSON line for a wallet
    to send."""
    _move("deposit", amount, url, key, rpc_url)


def withdraw(
    amount: Amount, url: GatewayURL = DEFAULT_GATEWAY, key: SenderKey = None, rpc_url: RpcURL = None
) -> None:
    """Take back part of your balance in the channels contract (not what open channels hold).

    Sent like a deposit: with --key, or printed for a wallet."""
    _move("withdraw", amount, url, key, rpc_url)


def revoke(
    delegation: Annotated[
        str,
        typer.Argument(
            metavar="DELEGATION_ID", help="The delegation id (0x + 64 hex digits).", show_default=False
        ),
    ],
    url: GatewayURL = DEFAULT_GATEWAY,
    key: SenderKey = None,
    rpc_url: RpcURL = None,
) -> None:
    """Revoke one of your delegations: from then on no channel opens and none is topped up under it; money
    already placed in its channels stays payable to those agents for the work they delivered.

    Works on a delegation registered or not. Signed and sent with --key; without it, the unsigned transaction
    is printed as one JSON line for a wallet to send."""
    if not re.fullmatch(r"0x[0-9a-fA-F]{64}", delegation):
        raise typer.BadParameter(
            f"{delegation!r} is not a delegation id (0x + 64 hex digits)", param_hint="DELEGATION_ID"
        )
    with client(url) as http:
        sent = _transact(
            http, {"function": "revoke", "delegation": delegation}, key, rpc_url, "the revocation"
        )
        if sent:
            address, tx_hash = sent
            mine = {d["id"] for d in answer(http.get(f"/api/accounts/{address}"))["delegations"]}
            err.print(f"[green]delegation {delegation} revoked in {tx_hash}[/]", highlight=False)
            err.print(
                "no new channel opens and none is topped up under it; money already placed in its channels stays "
                "payable to those agents",
                highlight=False,
            )
            if delegation.lower() not in mine:
                err.print(
                    f"(no delegation of {address} with this id is registered; now none can be: revocation is per "
                    "delegator, so sign with the key that signed the delegation)",
                    highlight=False,
                )
