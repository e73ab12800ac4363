"""Amounts of money: integers in the asset's smallest unit, read from and shown to people with `Decimal` only.

A person types an amount with its unit (`150gwei`, `0.01eth`, `2500wei`) or without one (the unit is then
gwei, everywhere: the CLI, the TUI and the gateway's terminal commands). Code keeps integers in wei.

Example:
    >>> parse_amount("0.5gwei")
    500000000
    >>> format_gwei(1_500_000_000)
    '1.500 gwei'
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final, NewType

from motet.errors import InvalidAmount

__all__ = [
    "AMOUNT_HELP",
    "DEFAULT_UNIT",
    "ETH",
    "GWEI",
    "UINT256_MAX",
    "UNITS",
    "WEI",
    "Wei",
    "format_amount",
    "format_eth",
    "format_gwei",
    "parse_amount",
    "plural",
]

Wei = NewType("Wei", int)
"""An amount in the smallest unit of an asset (wei for the native coin)."""

WEI: Final = 1
GWEI: Final = 10**9
ETH: Final = 10**18
UNITS: Final = {"wei": WEI, "gwei": GWEI, "eth": ETH}
DEFAULT_UNIT: Final = "gwei"
"""The unit of an amount typed without one."""

UINT256_MAX: Final = 2**256 - 1
"""The largest amount a contract can hold or pay: the bound of every amount, id and price on chain."""

AMOUNT_HELP: Final = "a number with its unit (150gwei, 0.01eth, 2500wei); a bare number is gwei"
"""How to type an amount, for `--help` texts and input placeholders."""

_AMOUNT = re.compile(r"\s*([0-9][0-9_,]*(?:\.[0-9_]*)?|\.[0-9_]+)\s*([a-zA-Z]*)\s*")


def parse_amount(text: str, *, unit: str = DEFAULT_UNIT) -> Wei:
    """`text` as a whole number of wei; `unit` is assumed when the text names none.

    Raises `InvalidAmount` (also a `ValueError`) naming what is wrong: not a number, an unknown unit, a
    negative amount, or a fraction of a wei.
    """
    match = _AMOUNT.fullmatch(text)
    if match is None:
        if text.strip().startswith("-"):
            raise InvalidAmount(text, "amounts are never negative")
        raise InvalidAmount(text, f"type {AMOUNT_HELP}")
    number, named = match.groups()
    name = (named or unit).lower()
    if name not in UNITS:
        raise InvalidAmount(text, f"unknown unit {named!r}: use wei, gwei or eth")
    try:
        value = Decimal(number.replace("_", "").replace(",", "")) * UNITS[name]
    except InvalidOperation:
        raise InvalidAmount(text, f"type {AMOUNT_HELP}") from None
    if value != value.to_integral_value():
        raise InvalidAmount(text, f"{value.normalize():f} wei is not a whole number of wei")
    if value > UINT256_MAX:
        raise InvalidAmount(text, "more than a uint256 can hold")
    return Wei(int(value))


def format_gwei(wei: int, *, places: int = 3) -> str:
    """`40_000_000_000` → `'40 gwei'`; a fraction shows `places` decimals (`1_500_000_000` → `'1.500 gwei'`)."""
    value = Decimal(wei) / GWEI
    if value == value.to_integral_value():
        return f"{int(value):,} gwei"
    return f"{value.quantize(Decimal(1).scaleb(-places)):,f} gwei"


def format_eth(wei: int, *, places: int = 4) -> str:
    """`10**18` → `'1.0000 ETH'`: a fixed number of decimals, for columns of balances."""
    value = (Decimal(wei) / ETH).quantize(Decimal(1).scaleb(-places))
    return f"{value:,f} ETH"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """A count with its noun, singular for one: `plural(1, "call")` → `'1 call'`, `plural(1200, "call")` →
    `'1,200 calls'`; `nouns` for an irregular plural (`plural(2, "body", "bodies")`)."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def format_amount(wei: int) -> str:
    """An amount in the unit a person reads best: wei below a gwei, ETH from 0.001 ETH, gwei between."""
    if wei < GWEI:
        return f"{wei:,} wei"
    if wei >= ETH // 1000:
        value = (Decimal(wei) / ETH).quantize(Decimal("0.000001")).normalize()
        return f"{value:,f} ETH"
    return format_gwei(wei)
