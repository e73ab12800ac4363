"""What several commands accept, parsed in one place: the chain (`--chain`), amounts of money, and a task's
inputs (`-i name=value`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlparse

import typer

from motet.cli._console import err
from motet.errors import AccountError, ChainConnectionError, ChainError, InvalidAmount
from motet.units import AMOUNT_HELP, Wei, format_eth, parse_amount

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from rich.console import Console

    from motet.chain import Chain, ChainKind

# -- the chain ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainChoice:
    """Where a command runs: `embedded` (a new in-process chain), `anvil` (a local node started for the
    command), `rpc` (the node at MOTET_RPC_URL) or a node's own URL. The last two sign as MOTET_PRIVATE_KEY
    (or MOTET_KEYSTORE)."""

    kind: ChainKind
    url: str | None = None
    """The node's URL when given on the command line (`rpc` without one reads MOTET_RPC_URL)."""
    registry: str | None = None
    """motet's AgentRegistry to use on the node (`--registry`), when not the one at its usual address."""
    channels: str | None = None
    """motet's PaymentChannels to use on the node (`--channels`), when not the one at its usual address."""

    def __str__(self) -> str:
        return self.url or self.kind

    @property
    def dev(self) -> bool:
        """A chain started for this command, with funded dev accounts and nothing on it yet."""
        return self.kind != "rpc"

    def require(self, *kinds: ChainKind, why: str) -> None:
        """Refuse this choice unless it is one of `kinds`, saying `why` (the command's reason)."""
        if self.kind not in kinds:
            raise typer.BadParameter(f"{self} does not work here: {why}", param_hint="--chain")

    def naming(self, *, registry: str | None, channels: str | None) -> ChainChoice:
        """This choice, with the contract addresses of `--registry` and `--channels` for `open` to use."""
        import dataclasses

        return dataclasses.replace(self, registry=registry, channels=channels)

    def open(
        self,
        *,
        registry: str | None = None,
        channels: str | None = None,
        key: str | None = None,
        signer: str = "this command",
        key_option: str | None = None,
    ) -> Chain:
        """Start or connect to the chain, with the settings of the environment (`MOTET_HOME`,
        `MOTET_CHALLENGE_PERIOD`, ...). On a node, `registry` and `channels` (the `--registry` and `--channels`
        options; by default the ones `naming` gave) are the addresses of motet's contracts to use there, checked
        by `Chain.use`; a node signs as `key`, or as MOTET_PRIVATE_KEY or MOTET_KEYSTORE, and the error for none
        says so in the CLI's terms, naming the `signer` (the payer, the agent) and the command's own
        `key_option` if it has one."""
        import dataclasses

        from motet.chain import Chain
        from motet.settings import Settings

        settings = Settings.from_env()
        registry, channels = registry or self.registry, channels or self.channels
        addresses = {"AgentRegistry": ("--registry", registry), "PaymentChannels": ("--channels", channels)}
        if self.dev:
            _ignore_on_a_new_chain(self, addresses.values())
            if self.kind == "embedded":
                return Chain.embedded(settings=settings)
            return Chain.anvil(settings=settings)
        url = self.url or os.environ.get("MOTET_RPC_URL")
        if not url:
            raise ChainConnectionError(
                "no node to connect to: give its URL with --chain http://HOST:PORT, or set MOTET_RPC_URL "
                "(`motet agent serve --chain anvil` prints one to export)"
            )
        if not (key or os.environ.get("MOTET_PRIVATE_KEY") or os.environ.get("MOTET_KEYSTORE")):
            raise AccountError(no_key_message(signer, url, key_option))
        named = {name: address for name, (_, address) in addresses.items() if address}
        if named:
            settings = dataclasses.replace(settings, contracts={**settings.contracts, **named})
        try:
            node = Chain.connect(url, key, settings=settings)
        except AccountError as exc:
            if key or not os.environ.get("MOTET_PRIVATE_KEY"):
                raise
            raise AccountError(f"MOTET_PRIVATE_KEY: {exc}") from None
        try:
            for name, (option, address) in addresses.items():
                if address:
                    try:
                        node.use(name, address)
                    except ChainError as exc:
                        raise typer.BadParameter(
                            str(exc), param_hint=f"{option} (or {_ENV[option]})"
                        ) from None
        except BaseException:
            node.close()
            raise
        return node


