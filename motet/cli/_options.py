"""What several commands accept, parsed in one place: the chain (`--chain`), amounts of money, and a task's
inputs (`-i name=value`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlparse

import typer

from motet.errors import InvalidAmount
from motet.units import AMOUNT_HELP, Wei, parse_amount

if TYPE_CHECKING:
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

    def open(self) -> Chain:
        """Start or connect to the chain."""
        from motet.chain import Chain
        from motet.settings import Settings

        if self.kind == "embedded":
            return Chain.embedded()
        if self.kind == "anvil":
            return Chain.anvil()
        return Chain.connect(self.url, settings=Settings.from_env())


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


def open_node(choice: ChainChoice) -> Chain:
    """The node of a command that works with what is on chain already (agents, channels, vouchers)."""
    choice.require("rpc", why="what this command works with is on a node: give rpc or the node's URL")
    return choice.open()


ChainOption = Annotated[
    ChainChoice,
    typer.Option("--chain", parser=parse_chain, metavar="embedded|anvil|rpc|URL", help=CHAIN_HELP),
]


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
