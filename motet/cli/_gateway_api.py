"""Talking to a running gateway's HTTP API (docs/gateway.md), for the commands a wallet's owner runs."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from motet.cli._console import err, out
from motet.errors import MotetError

if TYPE_CHECKING:
    import httpx

    from motet.payments import ChannelDomain

DEFAULT_GATEWAY = "http://127.0.0.1:8402"
GatewayURL = Annotated[str, typer.Option("--gateway", envvar="MOTET_GATEWAY", help="The gateway's base URL.")]


def client(url: str) -> httpx.Client:
    import httpx

    return httpx.Client(base_url=url, timeout=60)


def answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a gateway's answer; `MotetError` with the gateway's reason when it refused."""
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text}
    if response.status_code >= 400:
        raise MotetError(f"the gateway refused: {body.get('error', body)}")
    return dict(body)


def domain(config: dict[str, Any]) -> ChannelDomain:
    """The EIP-712 domain the gateway's `/api/config` names."""
    from motet.payments import ChannelDomain

    return ChannelDomain(int(config["chainId"]), str(config["contract"]))


def sign_typed(typed: dict[str, Any], key: str | None, what: str) -> str:
    """Sign the typed data with `key`, or print it (one JSON line on stdout) and read a signature pasted from a
    wallet."""
    from eth_account import Account

    if key:
        return str(Account.sign_typed_data(key, full_message=typed).signature.to_0x_hex())
    out.print(json.dumps(typed))
    err.print(
        f"sign the {what} above with eth_signTypedData_v4 (MetaMask, a hardware wallet's tool, "
        "`cast wallet sign --data`), then paste the signature"
    )
    err.print("signature (0x…): ", end="")
    signature = sys.stdin.readline().strip()
    if not signature.startswith("0x"):
        raise MotetError(f"{signature!r} is not a 0x-hex signature")
    return signature