def no_key_message(signer: str, url: str, key_option: str | None = None) -> str:
    """What to do when nothing says which account signs on the node at `url`, in a shell's terms (`key_option`:
    the command's own option for a key, e.g. `--key-file FILE`)."""
    return (
        f"no key for {signer} to sign with on {url}: export MOTET_PRIVATE_KEY=0x… (a funded account's private "
        "key; on a dev chain, one of the keys `motet agent serve --chain anvil` or `motet gateway --chain anvil` "
        f"prints), or MOTET_KEYSTORE=FILE with MOTET_KEYSTORE_PASSWORD{f', or give {key_option}' if key_option else ''}"
    )


_ENV = {"--registry": "MOTET_REGISTRY", "--channels": "MOTET_CHANNELS"}


def _ignore_on_a_new_chain(choice: ChainChoice, given: Iterable[tuple[str, str | None]]) -> None:
    """A chain started for the command has none of the contracts an address names: refuse an address typed on
    the command line; one from the environment (exported for another chain) is left out, with a note."""
    import click

    context = click.get_current_context(silent=True)
    for option, address in given:
        if not address:
            continue
        name = option.removeprefix("--")
        source = context.get_parameter_source(name) if context is not None else None
        if source is not click.core.ParameterSource.ENVIRONMENT:
            raise typer.BadParameter(
                f"--chain {choice} starts a new chain, which has no contract at {address}: give the URL of the "
                f"node it is on with --chain, or leave {option} out",
                param_hint=option,
            )
        err.print(
            f"[yellow]{_ENV[option]}={address} left out: --chain {choice} starts a new chain, with its own "
            "contracts[/]",
            highlight=False,
        )


CHAIN_HELP = (
    "embedded (a new in-process chain), anvil (a local node started for this command), rpc (the node at "
    "MOTET_RPC_URL) or a node's http(s) URL; a node signs as MOTET_PRIVATE_KEY."
)
EMBEDDED = ChainChoice("embedded")
ANVIL = ChainChoice("anvil")
RPC = ChainChoice("rpc")
_NAMED = {str(choice): choice for choice in (EMBEDDED, ANVIL, RPC)}


def parse_chain(text: str | ChainChoice) -> ChainChoice:
    """`embedded`, `anvil`, `rpc` or an http(s) URL."""
    if isinstance(text, ChainChoice):  # a default
        return text
    named = _NAMED.get(text)
    if named is not None:
        return named
    parsed = urlparse(text)
    if parsed.scheme in ("http", "https") and parsed.netloc:
        return ChainChoice("rpc", text)
    raise typer.BadParameter(
        f"unknown chain {text!r}: use embedded, anvil, rpc (MOTET_RPC_URL) or a node's http(s) URL"
    )


def open_node(
    choice: ChainChoice,
    *,
    registry: str | None = None,
    channels: str | None = None,
    signer: str = "this command",
) -> Chain:
    """The node of a command that works with what is on chain already (agents, channels, vouchers)."""
    choice.require("rpc", why="what this command works with is on a node: give rpc or the node's URL")
    return choice.open(registry=registry, channels=channels, signer=signer)


ChainOption = Annotated[
    ChainChoice,
    typer.Option("--chain", parser=parse_chain, metavar="embedded|anvil|rpc|URL", help=CHAIN_HELP),
]


RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        envvar="MOTET_REGISTRY",
        metavar="ADDRESS",
        show_default=False,
        help="motet's AgentRegistry on the node, where it is not at motet's own address (on a node only).",
    ),
]
ChannelsOption = Annotated[
    str | None,
    typer.Option(
        "--channels",
        "--contract",
        envvar="MOTET_CHANNELS",
        metavar="ADDRESS",
        show_default=False,
        help="motet's PaymentChannels on the node (an agent's 402 names it as extra.channels), where it is not "
        "at motet's own address (on a node only).",
    ),
]


# -- a dev chain, for other terminals ----------------------------------------------------------------------


