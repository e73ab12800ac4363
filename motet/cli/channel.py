"""`motet channel open | sign | topup | show`: pay an agent from a shell, through a payment channel.

The payer signs as MOTET_PRIVATE_KEY (or MOTET_KEYSTORE) on the node at `--chain` (MOTET_RPC_URL by default),
on the channels contract at `--channels` (MOTET_CHANNELS; motet's own by default);
the vouchers it signs are kept in motet's home, so it never signs below what it signed before. `sign --call`
signs a call to an agent (agents serve a channel only to calls its payer signed) and prints the whole
`/invoke` body, ready for curl.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from motet.cli._console import out
from motet.cli._home import ledger
from motet.cli._options import (
    RPC,
    ChainChoice,
    ChainOption,
    ChannelsOption,
    amount_argument,
    amount_option,
    open_node,
)
from motet.units import Wei, format_amount

if TYPE_CHECKING:
    from motet.payments import ChannelClient

app = typer.Typer(help="Open payment channels to agents and sign vouchers.", no_args_is_help=True)

ChannelId = Annotated[str, typer.Argument(metavar="CHANNEL", help="The channel id (0x-hex or decimal).")]


def _channels(chain: ChainChoice, contract: str | None, *, signs: bool = True) -> ChannelClient:
    """The payer's channel client on the channels contract at `contract` (motet's own by default); one that
    `signs` keeps its vouchers in its ledger."""
    from motet.payments import ChannelClient

    node = open_node(chain, channels=contract, signer="the payer")
    return ChannelClient(node, node.default_account, ledger(node, "payer") if signs else None)


def _channel_id(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a channel id (0x-hex or decimal)", param_hint="CHANNEL"
        ) from None


@app.command("open")
def open_channel(
    to: Annotated[str, typer.Option("--to", help="The agent's payout address (the 402's payTo).")],
    deposit: Annotated[Wei, amount_option("The deposit", positive=True)],
    channels: ChannelsOption = None,
    chain: ChainOption = RPC,
) -> None:
    """Open a channel to an agent; prints the channel id."""
    state = _channels(chain, channels).open(to, deposit)
    out.print(hex(state.channel_id))


@app.command("sign")
def sign(
    channel: ChannelId,
    cumulative: Annotated[
        Wei | None,
        amount_argument("The cumulative amount: the agent's `owed` (wei in its JSON: 1500wei)"),
    ] = None,
    call: Annotated[
        str | None,
        typer.Option(
            "--call", metavar="CAPABILITY", help="Sign a call of this capability; prints the /invoke body."
        ),
    ] = None,
    input: Annotated[
        str, typer.Option("--input", metavar="JSON", help="The call's input, a JSON object (with --call).")
    ] = "{}",
    seq: Annotated[
        int,
        typer.Option(
            min=1,
            help="The call's number on the channel (with --call): 1 for the first, then the last answer's "
            "`seq` + 1 (a 409 names it as nextSeq).",
        ),
    ] = 1,
    channels: ChannelsOption = None,
    chain: ChainOption = RPC,
) -> None:
    """Sign a voucher for the cumulative AMOUNT on CHANNEL and print it as JSON; or, with --call, sign a call
    and print its whole /invoke body (carrying the voucher as its payment when AMOUNT is given too)."""
    if call is None and cumulative is None:
        raise typer.BadParameter("give the AMOUNT to sign a voucher, or --call to sign a call")
    from motet.errors import ChannelFundsExhausted

    channel_id = _channel_id(channel)
    client = _channels(chain, channels)
    try:
        voucher = client.sign(channel_id, cumulative) if cumulative is not None else None
    except ChannelFundsExhausted as exc:
        raise typer.BadParameter(
            f"channel {hex(channel_id)} has {format_amount(exc.remaining)} left, this voucher needs "
            f"{format_amount(exc.needed)} more: add to its deposit with `motet channel topup {hex(channel_id)} "
            "AMOUNT`, or open a new channel",
            param_hint="AMOUNT",
        ) from None
    if call is None:
        assert voucher is not None
        out.print(json.dumps(voucher.to_dict()))
        return
    from motet.payments import CallSigner, request_hash

    try:
        value = json.loads(input)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--input") from None
    signer = CallSigner(bytes(client.account.key), client.domain)
    signature = signer.sign(channel_id, seq, request_hash(call, value, channel_id, seq))
    body: dict[str, object] = {
        "capability": call,
        "input": value,
        "channel": hex(channel_id),
        "seq": seq,
        "signature": "0x" + signature.hex(),
    }
    if voucher is not None:
        body["payment"] = voucher.to_dict()
    out.print(json.dumps(body), markup=False)


@app.command("topup")
def topup(
    channel: ChannelId,
    amount: Annotated[Wei, amount_argument("What to add to the channel's deposit")],
    channels: ChannelsOption = None,
    chain: ChainOption = RPC,
) -> None:
    """Add to the deposit of a channel this account pays from; prints the new deposit (in wei)."""
    state = _channels(chain, channels).topup(_channel_id(channel), amount)
    out.print(str(state.deposit))


@app.command("show")
def show(channel: ChannelId, channels: ChannelsOption = None, chain: ChainOption = RPC) -> None:
    """Print a channel's state on chain as JSON (amounts in wei)."""
    state = _channels(chain, channels, signs=False).channel(_channel_id(channel))
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