def announce_dev_chain(node: Chain, console: Console, *, used: Mapping[int, str], shown: int = 3) -> None:
    """Print what another terminal needs to work on the dev chain `node` that this command started and keeps
    running: its URL, motet's contract addresses, and the funded dev accounts with their keys, saying which
    ones this command signs as (`used`: account index → what for) and which are free, as `export` lines
    ready to paste. Nothing is printed for a node the command did not start."""
    from motet.chain import deterministic_addresses

    if node.kind != "anvil" or node.url is None:
        return
    registry = node.contract("AgentRegistry").address
    channels = node.contract("PaymentChannels").address
    usual = deterministic_addresses(node.settings)
    busy = {  # the accounts this command signs with besides `used` (the local agents a gateway serves)
        index: "in use by this command"
        for index, account in enumerate(node.accounts)
        if index not in used and node.w3.eth.get_transaction_count(account.address) > 0
    }
    used = {**used, **busy}
    free = [index for index in range(len(node.accounts)) if index not in used]

    def say(text: str) -> None:  # one line each, pasted as printed
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    say(f"anvil at {node.url} (chain id {node.chain_id}) runs until this command stops; in another terminal:")
    if free:
        account = node.accounts[free[0]]
        say(
            f"  export MOTET_RPC_URL={node.url} MOTET_PRIVATE_KEY={_key(account)}  # dev account {free[0]}, "
            f"{account.address}: free, for a payer or another agent"
        )
    else:
        say(f"  export MOTET_RPC_URL={node.url}")
    if (registry, channels) == (usual["AgentRegistry"], usual["PaymentChannels"]):
        say(
            f"motet's contracts: AgentRegistry {registry}, PaymentChannels {channels} (their usual addresses for "
            "these settings: every command finds them)"
        )
    else:
        say(
            f"  export MOTET_REGISTRY={registry} MOTET_CHANNELS={channels}  # motet's contracts on this chain"
        )
    say("dev accounts (funded, and their keys are public: for dev chains only):")
    for index, what in sorted(used.items()):
        account = node.accounts[index]
        say(
            f"  {index}  {account.address}  {format_eth(node.balance(account.address))}  {what}: "
            f"MOTET_PRIVATE_KEY={_key(account)}"
        )
    for index in free[:shown]:
        account = node.accounts[index]
        say(
            f"  {index}  {account.address}  {format_eth(node.balance(account.address))}  free: "
            f"MOTET_PRIVATE_KEY={_key(account)}"
        )
    if len(free) > shown:
        say(f"  (accounts {free[shown]}-{free[-1]} are free too: anvil's dev mnemonic derives them)")


def _key(account: LocalAccount) -> str:
    return "0x" + bytes(account.key).hex()


# -- amounts -----------------------------------------------------------------------------------------------

NOTHING = Wei(0)
"""The default of an amount that may be left out (a stake, a price per token)."""


def amount(text: str | int) -> Wei:
    """An amount typed with its unit (a bare number is gwei), as wei; `typer.BadParameter` when it is not one."""
    if isinstance(text, int):  # a default already in wei
        return Wei(text)
    try:
        return parse_amount(text)
    except InvalidAmount as exc:
        raise typer.BadParameter(str(exc)) from None


def positive_amount(text: str | int) -> Wei:
    """`amount`, and more than zero."""
    wei = amount(text)
    if wei == 0:
        raise typer.BadParameter(f"the amount must be more than 0, not {text!r}")
    return wei


def amount_option(what: str, default: str | None = None, *, positive: bool = False) -> Any:
    """A `typer.Option` for an amount: `what` it is in `--help`, how to type one, and the `default` as typed
    (the parameter's default is the same amount in wei); `positive` refuses 0."""
    return typer.Option(
        parser=positive_amount if positive else amount,
        metavar="AMOUNT",
        show_default=default or False,  # typer shows a text default in parentheses
        help=f"{what}: {AMOUNT_HELP}.",
    )


def amount_argument(what: str) -> Any:
    """A `typer.Argument` for a positive amount, like `amount_option`."""
    return typer.Argument(
        parser=positive_amount, metavar="AMOUNT", show_default=False, help=f"{what}: {AMOUNT_HELP}."
    )


# -- inputs ------------------------------------------------------------------------------------------------

InputsOption = Annotated[
    list[str] | None,
    typer.Option("--input", "-i", metavar="NAME=VALUE", help="An input field (repeatable)."),
]


def parse_inputs(items: Iterable[str] | None) -> dict[str, str]:
    """`["document=…", "lang=fr"]` → `{"document": "…", "lang": "fr"}`; the value may contain `=`."""
    values: dict[str, str] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{item!r} is not name=value", param_hint="--input")
        values[name] = value
    return values
